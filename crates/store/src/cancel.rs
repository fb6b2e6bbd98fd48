//! Cancelling an order: one transaction for everything a cancellation
//! changes, whoever asks (the resident or a coordinator).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseBackend, EntityTrait, QueryFilter, QuerySelect};
use yixin_domain::{Offer, OfferStatus, Order, OrderId, OrderStatus};

use crate::convert::{self, ts};
use crate::entity::{offer, order};
use crate::error::StoreError;
use crate::orders::transition_in;
use crate::store::{Store, finish};
use crate::types::{NewOutboxMessage, OrderTransition};

/// Why an offer was withdrawn when its order was cancelled (the offer's
/// recorded reason).
pub const CANCELLED_OFFER_REASON: &str = "order cancelled";

/// What a cancellation changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancelled {
    /// The order, now `cancelled`.
    pub order: Order,
    /// Its status before.
    pub from: OrderStatus,
    /// The order's offers that were open and are now withdrawn.
    pub withdrawn: Vec<Offer>,
}

impl Store {
    /// Cancels the order with `reason`, atomically: the order moves to
    /// `cancelled` (and loses its nurse) only if the domain still allows it
    /// at the moment of writing, every open offer of the order is withdrawn,
    /// and the timeline event and the outbox row `event(order, from)` are
    /// written, all in one transaction.
    ///
    /// `NotFound` if there is no such order; `StaleState { current }` if it
    /// can no longer be cancelled (the visit started, or it is over).
    pub async fn cancel_order(
        &self,
        id: OrderId,
        reason: Option<&str>,
        at: DateTime<Utc>,
        event: impl FnOnce(&Order, OrderStatus) -> NewOutboxMessage,
    ) -> Result<Cancelled, StoreError> {
        let postgres = self.backend() == DatabaseBackend::Postgres;
        let txn = self.begin_write().await?;
        let result = async {
            // Locked while we decide, offers first and then the order, in
            // the order an accept takes them (no deadlock between the two);
            // SQLite's write transaction already holds the whole database.
            let mut open_offers = offer::Entity::find()
                .select_only()
                .column(offer::Column::Id)
                .filter(offer::Column::OrderId.eq(id.0))
                .filter(offer::Column::Status.eq(OfferStatus::Open.as_str()));
            let mut find = order::Entity::find_by_id(id.0);
            if postgres {
                open_offers = open_offers.lock_exclusive();
                find = find.lock_exclusive();
            }
            let open: Vec<uuid::Uuid> = open_offers.into_tuple().all(&txn).await?;
            let row = find.one(&txn).await?.ok_or(StoreError::NotFound)?;
            let current = convert::order(row)?;
            let from = current.status;
            let mut next = current.clone();
            if next.cancel(reason, at).is_err() {
                return Err(StoreError::StaleState {
                    current: from.as_str().to_owned(),
                });
            }
            next.nurse_id = None;
            let mut change = OrderTransition::new(id, vec![from], OrderStatus::Cancelled, at);
            change.nurse_id = Some(None);
            change.cancel_reason = next.cancel_reason.clone();
            change.outbox = Some(event(&next, from));
            let order = transition_in(&txn, &change, None).await?;

            let mut withdrawn = Vec::with_capacity(open.len());
            if !open.is_empty() {
                offer::Entity::update_many()
                    .col_expr(
                        offer::Column::Status,
                        Expr::value(OfferStatus::Withdrawn.as_str()),
                    )
                    .col_expr(offer::Column::AnsweredAt, Expr::value(ts(at)))
                    .col_expr(
                        offer::Column::DeclineReason,
                        Expr::value(CANCELLED_OFFER_REASON),
                    )
                    .filter(offer::Column::Id.is_in(open.clone()))
                    .filter(offer::Column::Status.eq(OfferStatus::Open.as_str()))
                    .exec(&txn)
                    .await?;
                for row in offer::Entity::find()
                    .filter(offer::Column::Id.is_in(open))
                    .all(&txn)
                    .await?
                {
                    withdrawn.push(convert::offer(row)?);
                }
            }
            Ok(Cancelled {
                order,
                from,
                withdrawn,
            })
        }
        .await;
        finish(txn, result, "order").await
    }
}
