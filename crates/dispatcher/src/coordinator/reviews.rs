//! Screening: orders waiting for a coordinator (`awaiting_review`), and
//! their approval (dispatch starts, and the 30-minute promise with it) or
//! rejection (with a reason the resident reads).

use actix_web::{get, post, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yixin_auth::CoordinatorCaller;
use yixin_contracts::status_changed;
use yixin_domain::{DomainError, Order, OrderStatus};
use yixin_platform::{ApiError, ErrorBody, JsonBody};
use yixin_store::{OrderTransition, StoreError};

use super::orders::{DispatchOrder, details, one_detail, own_order};
use super::{invalid, org_of, publish, store_error};
use crate::Dispatcher;

/// Most orders the review queue lists.
pub const MAX_QUEUE: u64 = 500;

/// One order in the review queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewItem {
    /// Whole minutes since the order was placed.
    pub waiting_min: i64,
    pub order: DispatchOrder,
}

/// `POST /v1/dispatch/orders/{id}/reject` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Shown to the resident; 1 to 500 characters.
    #[schema(
        min_length = 1,
        max_length = 500,
        example = "请先到医院评估伤口后再预约"
    )]
    pub reason: String,
}

/// The organisation's orders waiting for screening, oldest first, with
/// how long each has waited.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    responses(
        (status = 200, body = [ReviewItem]),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/v1/dispatch/reviews")]
pub async fn list_reviews(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
) -> Result<web::Json<Vec<ReviewItem>>, ApiError> {
    let org = org_of(&caller);
    let mut orders = svc
        .store
        .org_orders(&org, &[OrderStatus::AwaitingReview], MAX_QUEUE)
        .await
        .map_err(|e| store_error(e, "order"))?;
    orders.reverse();
    let now = Utc::now();
    let views = details(&svc, &orders).await?;
    Ok(web::Json(
        orders
            .iter()
            .zip(views)
            .map(|(o, order)| ReviewItem {
                waiting_min: (now - o.created_at).num_minutes().max(0),
                order,
            })
            .collect(),
    ))
}

fn not_awaiting(status: &str) -> ApiError {
    ApiError::conflict(
        "not_awaiting_review",
        format!("the order is {status}: only an order awaiting review can be approved or rejected"),
    )
}

/// Writes a screening decision (`next` as the domain made it from
/// `order`), publishes it, and answers the order's detail.
async fn decide(
    svc: &Dispatcher,
    order: &Order,
    next: &Order,
    reviewer: &str,
) -> Result<DispatchOrder, ApiError> {
    let now = next.updated_at;
    let mut clinical = next.clinical.clone();
    clinical.reviewed_by = Some(reviewer.to_owned());
    let mut change = OrderTransition::new(
        order.id,
        vec![OrderStatus::AwaitingReview],
        next.status,
        now,
    );
    change.promised_by = Some(next.promised_by);
    change.clinical = Some(clinical);
    // To `pending`, this event is also the dispatcher's cue to start.
    let event = status_changed(next, order.status, now);
    change.outbox = Some(event.clone());
    let done = svc
        .store
        .transition_order(change)
        .await
        .map_err(|e| match e {
            StoreError::StaleState { current } => not_awaiting(&current),
            e => store_error(e, "order"),
        })?;
    publish(svc.queue.as_ref(), order.org_id.as_str(), &event.payload).await;
    tracing::info!(
        order_id = %done.id,
        status = %done.status,
        coordinator = %reviewer,
        "screening decided"
    );
    one_detail(svc, &done).await
}

/// Approves an order in screening: it becomes `pending`, the dispatcher
/// offers it, and `promised_by` restarts at now + 30 minutes (the promise
/// counts from approval; a later booked time stays).
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "Approved: now pending", body = DispatchOrder),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not_awaiting_review`", body = ErrorBody),
    )
)]
#[post("/v1/dispatch/orders/{id}/approve")]
pub async fn approve_order(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
) -> Result<web::Json<DispatchOrder>, ApiError> {
    let org = org_of(&caller);
    let order = own_order(&svc, &org, &id).await?;
    let mut next = order.clone();
    next.approve(Utc::now())
        .map_err(|_| not_awaiting(order.status.as_str()))?;
    Ok(web::Json(decide(&svc, &order, &next, &caller.0.sub).await?))
}

/// Rejects an order in screening, with a reason the resident reads.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    request_body = RejectRequest,
    responses(
        (status = 200, description = "Rejected", body = DispatchOrder),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not_awaiting_review`", body = ErrorBody),
        (status = 422, description = "No reason, or one too long", body = ErrorBody),
    )
)]
#[post("/v1/dispatch/orders/{id}/reject")]
pub async fn reject_order(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
    body: JsonBody<RejectRequest>,
) -> Result<web::Json<DispatchOrder>, ApiError> {
    let org = org_of(&caller);
    let order = own_order(&svc, &org, &id).await?;
    let mut next = order.clone();
    next.reject(&body.into_inner().reason, Utc::now())
        .map_err(|e| match e {
            DomainError::IllegalTransition { .. } => not_awaiting(order.status.as_str()),
            other => invalid(other, "reason"),
        })?;
    Ok(web::Json(decide(&svc, &order, &next, &caller.0.sub).await?))
}
