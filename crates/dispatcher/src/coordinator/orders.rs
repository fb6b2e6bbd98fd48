//! The organisation's orders with their dispatch detail; manual assignment
//! and cancellation on the resident's behalf.

use crate::credentials::audit;
use actix_web::{HttpRequest, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yixin_auth::CoordinatorCaller;
use yixin_contracts::{
    cancellation_broadcasts, nurse_channel, offer_closed, offer_closed_to_nurse, status_changed,
};
use yixin_dispatch_core::{explain, qualification, visit_day, visit_time};
use yixin_domain::credentials::Qualification;
use yixin_domain::{
    DomainError, GeoPoint, Nurse, NurseId, Offer, OfferClosedReason, OfferStatus, Order, OrderId,
    OrderStatus, OrgId, ShiftState, TimelineEvent,
};
use yixin_platform::{ApiError, ErrorBody, JsonBody};
use yixin_store::StoreError;
use yixin_store::audit_action::READ_ADDRESS;

use super::{invalid, kpi, order_id, org_of, publish, store_error};
use crate::Dispatcher;

/// Orders listed when no `limit` is given.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most orders one list answers.
pub const MAX_LIMIT: u32 = 500;
/// How often a cancel re-reads an order that moved under it.
// One schema each, shared with the residents' and nurses' views; the
// contact is unmasked here because the coordinator phones the resident.
pub use yixin_platform::views::{AddressView, ContactView, Location, TimelineEntry as Step};

/// One offer of the order to a nurse, as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = DispatchOffer)]
pub struct OfferView {
    pub id: String,
    pub nurse_id: String,
    #[schema(value_type = yixin_platform::views::OfferStatusName)]
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the nurse answered, or the offer lapsed or was withdrawn.
    pub answered_at: Option<DateTime<Utc>>,
    pub eta_min: u32,
    pub distance_m: u32,
    pub decline_reason: Option<String>,
}

/// The resident's rating of a completed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderRating {
    /// 1 to 5.
    pub stars: u8,
    pub comment: Option<String>,
    /// When the resident rated: the order's last update (nothing else
    /// changes a completed order).
    pub rated_at: DateTime<Utc>,
}

/// An order as the coordinator sees it: the resident's view plus the
/// address and phone, the offers made, who declined, and the risk of
/// missing the promise.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DispatchOrder {
    pub id: String,
    #[schema(value_type = yixin_platform::views::OrderStatusName)]
    pub status: String,
    pub service_code: String,
    pub created_at: DateTime<Utc>,
    /// When the nurse must be at the door.
    pub promised_by: DateTime<Utc>,
    /// Predicted arrival.
    pub eta: Option<DateTime<Utc>>,
    pub nurse_id: Option<String>,
    pub location: Location,
    pub address: AddressView,
    pub contact: ContactView,
    pub notes: Option<String>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Whole minutes left before `promised_by` (negative once late); `null`
    /// once the nurse has arrived or the order is over.
    pub minutes_left: Option<i64>,
    /// Not yet reached and: escalated, late, predicted to arrive late, or
    /// without a nurse with less than 10 minutes left.
    pub at_risk: bool,
    /// Every offer made, oldest first.
    pub offers: Vec<OfferView>,
    /// Nurses who declined the order, in the order they did.
    pub declined_by: Vec<String>,
    pub timeline: Vec<Step>,
    /// The resident's rating, once given.
    pub rating: Option<OrderRating>,
    /// What the resident put on the order for the clinical side.
    pub clinical: ClinicalView,
}

/// Intake answers, their risk flags, consent and the screening outcome.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = DispatchClinical)]
pub struct ClinicalView {
    /// Answers by intake question code.
    #[schema(value_type = Object)]
    pub answers: std::collections::BTreeMap<String, serde_json::Value>,
    /// Codes of the risk questions answered yes (or non-blank).
    pub flags: Vec<String>,
    /// The consent version the resident accepted when ordering.
    pub consent_version: Option<String>,
    pub doctor_order_ref: Option<String>,
    /// Who consented on site, once the visit started.
    pub consent_by: Option<String>,
    /// Why screening rejected the order.
    pub review_reason: Option<String>,
    /// The coordinator who approved or rejected it.
    pub reviewed_by: Option<String>,
}

