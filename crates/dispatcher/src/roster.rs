//! The coordinator's roster: add a nurse, change skills or details,
//! deactivate; list the organisation's nurses with shift, position and job.
//! Everything is scoped to the coordinator's organisation: a nurse of
//! another one is simply not found.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yixin_auth::CoordinatorCaller;
use yixin_domain::{DomainError, Nurse, NurseId, OrgId, PhoneNumber, ShiftState, Skill};
use yixin_platform::{ApiError, ErrorBody, JsonBody};
use yixin_store::StoreError;

use crate::Dispatcher;
use crate::coordinator::kpi::is_stale;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNurseRequest {
    /// At most 50 characters once trimmed.
    #[schema(min_length = 1, max_length = 50, example = "李护士")]
    pub name: String,
    /// A mainland China mobile number (`1[3-9]` and nine digits), with an
    /// optional `+86`/`86` prefix; spaces and dashes are ignored.
    #[schema(
        max_length = 40,
        pattern = r"^(\+86|86)?[0-9 -]+$",
        example = "13900001111"
    )]
    pub phone: String,
    /// Skill codes, as the catalogue's services require them.
    #[schema(example = json!(["wound_care"]))]
    pub skills: Vec<String>,
    /// The nurse's subject at the organisation's identity provider: a nurse
    /// token whose `sub` is this acts as this nurse. Unique in the org.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, example = "hr-000417")]
    pub external_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NurseChange {
    #[schema(min_length = 1, max_length = 50)]
    pub name: Option<String>,
    #[schema(max_length = 40, pattern = r"^(\+86|86)?[0-9 -]+$")]
    pub phone: Option<String>,
    pub skills: Option<Vec<String>>,
    /// `false` deactivates: the nurse stays on record but gets no work.
    pub active: Option<bool>,
    /// Sets the identity provider's subject; an empty string removes it.
    #[schema(max_length = 128)]
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Position {
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub lng: f64,
    #[schema(minimum = 0)]
    pub accuracy_m: f64,
    pub recorded_at: Option<DateTime<Utc>>,
}

/// A nurse as the coordinator sees her: the phone unmasked.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = RosterNurse)]
pub struct NurseView {
    pub id: String,
    pub name: String,
    #[schema(pattern = r"^1[3-9][0-9]{9}$", example = "13900001111")]
    pub phone: String,
    pub skills: Vec<String>,
    /// The identity provider's subject for this nurse, if set.
    pub external_id: Option<String>,
    pub active: bool,
    /// `on` or `off`.
    pub shift: String,
    /// The latest shared fix, if the nurse is on shift and has sent one.
    pub position: Option<Position>,
    /// On shift, but no fix or only one older than
    /// `tracking.stale_after_secs`, as of this answer: the rule the KPIs'
    /// free count applies (a stale nurse is not free).
    pub stale: bool,
    /// The order the nurse is working on, if any.
    pub current_order_id: Option<String>,
    /// The credentials' review: `pending`, `verified` or `rejected`; none
    /// when no credentials are entered (she is offered no work until they
    /// are entered and verified).
    pub verification: Option<String>,
}

fn view(n: &Nurse) -> NurseView {
    NurseView {
        id: n.id.to_string(),
        name: n.name.clone(),
        phone: n.phone.as_str().to_owned(),
        skills: n.skills.iter().map(|s| s.as_str().to_owned()).collect(),
        external_id: n.external_id.clone(),
        active: n.active,
        shift: n.shift.as_str().to_owned(),
        position: None,
        stale: false,
        current_order_id: None,
        verification: n
            .credentials
            .as_ref()
            .map(|c| c.verification.as_str().to_owned()),
    }
}

/// The views of `nurses` with their latest fixes (positions unavailable:
/// none, logged) and staleness at this moment.
async fn views_with_positions(svc: &Dispatcher, nurses: &[Nurse]) -> Vec<NurseView> {
    let ids: Vec<String> = nurses.iter().map(|n| n.id.to_string()).collect();
    let positions = match svc.positions.latest(&ids).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "positions unavailable for the roster");
            vec![None; ids.len()]
        }
    };
    let now = Utc::now();
    let stale_after = TimeDelta::from_std(svc.stale_after).unwrap_or(TimeDelta::MAX);
    nurses
        .iter()
        .zip(positions)
        .map(|(n, p)| {
            let mut v = view(n);
            let recorded_at = p
                .as_ref()
                .and_then(|p| DateTime::from_timestamp_millis(p.recorded_at_unix_ms));
            v.stale = n.shift == ShiftState::On && is_stale(recorded_at, stale_after, now);
            v.position = p.map(|p| Position {
                lat: p.lat,
                lng: p.lng,
                accuracy_m: p.accuracy_m,
                recorded_at,
            });
            v
        })
        .collect()
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
        StoreError::NotFound => ApiError::not_found("no such nurse"),
        StoreError::Conflict(m) if m.contains("external_id") => ApiError::conflict(
            "external_id_taken",
            "another nurse of the organisation has this external_id",
        ),
        StoreError::Conflict(m) => ApiError::conflict("conflict", m),
        other => ApiError::internal(other),
    }
}

