//! Nurse safety, the coordinator's side (issue 17): the organisation's
//! alarms, acknowledging and resolving them; letting one job's arrival
//! through the geofence; visits flagged for review and clearing the flag.
//!
//! Rules (the domain's, [`yixin_domain::safety::Alarm`]): an alarm is
//! acknowledged first ("someone is on it"; a second acknowledgement changes
//! nothing), then resolved with a note. Resolving an unacknowledged alarm is
//! 409 `alarm_not_acknowledged` (no implied acknowledgement: the two steps
//! are separate on purpose); without a note 422 `required` (`note`); a
//! resolved alarm is 409 `alarm_resolved`. Every change is told to every
//! coordinator's live feed (`alarm` frames) and to the nurse's phone.

use actix_web::{HttpRequest, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yixin_auth::CoordinatorCaller;
use yixin_domain::safety::Alarm;
use yixin_domain::{AlarmId, DomainError, OrderStatus, OrgId};
use yixin_platform::views::AlarmView;
use yixin_platform::{ApiError, ErrorBody, JsonBody};
use yixin_store::{AuditEntry, VisitCheck};

use super::orders::own_order;
use super::{invalid, org_of, store_error};
use crate::Dispatcher;

/// Most alarms or flagged visits a list answers.
pub const MAX_LIST: u64 = 200;

#[derive(Debug, Deserialize, IntoParams)]
pub struct AlarmsQuery {
    /// `open` (default: not resolved yet) or `all` (newest 200).
    pub state: Option<String>,
}

/// `POST /v1/dispatch/alarms/{id}/resolve` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// What happened and what was done; required, at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500, example = "已电话联系护士，安全")]
    pub note: Option<String>,
}

/// `POST /v1/dispatch/orders/{id}/arrival-override` and
/// `…/clear-flag` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// At most 500 characters (required to clear a flag).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// An arrival override.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArrivalOverrideView {
    pub order_id: String,
    pub overridden_by: String,
    pub overridden_at: DateTime<Utc>,
}

/// A visit flagged for review.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitFlagView {
    pub order_id: String,
    pub nurse_id: String,
    /// `short_visit`: completed in under half the service's duration.
    pub flag: String,
    /// How long the visit took (from `started`, else `arrived`).
    pub visit_minutes: Option<u32>,
    pub flagged_at: Option<DateTime<Utc>>,
    pub arrived_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Whether a coordinator let the arrival through the geofence.
    pub arrival_overridden: bool,
}

fn flag_view(c: &VisitCheck) -> VisitFlagView {
    VisitFlagView {
        order_id: c.order_id.to_string(),
        nurse_id: c.nurse_id.to_string(),
        flag: c.review_flag.clone().unwrap_or_default(),
        visit_minutes: c.visit_minutes,
        flagged_at: c.flagged_at,
        arrived_at: c.arrived_at,
        started_at: c.started_at,
        completed_at: c.closed_at,
        arrival_overridden: c.arrival_override_at.is_some(),
    }
}

/// A domain refusal of an alarm change, as HTTP.
fn refused(e: DomainError) -> ApiError {
    match e {
        DomainError::AlarmNotAcknowledged | DomainError::AlarmResolved => {
            ApiError::conflict(e.code(), e.to_string())
        }
        other => invalid(other, "note"),
    }
}

async fn own_alarm(svc: &Dispatcher, org: &OrgId, raw: &str) -> Result<Alarm, ApiError> {
    let id: AlarmId = raw
        .parse()
        .map_err(|_| ApiError::not_found("no such alarm"))?;
    svc.store
        .org_alarm(org, id)
        .await
        .map_err(|e| store_error(e, "alarm"))?
        .ok_or_else(|| ApiError::not_found("no such alarm"))
}

/// Tells every coordinator of the organisation and the nurse's phone.
async fn tell(svc: &Dispatcher, alarm: &Alarm) {
    for b in yixin_contracts::safety::alarm_changed(alarm, Utc::now()) {
        if let Err(e) = svc.queue.broadcast(&b.channel, &b.payload).await {
            tracing::warn!(alarm_id = %alarm.id, error = %e, "alarm change not broadcast");
        }
    }
}