/// The coordinator's view of `order` at `now`, from its offers and timeline.
pub fn detail(
    order: &Order,
    offers: &[Offer],
    timeline: &[TimelineEvent],
    now: DateTime<Utc>,
) -> DispatchOrder {
    DispatchOrder {
        id: order.id.to_string(),
        status: order.status.as_str().to_owned(),
        service_code: order.service_code.clone(),
        created_at: order.created_at,
        promised_by: order.promised_by,
        eta: order.eta,
        nurse_id: order.nurse_id.map(|n| n.to_string()),
        location: Location {
            lat: order.location.lat(),
            lng: order.location.lng(),
        },
        address: AddressView {
            text: order.address.text.clone(),
            detail: order.address.detail.clone(),
        },
        contact: ContactView {
            name: order.contact.name.clone(),
            phone: order.contact.phone.as_str().to_owned(),
        },
        notes: order.notes.clone(),
        scheduled_for: order.scheduled_for,
        cancel_reason: order.cancel_reason.clone(),
        updated_at: order.updated_at,
        minutes_left: order
            .status
            .awaits_arrival()
            .then(|| kpi::minutes_left(order.promised_by, now)),
        at_risk: kpi::is_at_risk(
            order.status,
            order.promised_by,
            order.eta,
            order.nurse_id.is_some(),
            now,
        ),
        offers: offers
            .iter()
            .map(|o| OfferView {
                id: o.id.to_string(),
                nurse_id: o.nurse_id.to_string(),
                status: o.status.as_str().to_owned(),
                created_at: o.created_at,
                expires_at: o.expires_at,
                answered_at: o.answered_at,
                eta_min: o.eta_min,
                distance_m: o.distance_m,
                decline_reason: o.decline_reason.clone(),
            })
            .collect(),
        declined_by: offers
            .iter()
            .filter(|o| o.status == OfferStatus::Declined)
            .map(|o| o.nurse_id.to_string())
            .collect(),
        timeline: timeline
            .iter()
            .map(|e| Step {
                status: e.status.as_str().to_owned(),
                at: e.at,
            })
            .collect(),
        rating: order.rating.as_ref().map(|r| OrderRating {
            stars: r.stars,
            comment: r.comment.clone(),
            rated_at: order.updated_at,
        }),
        clinical: ClinicalView {
            answers: order.clinical.answers.clone(),
            flags: order.clinical.flags.clone(),
            consent_version: order.clinical.consent_version.clone(),
            doctor_order_ref: order.clinical.doctor_order_ref.clone(),
            consent_by: order.clinical.consent_by.clone(),
            review_reason: order.clinical.review_reason.clone(),
            reviewed_by: order.clinical.reviewed_by.clone(),
        },
    }
}

/// The detail of each order, with two queries for all of them.
pub async fn details(svc: &Dispatcher, orders: &[Order]) -> Result<Vec<DispatchOrder>, ApiError> {
    let ids: Vec<OrderId> = orders.iter().map(|o| o.id).collect();
    let mut offers = svc
        .store
        .offers_for_orders(&ids)
        .await
        .map_err(|e| store_error(e, "order"))?;
    let mut timelines = svc
        .store
        .timelines_for_orders(&ids)
        .await
        .map_err(|e| store_error(e, "order"))?;
    let now = Utc::now();
    Ok(orders
        .iter()
        .map(|o| {
            detail(
                o,
                &offers.remove(&o.id).unwrap_or_default(),
                &timelines.remove(&o.id).unwrap_or_default(),
                now,
            )
        })
        .collect())
}

/// The detail of one order.
pub async fn one_detail(svc: &Dispatcher, order: &Order) -> Result<DispatchOrder, ApiError> {
    let offers = svc
        .store
        .offers_for_order(order.id)
        .await
        .map_err(|e| store_error(e, "order"))?;
    let timeline = svc
        .store
        .timeline(order.id)
        .await
        .map_err(|e| store_error(e, "order"))?;
    Ok(detail(order, &offers, &timeline, Utc::now()))
}

/// One of the organisation's orders, or 404.
pub async fn own_order(svc: &Dispatcher, org: &OrgId, raw_id: &str) -> Result<Order, ApiError> {
    let id = order_id(raw_id)?;
    svc.store
        .org_order(org, id)
        .await
        .map_err(|e| store_error(e, "order"))?
        .ok_or_else(|| ApiError::not_found("no such order"))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct OrdersQuery {
    /// One status or a comma-separated list (e.g. `pending,offered,escalated`); all when absent.
    pub status: Option<String>,
    /// 1 to 500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// Parses `pending,offered`: each must be a status.
pub fn parse_statuses(raw: Option<&str>) -> Result<Vec<OrderStatus>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let status = part
            .parse::<OrderStatus>()
            .map_err(|_| ApiError::BadRequest {
                code: "invalid_query".into(),
                message: format!(
                    "status must be one or more of {}, comma-separated; got {:?}",
                    OrderStatus::ALL.map(|s| s.as_str()).join(", "),
                    part.chars().take(32).collect::<String>()
                ),
                field: Some("status".into()),
            })?;
        if !out.contains(&status) {
            out.push(status);
        }
    }
    Ok(out)
}

