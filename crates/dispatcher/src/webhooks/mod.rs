//! Webhooks, the coordinator's side (issue 19): register endpoints for the
//! organisation's order, offer and alarm events and the residents'
//! notifications; see the delivery log; replay; ping. Scoped to the
//! coordinator's organisation: another one's endpoint or delivery is not
//! found. The secret that signs deliveries is shown once, when it is made
//! (registration, rotation).
//!
//! What an event looks like and the headers are `yixin_contracts::webhooks`;
//! which URLs are acceptable and the retry schedule `yixin_domain::webhooks`;
//! the log and the claims `yixin_store`; [`worker`] delivers.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use yixin_auth::CoordinatorCaller;
use yixin_contracts::webhooks::{EVENT_TYPES, is_event_type};
use yixin_domain::OrgId;
use yixin_domain::webhooks::{DeliveryStatus, check_url};
use yixin_platform::{ApiError, ErrorBody, JsonBody};
use yixin_store::{
    NewWebhookEndpoint, Replay, WebhookDelivery, WebhookEndpoint, WebhookEndpointChange,
};

use crate::Dispatcher;
use crate::coordinator::{invalid, org_of, store_error};

pub mod worker;

/// Longest description.
pub const MAX_DESCRIPTION: usize = 200;
/// Most deliveries a log answers.
pub const MAX_LOG: u64 = 200;

/// `POST /v1/dispatch/webhooks` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookRequest {
    /// `https://…` (plain http and private addresses only where the
    /// platform's configuration allows them); no user or password; at most
    /// 2048 characters.
    #[schema(max_length = 2048, example = "https://ops.example.org/yixin/hooks")]
    pub url: String,
    /// The event types to receive (at least one): `order.created`,
    /// `order.assigned`, `order.en_route`, `order.arrived`, `order.started`,
    /// `order.completed`, `order.cancelled`, `order.escalated`, `offer.made`,
    /// `offer.accepted`, `offer.declined`, `offer.expired`, `alarm.raised`,
    /// `alarm.resolved`, `notification.sms`, `notification.wechat`.
    #[schema(example = json!(["order.assigned", "alarm.raised"]))]
    pub events: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub description: Option<String>,
}

/// `PATCH /v1/dispatch/webhooks/{id}` body: what changes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookChangeRequest {
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// An empty one clears it.
    #[schema(max_length = 200)]
    pub description: Option<String>,
    /// `false` stops deliveries (they wait, pending, until enabled again).
    pub enabled: Option<bool>,
}

/// An endpoint as the coordinator sees it (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new endpoint, or a rotated secret: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookSecretView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    /// Signs every delivery (HMAC-SHA256 of `"<timestamp>.<body>"`); shown
    /// only now: keep it.
    #[schema(example = "whsec_3f1c…")]
    pub secret: String,
}

/// One delivery in the log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The `id` of the body and the `Yixin-Webhook-Id` header.
    pub id: String,
    pub endpoint_id: String,
    #[serde(rename = "type")]
    #[schema(example = "order.assigned")]
    pub event_type: String,
    /// The source event's id (one delivery per endpoint, event and type).
    pub event_id: String,
    /// `pending`, `delivered` or `dead`.
    #[schema(example = "delivered")]
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub occurred_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The body's `data`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveriesQuery {
    /// `pending`, `delivered` or `dead`; all when absent.
    pub status: Option<String>,
    /// At most 200 (default 50).
    pub limit: Option<u64>,
}

