//! The coordinator's API: service areas, the organisation's orders with
//! their dispatch detail, manual assignment and cancellation, live KPIs and
//! the live WebSocket feed of the dashboard.
//!
//! Everything is scoped to the caller's organisation (`CoordinatorCaller`'s
//! `org`): another organisation's order, nurse or area is simply not found,
//! and its events never reach this organisation's feed. The KPI arithmetic
//! is pure, in [`kpi`]; the handlers only read and write through the store.
//!
//! Routes: `GET/POST /v1/dispatch/areas`, `GET /v1/dispatch/orders`,
//! `GET /v1/dispatch/orders/{id}`, `POST /v1/dispatch/orders/{id}/assign`,
//! `POST /v1/dispatch/orders/{id}/cancel`, `GET /v1/dispatch/overview`,
//! `GET /v1/dispatch/live`, `GET /v1/dispatch/orders/{id}/candidates`
//! (nurses by ETA, for manual assignment), `GET /v1/dispatch/cells` (the
//! H3 cells the dashboard's map draws, with supply and demand),
//! `GET /v1/dispatch/regions` (sharded dispatch: regions and their leases),
//! `GET /v1/dispatch/reviews`, `POST /v1/dispatch/orders/{id}/approve` and
//! `…/reject` (screening), `GET /v1/dispatch/records` (visit-record export).

use yixin_contracts::dispatch_channel;
use yixin_domain::{DomainError, OrderId, OrgId};
use yixin_platform::ApiError;
use yixin_queue::Queue;
use yixin_store::StoreError;

pub mod areas;
pub mod candidates;
pub mod cells;
pub mod kpi;
pub mod live;
pub mod orders;
pub mod overview;
pub mod records;
pub mod regions;
pub mod reviews;
pub mod safety;

/// Broadcasts an event (an encoded protobuf `Envelope`) on the
/// organisation's dispatch channel, which every coordinator's live feed of
/// that organisation follows. Best effort, like all pub/sub: a failure is
/// logged, the change it reports is already committed.
pub async fn publish(queue: &dyn Queue, org: &str, envelope: &[u8]) {
    if let Err(e) = queue.broadcast(&dispatch_channel(org), envelope).await {
        tracing::warn!(%org, error = %e, "dispatch event not broadcast to the coordinators");
    }
}

/// The caller's organisation.
pub(crate) fn org_of(caller: &yixin_auth::CoordinatorCaller) -> OrgId {
    OrgId::from(caller.0.org.as_str())
}

/// An order id from a path: one that cannot be an id names nothing.
pub(crate) fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    raw.parse()
        .map(OrderId)
        .map_err(|_| ApiError::not_found("no such order"))
}

/// A refused input, naming the field.
pub(crate) fn invalid(e: DomainError, field: &str) -> ApiError {
    ApiError::Unprocessable {
        code: e.code().into(),
        message: e.to_string(),
        field: Some(field.to_owned()),
    }
}

/// A store failure as the coordinator sees it (`what` names the missing thing).
pub(crate) fn store_error(e: StoreError, what: &str) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found(format!("no such {what}")),
        StoreError::Conflict(m) => ApiError::conflict("conflict", m),
        StoreError::StaleState { current } => ApiError::conflict(
            "stale_state",
            format!("the {what} changed meanwhile; it is now {current}"),
        ),
        other => ApiError::internal(other),
    }
}