async fn audit(
    svc: &Dispatcher,
    caller: &CoordinatorCaller,
    req: &HttpRequest,
    action: &str,
    kind: &str,
    id: String,
    detail: Option<String>,
) {
    let entry = AuditEntry {
        org: org_of(caller),
        actor_sub: caller.0.sub.clone(),
        actor_role: caller.0.role.as_str().to_owned(),
        action: action.to_owned(),
        subject_kind: kind.to_owned(),
        subject_id: id,
        client_addr: yixin_platform::http::client_addr(req),
        detail,
        at: Utc::now(),
    };
    if let Err(e) = svc.store.audit(&entry).await {
        tracing::warn!(error = %e, action, "audit row not written");
    }
}

/// The organisation's alarms, newest first: unresolved ones (default) or
/// the newest 200 of any state.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(AlarmsQuery),
    responses(
        (status = 200, body = [AlarmView]),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/v1/dispatch/alarms")]
pub async fn list_alarms(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    query: web::Query<AlarmsQuery>,
) -> Result<web::Json<Vec<AlarmView>>, ApiError> {
    let open_only = match query.state.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(_) => {
            return Err(ApiError::Unprocessable {
                code: "invalid_value".into(),
                message: "state is `open` or `all`".into(),
                field: Some("state".into()),
            });
        }
    };
    let alarms = svc
        .store
        .org_alarms(&org_of(&caller), open_only, MAX_LIST)
        .await
        .map_err(|e| store_error(e, "alarm"))?;
    Ok(web::Json(alarms.iter().map(AlarmView::from).collect()))
}

/// Acknowledges an alarm ("I am on it"): it stops escalating. Acknowledging
/// an acknowledged alarm answers it unchanged (the first coordinator stays).
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Alarm id")),
    responses(
        (status = 200, body = AlarmView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`alarm_resolved`", body = ErrorBody),
    )
)]
#[post("/v1/dispatch/alarms/{id}/ack")]
pub async fn ack_alarm(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<web::Json<AlarmView>, ApiError> {
    let org = org_of(&caller);
    let mut alarm = own_alarm(&svc, &org, &id).await?;
    let changed = alarm
        .acknowledge(&caller.0.sub, Utc::now())
        .map_err(refused)?;
    if changed {
        if !svc
            .store
            .save_alarm_ack(&alarm)
            .await
            .map_err(|e| store_error(e, "alarm"))?
        {
            // Someone else acknowledged (or resolved) it meanwhile.
            let now = own_alarm(&svc, &org, &id).await?;
            return Ok(web::Json(AlarmView::from(&now)));
        }
        tracing::info!(alarm_id = %alarm.id, coordinator = %caller.0.sub, "alarm acknowledged");
        audit(
            &svc,
            &caller,
            &req,
            "alarm_acknowledged",
            "alarm",
            alarm.id.to_string(),
            None,
        )
        .await;
        tell(&svc, &alarm).await;
    }
    Ok(web::Json(AlarmView::from(&alarm)))
}

/// Resolves an acknowledged alarm with a note.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Alarm id")),
    request_body = ResolveRequest,
    responses(
        (status = 200, body = AlarmView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`alarm_not_acknowledged` or `alarm_resolved`", body = ErrorBody),
        (status = 422, description = "`required` (`note`) or `too_long`", body = ErrorBody),
    )
)]
#[post("/v1/dispatch/alarms/{id}/resolve")]
pub async fn resolve_alarm(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    req: HttpRequest,
    id: web::Path<String>,
    body: Option<JsonBody<ResolveRequest>>,
) -> Result<web::Json<AlarmView>, ApiError> {
    let org = org_of(&caller);
    let note = body.and_then(|b| b.into_inner().note);
    let mut alarm = own_alarm(&svc, &org, &id).await?;
    alarm
        .resolve(&caller.0.sub, note.as_deref(), Utc::now())
        .map_err(refused)?;
    if !svc
        .store
        .save_alarm_resolution(&alarm)
        .await
        .map_err(|e| store_error(e, "alarm"))?
    {
        return Err(refused(DomainError::AlarmResolved));
    }
    tracing::info!(alarm_id = %alarm.id, coordinator = %caller.0.sub, "alarm resolved");
    audit(
        &svc,
        &caller,
        &req,
        "alarm_resolved",
        "alarm",
        alarm.id.to_string(),
        alarm.resolution_note.clone(),
    )
    .await;
    tell(&svc, &alarm).await;
    Ok(web::Json(AlarmView::from(&alarm)))
}

