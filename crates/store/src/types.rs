//! Values that cross the store's API besides the domain types.

use chrono::{DateTime, Utc};
use yixin_domain::{GeoPoint, NurseId, Order, OrderClinical, OrderId, OrderStatus};

/// An event to publish, written in the same transaction as the change it
/// reports (the shape is the contracts crate's).
pub use yixin_contracts::NewOutboxMessage;

/// An outbox row waiting for (or past) publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// What an idempotency key stands for: the first request made with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Who the key belongs to (e.g. `resident:<org>:<sub>`), so keys of different callers never collide.
    pub scope: String,
    pub key: String,
    /// A hash of the request body; the same key with another hash is a conflict.
    pub request_hash: String,
    /// The order the first request created. On create, the store records the created order's id.
    pub order_id: OrderId,
    pub created_at: DateTime<Utc>,
}

/// Where a page of a resident's orders ends: the next page starts strictly after (older than) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCursor {
    pub created_at: DateTime<Utc>,
    pub id: OrderId,
}

impl From<&Order> for OrderCursor {
    /// The cursor just past `order` (use the last order of a page).
    fn from(order: &Order) -> Self {
        OrderCursor {
            created_at: order.created_at,
            id: order.id,
        }
    }
}

/// One GPS fix of a nurse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocationFix {
    pub nurse_id: NurseId,
    pub location: GeoPoint,
    pub accuracy_m: f64,
    /// When the phone took the fix.
    pub recorded_at: DateTime<Utc>,
    /// When the server got it.
    pub received_at: DateTime<Utc>,
}

/// What [`crate::Store::create_order`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOrderOutcome {
    /// The order, its first timeline event and its outbox row were written.
    Created,
    /// The idempotency key was used before with the same request: nothing was
    /// written; this is the order the first request created.
    Replayed(OrderId),
}

/// A conditional status change of one order (see [`crate::Store::transition_order`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderTransition {
    pub id: OrderId,
    /// The statuses the order may be in for the change to apply.
    pub from: Vec<OrderStatus>,
    pub to: OrderStatus,
    /// When it happened: the timeline event's time and the order's `updated_at`.
    pub at: DateTime<Utc>,
    /// `Some(x)` sets the nurse to `x` (`Some(None)` clears it); `None` leaves it.
    pub nurse_id: Option<Option<NurseId>>,
    /// `Some(x)` sets the ETA to `x` (`Some(None)` clears it); `None` leaves it.
    pub eta: Option<Option<DateTime<Utc>>>,
    /// `Some` sets the cancel reason; `None` leaves it.
    pub cancel_reason: Option<String>,
    /// An event to publish with the change, in the same transaction.
    pub outbox: Option<NewOutboxMessage>,
    /// `Some` sets the promise (screening approval restarts the clock); `None` leaves it.
    pub promised_by: Option<DateTime<Utc>>,
    /// `Some` replaces the order's clinical part (consent on site, a
    /// screening's reason); `None` leaves it.
    pub clinical: Option<OrderClinical>,
    /// `Some(x)` makes the order a next job waiting for `x` (see
    /// `Order::chained_after`); `None` leaves it. A change to a status
    /// without a nurse always clears it.
    pub chained_after: Option<OrderId>,
}

impl OrderTransition {
    /// A bare status change: nothing else set, nothing published.
    pub fn new(id: OrderId, from: Vec<OrderStatus>, to: OrderStatus, at: DateTime<Utc>) -> Self {
        OrderTransition {
            id,
            from,
            to,
            at,
            nurse_id: None,
            eta: None,
            cancel_reason: None,
            outbox: None,
            promised_by: None,
            clinical: None,
            chained_after: None,
        }
    }
}