/// The organisation's orders, newest first, with offers, declines,
/// timeline, minutes left and the at-risk flag.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(OrdersQuery),
    responses(
        (status = 200, body = [DispatchOrder]),
        (status = 400, description = "`invalid_query`: unknown status or bad limit", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/v1/dispatch/orders")]
pub async fn list_orders(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    req: HttpRequest,
    query: web::Query<OrdersQuery>,
) -> Result<web::Json<Vec<DispatchOrder>>, ApiError> {
    let org = org_of(&caller);
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "invalid_query".into(),
            message: format!("limit must be between 1 and {MAX_LIMIT}"),
            field: Some("limit".into()),
        });
    }
    let statuses = parse_statuses(query.status.as_deref())?;
    let orders = svc
        .store
        .org_orders(&org, &statuses, u64::from(limit))
        .await
        .map_err(|e| store_error(e, "order"))?;
    let out = details(&svc, &orders).await?;
    let ids: Vec<String> = orders.iter().map(|o| o.id.to_string()).collect();
    audit(&svc, &caller, &req, READ_ADDRESS, "order", &ids, None).await;
    Ok(web::Json(out))
}

/// One of the organisation's orders with its dispatch detail.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, body = DispatchOrder),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
#[get("/v1/dispatch/orders/{id}")]
pub async fn get_order(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<web::Json<DispatchOrder>, ApiError> {
    let order = own_order(&svc, &org_of(&caller), &id).await?;
    let out = one_detail(&svc, &order).await?;
    audit(
        &svc,
        &caller,
        &req,
        READ_ADDRESS,
        "order",
        &[order.id.to_string()],
        None,
    )
    .await;
    Ok(web::Json(out))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// A nurse of the organisation: active, on shift, holding the skills
    /// the service requires, with verified credentials that meet its
    /// requirements on the visit's day (else 422 `not_qualified`), with no
    /// job and no other offer open.
    pub nurse_id: String,
}

/// The organisation's nurse named in a body, fit for the order.
async fn assignable_nurse(
    svc: &Dispatcher,
    org: &OrgId,
    raw: &str,
    order: &Order,
) -> Result<(Nurse, Qualification), ApiError> {
    let unknown = || {
        ApiError::invalid_field(
            "nurse_id",
            "unknown_nurse",
            "no such nurse in the organisation",
        )
    };
    let id = raw.parse().map(NurseId).map_err(|_| unknown())?;
    let nurse = svc
        .store
        .get_nurse_with_credentials(id)
        .await
        .map_err(|e| store_error(e, "nurse"))?
        .filter(|n| &n.org_id == org)
        .ok_or_else(unknown)?;
    if !nurse.active {
        return Err(ApiError::invalid_field(
            "nurse_id",
            "nurse_inactive",
            "the nurse is deactivated",
        ));
    }
    let catalog = svc
        .store
        .catalog()
        .await
        .map_err(|e| store_error(e, "service"))?;
    let service = catalog
        .services
        .iter()
        .find(|s| s.code == order.service_code);
    if let Some(service) = service {
        let missing: Vec<_> = service
            .required_skills
            .iter()
            .filter(|s| !nurse.skills.contains(s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(invalid(DomainError::MissingSkills { missing }, "nurse_id"));
        }
    }
    // The dispatch gate, as automatic dispatch applies it.
    let requirements = service.map(|s| s.requirements.clone()).unwrap_or_default();
    let day = visit_day(visit_time(order.scheduled_for, Utc::now()));
    let qualified =
        qualification(nurse.credentials.as_ref(), &requirements, day).map_err(|short| {
            ApiError::invalid_field(
                "nurse_id",
                "not_qualified",
                format!(
                    "the nurse's credentials do not qualify for this service: {}",
                    explain(&short)
                ),
            )
        })?;
    if nurse.shift != ShiftState::On {
        return Err(ApiError::conflict(
            "nurse_off_shift",
            "the nurse is off shift; they must go on shift before taking a job",
        ));
    }
    Ok((nurse, qualified))
}

/// When the nurse would be at the door if sent now: the dispatcher's
/// estimator from the nurse's latest fix (as for automatic offers and the
/// candidates list); none when there is no usable fix or no estimate.
async fn arrival_if_sent(
    svc: &Dispatcher,
    org: &OrgId,
    nurse: NurseId,
    order: &Order,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let found = match svc.positions.latest(&[nurse.to_string()]).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(nurse_id = %nurse, error = %e, "no position for the assignment's ETA");
            return None;
        }
    };
    let fix = found
        .into_iter()
        .next()
        .flatten()
        .filter(|p| p.org_id == org.as_str())?;
    let from = GeoPoint::new(fix.lat, fix.lng).ok()?;
    let eta = svc
        .eta
        .etas(&[from], order.location)
        .await
        .ok()?
        .into_iter()
        .next()
        .flatten()?;
    Some(now + chrono::TimeDelta::seconds(i64::from(eta.seconds)))
}