/// Skill codes checked against the catalogue: a skill no service asks for
/// is almost always a typo, and would never match anything.
async fn skills(svc: &Dispatcher, codes: &[String]) -> Result<Vec<Skill>, ApiError> {
    let catalog = svc.store.catalog().await.map_err(store_error)?;
    let mut out = Vec::with_capacity(codes.len());
    for (i, code) in codes.iter().enumerate() {
        let field = format!("skills[{i}]");
        let skill = Skill::new(code).map_err(|e| invalid(e, &field))?;
        if !catalog
            .services
            .iter()
            .any(|s| s.required_skills.contains(&skill))
        {
            return Err(ApiError::Unprocessable {
                code: "unknown_skill".into(),
                message: format!("no service in the catalogue requires `{}`", skill.as_str()),
                field: Some(field),
            });
        }
        out.push(skill);
    }
    Ok(out)
}

async fn own_nurse(svc: &Dispatcher, org: &OrgId, id: &str) -> Result<Nurse, ApiError> {
    let id = id
        .parse()
        .map(NurseId)
        .map_err(|_| ApiError::not_found("no such nurse"))?;
    svc.store
        .get_nurse(id)
        .await
        .map_err(store_error)?
        .filter(|n| &n.org_id == org)
        .ok_or_else(|| ApiError::not_found("no such nurse"))
}

/// Adds a nurse to the organisation's roster (active, off shift).
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    request_body = NewNurseRequest,
    responses(
        (status = 201, body = NurseView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "`external_id_taken`", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[post("/v1/dispatch/nurses")]
pub async fn add_nurse(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    body: JsonBody<NewNurseRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let org = OrgId::from(caller.0.org.as_str());
    let phone = PhoneNumber::new(&body.phone).map_err(|e| invalid(e, "phone"))?;
    let skills = skills(&svc, &body.skills).await?;
    let mut nurse = Nurse::new(org, &body.name, phone, skills, Utc::now()).map_err(|e| {
        let field = e.field().unwrap_or("name").to_owned();
        invalid(e, &field)
    })?;
    if let Some(raw) = &body.external_id {
        nurse.external_id =
            Some(yixin_domain::external_id(raw).map_err(|e| invalid(e, "external_id"))?);
    }
    svc.store.insert_nurse(&nurse).await.map_err(store_error)?;
    tracing::info!(nurse_id = %nurse.id, org = %nurse.org_id, "nurse added to the roster");
    Ok(HttpResponse::Created().json(view(&nurse)))
}

/// The organisation's roster with shift state, latest position and current job.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    responses((status = 200, body = [NurseView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/v1/dispatch/nurses")]
pub async fn list_nurses(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
) -> Result<web::Json<Vec<NurseView>>, ApiError> {
    let org = OrgId::from(caller.0.org.as_str());
    let nurses = svc.store.nurses(&org).await.map_err(store_error)?;
    let jobs = svc
        .store
        .active_orders_by_nurse(&org)
        .await
        .map_err(store_error)?;
    let mut views = views_with_positions(&svc, &nurses).await;
    for (v, n) in views.iter_mut().zip(&nurses) {
        v.current_order_id = jobs.get(&n.id).map(|o| o.to_string());
    }
    Ok(web::Json(views))
}

/// Changes a nurse's name, phone or skills, or (de)activates them.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Nurse id")),
    request_body = NurseChange,
    responses(
        (status = 200, body = NurseView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`external_id_taken`", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[patch("/v1/dispatch/nurses/{id}")]
pub async fn change_nurse(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
    body: JsonBody<NurseChange>,
) -> Result<web::Json<NurseView>, ApiError> {
    let org = OrgId::from(caller.0.org.as_str());
    let mut nurse = own_nurse(&svc, &org, &id).await?;
    let change = body.into_inner();
    if let Some(codes) = &change.skills {
        let skills = skills(&svc, codes).await?;
        // Re-validate through the constructor (at least one skill, sorted, unique).
        let checked = Nurse::new(
            org.clone(),
            &nurse.name,
            nurse.phone.clone(),
            skills,
            nurse.created_at,
        )
        .map_err(|e| invalid(e, "skills"))?;
        nurse.skills = checked.skills;
    }
    if let Some(name) = &change.name {
        let checked = Nurse::new(
            org.clone(),
            name,
            nurse.phone.clone(),
            nurse.skills.clone(),
            nurse.created_at,
        )
        .map_err(|e| invalid(e, "name"))?;
        nurse.name = checked.name;
    }
    if let Some(phone) = &change.phone {
        nurse.phone = PhoneNumber::new(phone).map_err(|e| invalid(e, "phone"))?;
    }
    if let Some(active) = change.active {
        nurse.active = active;
    }
    if let Some(raw) = &change.external_id {
        nurse.external_id = if raw.trim().is_empty() {
            None
        } else {
            Some(yixin_domain::external_id(raw).map_err(|e| invalid(e, "external_id"))?)
        };
    }
    svc.store.update_nurse(&nurse).await.map_err(store_error)?;
    // Every instance holding the nurse's phone or roster entry reloads it.
    if let Err(e) = svc
        .queue
        .broadcast(
            yixin_contracts::ROSTER_CHANNEL,
            nurse.id.to_string().as_bytes(),
        )
        .await
    {
        tracing::warn!(nurse_id = %nurse.id, error = %e, "roster change not announced");
    }
    let mut views = views_with_positions(&svc, std::slice::from_ref(&nurse)).await;
    Ok(web::Json(views.pop().unwrap_or_else(|| view(&nurse))))
}
