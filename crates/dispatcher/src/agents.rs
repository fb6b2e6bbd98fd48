//! The coordinator's agent list: add an agent (family doctor, grid worker
//! 网格员, ward nurse), list them, change or deactivate one. An agent signs
//! in by SMS code only while on this list and active, and her tokens place
//! orders only while she is (order-intake checks on every use). Scoped to
//! the coordinator's organisation: another one's agent is not found.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use yixin_auth::CoordinatorCaller;
use yixin_domain::{Agent, AgentKind, DomainError, OrgId, PhoneNumber};
use yixin_platform::{ApiError, ErrorBody, JsonBody};
use yixin_store::StoreError;

use crate::Dispatcher;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgentRequest {
    /// At most 50 characters once trimmed.
    #[schema(min_length = 1, max_length = 50, example = "李医生")]
    pub name: String,
    /// A mainland China mobile number; one agent per phone in the organisation.
    #[schema(
        max_length = 40,
        pattern = r"^(\+86|86)?[0-9 -]+$",
        example = "13700001111"
    )]
    pub phone: String,
    /// `family_doctor`, `grid_worker` or `ward_nurse`.
    #[schema(example = "family_doctor")]
    pub kind: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentChange {
    #[schema(min_length = 1, max_length = 50)]
    pub name: Option<String>,
    #[schema(max_length = 40, pattern = r"^(\+86|86)?[0-9 -]+$")]
    pub phone: Option<String>,
    pub kind: Option<String>,
    /// `false` deactivates: no sign-in, and her tokens place no orders.
    pub active: Option<bool>,
}

/// An agent as the coordinator sees her.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentView {
    /// The `sub` of her tokens.
    pub id: String,
    pub name: String,
    pub phone: String,
    #[schema(example = "family_doctor")]
    pub kind: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

fn view(a: &Agent) -> AgentView {
    AgentView {
        id: a.id.to_string(),
        name: a.name.clone(),
        phone: a.phone.as_str().to_owned(),
        kind: a.kind.as_str().to_owned(),
        active: a.active,
        created_at: a.created_at,
    }
}

fn invalid(e: DomainError, field: &str) -> ApiError {
    ApiError::Unprocessable {
        code: e.code().into(),
        message: e.to_string(),
        field: Some(field.to_owned()),
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("no such agent"),
        StoreError::Conflict(m) if m.contains("phone") => ApiError::conflict(
            "phone_taken",
            "another agent of the organisation has this phone",
        ),
        StoreError::Conflict(m) => ApiError::conflict("conflict", m),
        other => ApiError::internal(other),
    }
}

async fn own_agent(svc: &Dispatcher, org: &OrgId, raw: &str) -> Result<Agent, ApiError> {
    let id = Uuid::parse_str(raw).map_err(|_| ApiError::not_found("no such agent"))?;
    svc.store
        .agent(org, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found("no such agent"))
}

/// Adds an agent to the organisation's list (active).
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    request_body = NewAgentRequest,
    responses(
        (status = 201, body = AgentView),
        (status = 403, body = ErrorBody),
        (status = 409, description = "`phone_taken`", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[post("/v1/dispatch/agents")]
pub async fn add_agent(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    body: JsonBody<NewAgentRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let org = OrgId::from(caller.0.org.as_str());
    let phone = PhoneNumber::new(&body.phone).map_err(|e| invalid(e, "phone"))?;
    let kind = AgentKind::parse(&body.kind).map_err(|e| invalid(e, "kind"))?;
    let agent =
        Agent::new(org, &body.name, phone, kind, Utc::now()).map_err(|e| invalid(e, "name"))?;
    svc.store.insert_agent(&agent).await.map_err(store_error)?;
    tracing::info!(agent_id = %agent.id, org = %agent.org_id, kind = agent.kind.as_str(), "agent added to the list");
    Ok(HttpResponse::Created().json(view(&agent)))
}

/// The organisation's agents, oldest first (deactivated ones included).
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    responses((status = 200, body = [AgentView]), (status = 403, body = ErrorBody))
)]
#[get("/v1/dispatch/agents")]
pub async fn list_agents(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
) -> Result<web::Json<Vec<AgentView>>, ApiError> {
    let org = OrgId::from(caller.0.org.as_str());
    let agents = svc.store.agents(&org).await.map_err(store_error)?;
    Ok(web::Json(agents.iter().map(view).collect()))
}

/// Changes an agent's name, phone or kind, or (de)activates her.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Agent id")),
    request_body = AgentChange,
    responses(
        (status = 200, body = AgentView),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`phone_taken`", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[patch("/v1/dispatch/agents/{id}")]
pub async fn change_agent(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
    body: JsonBody<AgentChange>,
) -> Result<web::Json<AgentView>, ApiError> {
    let org = OrgId::from(caller.0.org.as_str());
    let mut agent = own_agent(&svc, &org, &id).await?;
    let change = body.into_inner();
    if let Some(name) = &change.name {
        agent.name = yixin_domain::agent::agent_name(name).map_err(|e| invalid(e, "name"))?;
    }
    if let Some(phone) = &change.phone {
        agent.phone = PhoneNumber::new(phone).map_err(|e| invalid(e, "phone"))?;
    }
    if let Some(kind) = &change.kind {
        agent.kind = AgentKind::parse(kind).map_err(|e| invalid(e, "kind"))?;
    }
    if let Some(active) = change.active {
        agent.active = active;
    }
    svc.store.update_agent(&agent).await.map_err(store_error)?;
    tracing::info!(agent_id = %agent.id, active = agent.active, "agent changed");
    Ok(web::Json(view(&agent)))
}