/// For a nurse on a visit: her arrival at `order` if she may take it as
/// her next job (chaining on, no next job yet, the visit predicted to end
/// within the horizon), counted from the visit's end and place; `None`
/// for a nurse without a job. `nurse_busy` otherwise.
async fn chained_arrival(
    svc: &Dispatcher,
    nurse: NurseId,
    order: &Order,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let (current, next) = svc
        .store
        .jobs_for_nurse(nurse)
        .await
        .map_err(|e| store_error(e, "nurse"))?;
    let Some(current) = current else {
        return Ok(None);
    };
    let busy =
        |why: &str| ApiError::conflict("nurse_busy", format!("the nurse is not free: {why}"));
    if next.is_some() {
        return Err(busy("she already has a next job"));
    }
    let check = svc
        .store
        .visit_check(current.id)
        .await
        .map_err(|e| store_error(e, "order"))?;
    let duration = svc
        .store
        .catalog()
        .await
        .map_err(|e| store_error(e, "service"))?
        .service(&current.service_code)
        .map_or(60, |s| s.duration_min);
    let visit = yixin_dispatch_core::Visit {
        arrived_at: check.as_ref().and_then(|c| c.arrived_at),
        started_at: check.as_ref().and_then(|c| c.started_at),
        eta: current.eta,
        ..yixin_dispatch_core::Visit::new(current.status, duration)
    };
    let Some(free_at) = svc.chain.free_at(&visit, 0, now) else {
        return Err(busy(
            "she is on a visit that does not end within the chaining horizon",
        ));
    };
    let travel = svc
        .eta
        .etas(&[current.location], order.location)
        .await
        .ok()
        .and_then(|e| e.into_iter().next().flatten())
        .map_or(0, |e| e.seconds);
    Ok(Some(yixin_dispatch_core::next_arrival(
        free_at, travel, now,
    )))
}

fn not_assignable(status: &str) -> ApiError {
    ApiError::conflict(
        "not_assignable",
        format!("the order is {status}: only pending, offered or escalated orders can be assigned"),
    )
}