/// Lets this job's `arrived` through the geofence (the nurse's GPS is
/// off or wrong, the address is imprecise). Audited.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    request_body = NoteRequest,
    responses(
        (status = 200, body = ArrivalOverrideView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`no_nurse_on_the_way`: the order has no nurse before the door", body = ErrorBody),
    )
)]
#[post("/v1/dispatch/orders/{id}/arrival-override")]
pub async fn override_arrival(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    req: HttpRequest,
    id: web::Path<String>,
    body: Option<JsonBody<NoteRequest>>,
) -> Result<web::Json<ArrivalOverrideView>, ApiError> {
    let org = org_of(&caller);
    let order = own_order(&svc, &org, &id).await?;
    let nurse = match (order.status, order.nurse_id) {
        (OrderStatus::Assigned | OrderStatus::EnRoute, Some(n)) => n,
        _ => {
            return Err(ApiError::conflict(
                "no_nurse_on_the_way",
                format!(
                    "the order is {}: only a job assigned or en route can have its arrival let through",
                    order.status.as_str()
                ),
            ));
        }
    };
    let note = body
        .and_then(|b| b.into_inner().note)
        .map(|n| n.trim().chars().take(500).collect::<String>())
        .filter(|n| !n.is_empty());
    let now = Utc::now();
    svc.store
        .override_arrival(order.id, &org, nurse, &caller.0.sub, note.as_deref(), now)
        .await
        .map_err(|e| store_error(e, "order"))?;
    tracing::info!(order_id = %order.id, coordinator = %caller.0.sub, "arrival check overridden");
    audit(
        &svc,
        &caller,
        &req,
        "arrival_overridden",
        "order",
        order.id.to_string(),
        note,
    )
    .await;
    Ok(web::Json(ArrivalOverrideView {
        order_id: order.id.to_string(),
        overridden_by: caller.0.sub.clone(),
        overridden_at: now,
    }))
}

/// The organisation's visits flagged for review (not cleared), newest first.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    responses(
        (status = 200, body = [VisitFlagView]),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/v1/dispatch/visit-flags")]
pub async fn list_visit_flags(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
) -> Result<web::Json<Vec<VisitFlagView>>, ApiError> {
    let flagged = svc
        .store
        .flagged_visits(&org_of(&caller), MAX_LIST)
        .await
        .map_err(|e| store_error(e, "visit"))?;
    Ok(web::Json(flagged.iter().map(flag_view).collect()))
}

/// Clears a visit's review flag with a note (required). Audited.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    request_body = NoteRequest,
    responses(
        (status = 204, description = "Cleared"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No flagged visit of that order", body = ErrorBody),
        (status = 422, description = "`required` (`note`)", body = ErrorBody),
    )
)]
#[post("/v1/dispatch/orders/{id}/clear-flag")]
pub async fn clear_visit_flag(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    req: HttpRequest,
    id: web::Path<String>,
    body: Option<JsonBody<NoteRequest>>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let org = org_of(&caller);
    let order = own_order(&svc, &org, &id).await?;
    let note = body
        .and_then(|b| b.into_inner().note)
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid(DomainError::Required { field: "note" }, "note"))?;
    if note.chars().count() > yixin_domain::safety::ALARM_NOTE_MAX_CHARS {
        return Err(invalid(
            DomainError::TooLong {
                field: "note",
                max: yixin_domain::safety::ALARM_NOTE_MAX_CHARS,
            },
            "note",
        ));
    }
    let cleared = svc
        .store
        .clear_visit_flag(&org, order.id, &caller.0.sub, &note, Utc::now())
        .await
        .map_err(|e| store_error(e, "visit"))?;
    if !cleared {
        return Err(ApiError::not_found("no flagged visit of that order"));
    }
    audit(
        &svc,
        &caller,
        &req,
        "visit_flag_cleared",
        "order",
        order.id.to_string(),
        Some(note),
    )
    .await;
    Ok(actix_web::HttpResponse::NoContent().finish())
}