fn view(e: &WebhookEndpoint) -> WebhookView {
    WebhookView {
        id: e.id.to_string(),
        url: e.url.clone(),
        events: e.events.clone(),
        description: e.description.clone(),
        enabled: e.enabled,
        created_by: e.created_by.clone(),
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

fn secret_view(e: &WebhookEndpoint, secret: String) -> WebhookSecretView {
    WebhookSecretView {
        id: e.id.to_string(),
        url: e.url.clone(),
        events: e.events.clone(),
        description: e.description.clone(),
        enabled: e.enabled,
        created_at: e.created_at,
        secret,
    }
}

fn delivery_view(d: &WebhookDelivery) -> DeliveryView {
    DeliveryView {
        id: d.id.to_string(),
        endpoint_id: d.endpoint_id.to_string(),
        event_type: d.event_type.clone(),
        event_id: d.event_id.clone(),
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at,
        last_attempt_at: d.last_attempt_at,
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        delivered_at: d.delivered_at,
        occurred_at: d.occurred_at,
        created_at: d.created_at,
        data: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
    }
}

/// A fresh signing key: `whsec_` and 64 hex digits (244 random bits from
/// the OS, through two v4 UUIDs).
fn new_secret() -> String {
    format!(
        "whsec_{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

fn unprocessable(code: &'static str, message: impl Into<String>, field: &str) -> ApiError {
    ApiError::Unprocessable {
        code: code.into(),
        message: message.into(),
        field: Some(field.to_owned()),
    }
}

fn checked_url(svc: &Dispatcher, raw: &str) -> Result<String, ApiError> {
    let s = &svc.webhooks;
    check_url(raw.trim(), s.allow_http, s.allow_private).map_err(|e| invalid(e, "url"))?;
    Ok(raw.trim().to_owned())
}

/// Known, at least one, each once (in the order given).
fn checked_events(events: &[String]) -> Result<Vec<String>, ApiError> {
    if events.is_empty() {
        return Err(unprocessable(
            "required",
            "at least one event type is required",
            "events",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if !is_event_type(e) {
            return Err(unprocessable(
                "unknown_event",
                format!("unknown event type; one of {}", EVENT_TYPES.join(", ")),
                &format!("events[{i}]"),
            ));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

fn checked_description(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(d) = raw.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(unprocessable(
            "too_long",
            format!("description must be at most {MAX_DESCRIPTION} characters"),
            "description",
        ));
    }
    if d.chars().any(char::is_control) {
        return Err(unprocessable(
            "invalid_value",
            "description must not contain control characters",
            "description",
        ));
    }
    Ok(Some(d.to_owned()))
}

fn not_found() -> ApiError {
    ApiError::not_found("no such webhook")
}

fn endpoint_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| not_found())
}

async fn own_endpoint(
    svc: &Dispatcher,
    org: &OrgId,
    raw: &str,
) -> Result<WebhookEndpoint, ApiError> {
    svc.store
        .webhook_endpoint(org, endpoint_id(raw)?)
        .await
        .map_err(|e| store_error(e, "webhook"))?
        .ok_or_else(not_found)
}

/// Registers an endpoint for the organisation's events; answers its
/// signing secret, once.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    request_body = NewWebhookRequest,
    responses(
        (status = 201, body = WebhookSecretView),
        (status = 403, body = ErrorBody),
        (status = 409, description = "`too_many_webhooks`", body = ErrorBody),
        (status = 422, description = "`invalid_url`, `private_address`, `unknown_event`, …", body = ErrorBody),
    )
)]
#[post("/v1/dispatch/webhooks")]
pub async fn create_webhook(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    body: JsonBody<NewWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let org = org_of(&caller);
    let body = body.into_inner();
    let url = checked_url(&svc, &body.url)?;
    let events = checked_events(&body.events)?;
    let description = checked_description(body.description.as_deref())?;
    let count = svc
        .store
        .count_webhook_endpoints(&org)
        .await
        .map_err(|e| store_error(e, "webhook"))?;
    if count >= svc.webhooks.max_endpoints_per_org {
        return Err(ApiError::conflict(
            "too_many_webhooks",
            format!(
                "an organisation has at most {} webhooks",
                svc.webhooks.max_endpoints_per_org
            ),
        ));
    }
    let secret = new_secret();
    let endpoint = svc
        .store
        .create_webhook_endpoint(
            &NewWebhookEndpoint {
                org_id: org,
                url,
                events,
                description,
                secret: secret.clone(),
                created_by: caller.0.sub.clone(),
            },
            Utc::now(),
        )
        .await
        .map_err(|e| store_error(e, "webhook"))?;
    tracing::info!(webhook = %endpoint.id, org = %endpoint.org_id, "webhook registered");
    Ok(HttpResponse::Created().json(secret_view(&endpoint, secret)))
}

/// The organisation's endpoints, oldest first.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    responses((status = 200, body = [WebhookView]), (status = 403, body = ErrorBody))
)]
#[get("/v1/dispatch/webhooks")]
pub async fn list_webhooks(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
) -> Result<web::Json<Vec<WebhookView>>, ApiError> {
    let endpoints = svc
        .store
        .webhook_endpoints(&org_of(&caller))
        .await
        .map_err(|e| store_error(e, "webhook"))?;
    Ok(web::Json(endpoints.iter().map(view).collect()))
}

/// One endpoint.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/v1/dispatch/webhooks/{id}")]
pub async fn get_webhook(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
) -> Result<web::Json<WebhookView>, ApiError> {
    let endpoint = own_endpoint(&svc, &org_of(&caller), &id).await?;
    Ok(web::Json(view(&endpoint)))
}

/// Changes an endpoint: its URL, events, description, or enables/disables it.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    request_body = WebhookChangeRequest,
    responses(
        (status = 200, body = WebhookView),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[patch("/v1/dispatch/webhooks/{id}")]
pub async fn change_webhook(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
    body: JsonBody<WebhookChangeRequest>,
) -> Result<web::Json<WebhookView>, ApiError> {
    let org = org_of(&caller);
    let id = endpoint_id(&id)?;
    let body = body.into_inner();
    let change = WebhookEndpointChange {
        url: body
            .url
            .as_deref()
            .map(|u| checked_url(&svc, u))
            .transpose()?,
        events: body.events.as_deref().map(checked_events).transpose()?,
        description: match body.description.as_deref() {
            Some(d) => Some(checked_description(Some(d))?),
            None => None,
        },
        enabled: body.enabled,
    };
    let endpoint = svc
        .store
        .update_webhook_endpoint(&org, id, &change, Utc::now())
        .await
        .map_err(|e| store_error(e, "webhook"))?
        .ok_or_else(not_found)?;
    tracing::info!(webhook = %endpoint.id, enabled = endpoint.enabled, "webhook changed");
    Ok(web::Json(view(&endpoint)))
}

/// Deletes an endpoint and its delivery log.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[delete("/v1/dispatch/webhooks/{id}")]
pub async fn delete_webhook(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint_id(&id)?;
    if !svc
        .store
        .delete_webhook_endpoint(&org_of(&caller), id)
        .await
        .map_err(|e| store_error(e, "webhook"))?
    {
        return Err(not_found());
    }
    tracing::info!(webhook = %id, "webhook deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Replaces the endpoint's signing secret; answers the new one, once.
/// Deliveries from now on (retries included) are signed with it.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookSecretView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[post("/v1/dispatch/webhooks/{id}/rotate-secret")]
pub async fn rotate_webhook_secret(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
) -> Result<web::Json<WebhookSecretView>, ApiError> {
    let org = org_of(&caller);
    let endpoint = own_endpoint(&svc, &org, &id).await?;
    let secret = new_secret();
    if !svc
        .store
        .rotate_webhook_secret(&org, endpoint.id, &secret, Utc::now())
        .await
        .map_err(|e| store_error(e, "webhook"))?
    {
        return Err(not_found());
    }
    tracing::info!(webhook = %endpoint.id, "webhook secret rotated");
    Ok(web::Json(secret_view(&endpoint, secret)))
}

/// Sends a `ping` event to the endpoint (through the log, like any delivery).
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 202, body = DeliveryView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[post("/v1/dispatch/webhooks/{id}/test")]
pub async fn test_webhook(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let delivery = svc
        .store
        .enqueue_webhook_ping(&org_of(&caller), endpoint_id(&id)?, Utc::now())
        .await
        .map_err(|e| store_error(e, "webhook"))?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Accepted().json(delivery_view(&delivery)))
}

/// The endpoint's delivery log, newest first.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Webhook id"), DeliveriesQuery),
    responses(
        (status = 200, body = [DeliveryView]),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[get("/v1/dispatch/webhooks/{id}/deliveries")]
pub async fn list_deliveries(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
    query: web::Query<DeliveriesQuery>,
) -> Result<web::Json<Vec<DeliveryView>>, ApiError> {
    let org = org_of(&caller);
    let endpoint = own_endpoint(&svc, &org, &id).await?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            unprocessable(
                "invalid_value",
                "status is pending, delivered or dead",
                "status",
            )
        })?),
    };
    let limit = match query.limit {
        None => 50,
        Some(n @ 1..=MAX_LOG) => n,
        Some(_) => {
            return Err(unprocessable(
                "out_of_range",
                format!("limit is 1 to {MAX_LOG}"),
                "limit",
            ));
        }
    };
    let log = svc
        .store
        .webhook_deliveries(&org, endpoint.id, status, limit)
        .await
        .map_err(|e| store_error(e, "webhook"))?;
    Ok(web::Json(log.iter().map(delivery_view).collect()))
}

/// Queues a dead or delivered delivery again (same id and body, attempts
/// from zero).
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 202, body = DeliveryView),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`delivery_pending`: not tried to the end yet", body = ErrorBody),
    )
)]
#[post("/v1/dispatch/webhooks/deliveries/{id}/replay")]
pub async fn replay_delivery(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let no_such = || ApiError::not_found("no such delivery");
    let id = Uuid::parse_str(&id).map_err(|_| no_such())?;
    match svc
        .store
        .replay_webhook_delivery(&org_of(&caller), id, Utc::now())
        .await
        .map_err(|e| store_error(e, "delivery"))?
    {
        Replay::Queued(d) => {
            tracing::info!(delivery = %d.id, "webhook delivery replayed");
            Ok(HttpResponse::Accepted().json(delivery_view(&d)))
        }
        Replay::StillPending => Err(ApiError::conflict(
            "delivery_pending",
            "the delivery is still being tried",
        )),
        Replay::NotFound => Err(no_such()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_must_be_known_and_are_deduplicated() {
        let ok = checked_events(&["order.assigned".into(), "order.assigned".into()]).unwrap();
        assert_eq!(ok, ["order.assigned"]);
        assert!(checked_events(&[]).is_err());
        assert!(checked_events(&["order.*".into()]).is_err());
    }

    #[test]
    fn secrets_are_long_and_fresh() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), "whsec_".len() + 64);
        assert_ne!(a, b);
    }

    #[test]
    fn descriptions_are_trimmed_bounded_and_printable() {
        assert_eq!(
            checked_description(Some("  ops  ")).unwrap().as_deref(),
            Some("ops")
        );
        assert_eq!(checked_description(Some("  ")).unwrap(), None);
        assert!(checked_description(Some(&"长".repeat(201))).is_err());
        assert!(checked_description(Some("a\u{7}b")).is_err());
    }
}
