//! Offers of an order to a nurse.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use yixin_domain::{Offer, OfferId, OfferStatus, OrderId};

use crate::convert::{self, ts};
use crate::entity::offer;
use crate::error::{StoreError, is_unique_violation};
use crate::orders::insert_outbox;
use crate::store::{Store, rollback};
use crate::types::NewOutboxMessage;

impl Store {
    /// Records an offer. A second open offer for the same order, or for the
    /// same nurse, is a `Conflict` (partial unique indexes), as is an
    /// unknown order or nurse.
    pub async fn insert_offer(&self, offer: &Offer) -> Result<(), StoreError> {
        insert_offer_in(&self.db, offer).await
    }

    /// One offer, if it exists.
    pub async fn get_offer(&self, id: OfferId) -> Result<Option<Offer>, StoreError> {
        offer::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .map(convert::offer)
            .transpose()
    }

    /// Every offer made for the order, oldest first.
    pub async fn offers_for_order(&self, id: OrderId) -> Result<Vec<Offer>, StoreError> {
        offer::Entity::find()
            .filter(offer::Column::OrderId.eq(id.0))
            .order_by_asc(offer::Column::CreatedAt)
            .order_by_asc(offer::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::offer)
            .collect()
    }

    /// Conditional update `from` → `to` (normally `open` → accepted, declined,
    /// expired or withdrawn), setting `answered_at` and the reason. Of
    /// concurrent answers exactly one applies; the others get
    /// `StaleState { current }`. `NotFound` if there is no such offer.
    pub async fn answer_offer(
        &self,
        id: OfferId,
        from: OfferStatus,
        to: OfferStatus,
        at: DateTime<Utc>,
        reason: Option<String>,
    ) -> Result<Offer, StoreError> {
        self.answer_with_events(id, from, to, at, reason, Vec::new())
            .await
    }

    /// [`Store::answer_offer`], writing `events` in the same transaction.
    pub(crate) async fn answer_with_events(
        &self,
        id: OfferId,
        from: OfferStatus,
        to: OfferStatus,
        at: DateTime<Utc>,
        reason: Option<String>,
        events: Vec<NewOutboxMessage>,
    ) -> Result<Offer, StoreError> {
        let txn = self.begin_write().await?;
        let result = async {
            let res = offer::Entity::update_many()
                .col_expr(offer::Column::Status, Expr::value(to.as_str()))
                .col_expr(offer::Column::AnsweredAt, Expr::value(ts(at)))
                .col_expr(offer::Column::DeclineReason, Expr::value(reason))
                .filter(offer::Column::Id.eq(id.0))
                .filter(offer::Column::Status.eq(from.as_str()))
                .exec(&txn)
                .await
                .map_err(|e| StoreError::from_constraint(e, "offer"))?;
            let row = offer::Entity::find_by_id(id.0)
                .one(&txn)
                .await?
                .ok_or(StoreError::NotFound)?;
            if res.rows_affected == 0 {
                return Err(StoreError::StaleState {
                    current: row.status,
                });
            }
            for msg in &events {
                insert_outbox(&txn, msg, at).await?;
            }
            convert::offer(row)
        }
        .await;
        match result {
            Ok(offer) => {
                txn.commit().await?;
                Ok(offer)
            }
            Err(e) => {
                rollback(txn).await;
                Err(e)
            }
        }
    }
}

/// Inserts an offer on `db` (a connection or a transaction); see
/// [`Store::insert_offer`].
pub(crate) async fn insert_offer_in(
    db: &impl sea_orm::ConnectionTrait,
    offer: &Offer,
) -> Result<(), StoreError> {
    offer::Entity::insert(offer::ActiveModel {
        id: Set(offer.id.0),
        order_id: Set(offer.order_id.0),
        nurse_id: Set(offer.nurse_id.0),
        status: Set(offer.status.as_str().to_owned()),
        created_at: Set(ts(offer.created_at)),
        expires_at: Set(ts(offer.expires_at)),
        eta_min: Set(i64::from(offer.eta_min)),
        distance_m: Set(i64::from(offer.distance_m)),
        answered_at: Set(offer.answered_at.map(ts)),
        decline_reason: Set(offer.decline_reason.clone()),
        qualified_by: Set(offer
            .qualified_by
            .as_ref()
            .and_then(|q| serde_json::to_value(q).ok())),
        free_at: Set(offer.free_at.map(ts)),
    })
    .exec_without_returning(db)
    .await
    .map_err(offer_conflict)?;
    Ok(())
}

/// A failed offer insert: a unique violation is the one-open-offer rule.
pub(crate) fn offer_conflict(e: sea_orm::DbErr) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(
            "the order or the nurse already has an open offer (or the id is taken)".to_owned(),
        )
    } else {
        StoreError::from_constraint(e, "offer")
    }
}