/// Gives the order to a nurse by hand, under the same no-double-booking
/// rule as an accepted offer. An offer open to another nurse is withdrawn
/// (their phone gets `offer_closed` `taken`); the nurse's phone gets
/// `assigned`.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    request_body = AssignRequest,
    responses(
        (status = 200, description = "Assigned", body = DispatchOrder),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such order in the organisation", body = ErrorBody),
        (status = 409, description = "`nurse_busy` (an active job or another open offer), `nurse_off_shift`, or `not_assignable` (the order is past waiting for a nurse)", body = ErrorBody),
        (status = 422, description = "`unknown_nurse`, `nurse_inactive`, `missing_skills` or `not_qualified` (the credentials gate: unverified, too few years, title too low, a certificate missing or out of date on the visit's day), field `nurse_id`", body = ErrorBody),
    )
)]
#[post("/v1/dispatch/orders/{id}/assign")]
pub async fn assign_order(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    req: HttpRequest,
    id: web::Path<String>,
    body: JsonBody<AssignRequest>,
) -> Result<web::Json<DispatchOrder>, ApiError> {
    let org = org_of(&caller);
    let order = own_order(&svc, &org, &id).await?;
    let (nurse, qualified) =
        assignable_nurse(&svc, &org, &body.into_inner().nurse_id, &order).await?;
    if !order.status.needs_nurse() {
        return Err(not_assignable(order.status.as_str()));
    }
    let now = Utc::now();
    // A nurse on a visit may get the order as her next job, under the
    // engine's chain rule; her arrival then counts from the visit's end.
    let chained = chained_arrival(&svc, nurse.id, &order, now).await?;
    let eta = match chained {
        Some(at) => Some(at),
        None => arrival_if_sent(&svc, &org, nurse.id, &order, now).await,
    };
    let mut event: Option<Vec<u8>> = None;
    let result = svc
        .store
        .assign_order(
            order.id,
            nurse.id,
            now,
            eta,
            chained.is_some(),
            |o, from| {
                let msg = status_changed(o, from, now);
                event = Some(msg.payload.clone());
                Some(msg)
            },
        )
        .await;
    let (assigned, withdrawn) = match result {
        Ok(done) => done,
        Err(StoreError::Conflict(m)) => {
            return Err(ApiError::conflict(
                "nurse_busy",
                format!("the nurse is not free: {m}"),
            ));
        }
        Err(StoreError::StaleState { current }) => return Err(not_assignable(&current)),
        Err(e) => return Err(store_error(e, "order")),
    };
    let queue = svc.queue.as_ref();
    if let Some(offer) = withdrawn.filter(|o| o.status == OfferStatus::Withdrawn) {
        let push = offer_closed_to_nurse(&offer, OfferClosedReason::Taken, now);
        if let Err(e) = yixin_queue::send(queue, &push).await {
            tracing::warn!(offer_id = %offer.id, error = %e, "withdrawn offer not pushed");
        }
        publish(
            queue,
            org.as_str(),
            &offer_closed(&offer, OfferClosedReason::Taken, now),
        )
        .await;
    }
    if let Some(event) = &event {
        if let Err(e) = queue.broadcast(&nurse_channel(nurse.id), event).await {
            // The phone also gets its job on (re)connect and from `GET /v1/nurse/jobs`.
            tracing::warn!(nurse_id = %nurse.id, error = %e, "assignment not pushed to the phone");
        }
        publish(queue, org.as_str(), event).await;
    }
    tracing::info!(
        order_id = %assigned.id,
        nurse_id = %nurse.id,
        coordinator = %caller.0.sub,
        "order assigned by a coordinator"
    );
    // The answer shows the address; the row also keeps what qualified her.
    audit(
        &svc,
        &caller,
        &req,
        "order_assigned",
        "order",
        &[assigned.id.to_string()],
        Some(format!(
            "nurse {}; qualified by {}",
            nurse.id,
            serde_json::to_string(&qualified).unwrap_or_default()
        )),
    )
    .await;
    Ok(web::Json(one_detail(&svc, &assigned).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DispatchCancelRequest)]
pub struct CancelRequest {
    /// Why, e.g. what the resident said on the phone (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// Cancels an order on the resident's behalf, until the visit starts. An
/// open offer is withdrawn (the nurse's phone gets `offer_closed`
/// `cancelled`); an assigned nurse's phone learns through the order's
/// channel.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    request_body = CancelRequest,
    responses(
        (status = 200, description = "Cancelled", body = DispatchOrder),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not_cancellable`: the visit has started or the order is over", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[post("/v1/dispatch/orders/{id}/cancel")]
pub async fn cancel_order(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
    body: JsonBody<CancelRequest>,
) -> Result<web::Json<DispatchOrder>, ApiError> {
    let org = org_of(&caller);
    let reason = body.into_inner().reason;
    let order = own_order(&svc, &org, &id).await?;
    // The domain's answer on what we read gives the precise refusal; the
    // store asks it again under the lock.
    order
        .clone()
        .cancel(reason.as_deref(), Utc::now())
        .map_err(|e| match e {
            DomainError::NotCancellable { .. } | DomainError::IllegalTransition { .. } => {
                ApiError::conflict("not_cancellable", e.to_string())
            }
            other => invalid(other, "reason"),
        })?;
    let now = Utc::now();
    let mut event = None;
    let cancelled = svc
        .store
        .cancel_order(order.id, reason.as_deref(), now, |next, from| {
            let msg = status_changed(next, from, now);
            event = Some(msg.clone());
            msg
        })
        .await
        .map_err(|e| match e {
            StoreError::StaleState { current } => ApiError::conflict(
                "not_cancellable",
                format!("an order that is {current} can no longer be cancelled"),
            ),
            e => store_error(e, "order"),
        })?;
    if let Some(event) = &event {
        let broadcasts =
            cancellation_broadcasts(&cancelled.order, event, &cancelled.withdrawn, now);
        yixin_queue::send_all(svc.queue.as_ref(), broadcasts, "cancellation").await;
    }
    tracing::info!(
        order_id = %cancelled.order.id,
        coordinator = %caller.0.sub,
        "order cancelled by a coordinator"
    );
    Ok(web::Json(one_detail(&svc, &cancelled.order).await?))
}
