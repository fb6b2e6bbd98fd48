//! The transactional outbox and the nurses' location trail.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use yixin_domain::NurseId;

use crate::convert::{self, ts};
use crate::entity::{nurse_location, outbox};
use crate::error::StoreError;
use crate::store::{Store, rollback};
use crate::types::{LocationFix, OutboxMessage};

/// Rows per INSERT statement: far below both backends' bound-parameter limits.
const LOCATION_ROWS_PER_INSERT: usize = 1000;

impl Store {
    /// Outbox rows not yet published, oldest first. Delivery is at least
    /// once: two relays may read the same rows; consumers dedupe.
    pub async fn unpublished_outbox(&self, limit: u64) -> Result<Vec<OutboxMessage>, StoreError> {
        Ok(outbox::Entity::find()
            .filter(outbox::Column::PublishedAt.is_null())
            .order_by_asc(outbox::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::outbox_message)
            .collect())
    }

    /// Marks rows as published at `at`; rows already marked keep their time.
    pub async fn mark_published(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        outbox::Entity::update_many()
            .col_expr(outbox::Column::PublishedAt, Expr::value(Some(ts(at))))
            .filter(outbox::Column::Id.is_in(ids.iter().copied()))
            .filter(outbox::Column::PublishedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Appends fixes to the trail: one multi-row INSERT (per 1000 fixes, in
    /// one transaction).
    pub async fn append_locations(&self, fixes: &[LocationFix]) -> Result<(), StoreError> {
        let rows = |chunk: &[LocationFix]| -> Vec<nurse_location::ActiveModel> {
            chunk
                .iter()
                .map(|f| nurse_location::ActiveModel {
                    id: NotSet,
                    nurse_id: Set(f.nurse_id.0),
                    lat: Set(f.location.lat()),
                    lng: Set(f.location.lng()),
                    accuracy_m: Set(f.accuracy_m),
                    recorded_at: Set(ts(f.recorded_at)),
                    received_at: Set(ts(f.received_at)),
                })
                .collect()
        };
        match fixes.len() {
            0 => Ok(()),
            n if n <= LOCATION_ROWS_PER_INSERT => {
                nurse_location::Entity::insert_many(rows(fixes))
                    .exec_without_returning(&self.db)
                    .await?;
                Ok(())
            }
            _ => {
                let txn = self.begin_write().await?;
                for chunk in fixes.chunks(LOCATION_ROWS_PER_INSERT) {
                    if let Err(e) = nurse_location::Entity::insert_many(rows(chunk))
                        .exec_without_returning(&txn)
                        .await
                    {
                        rollback(txn).await;
                        return Err(e.into());
                    }
                }
                txn.commit().await?;
                Ok(())
            }
        }
    }

    /// The nurse's fixes recorded at or after `since`, oldest first, `limit` at most.
    pub async fn locations(
        &self,
        nurse: NurseId,
        since: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<LocationFix>, StoreError> {
        nurse_location::Entity::find()
            .filter(nurse_location::Column::NurseId.eq(nurse.0))
            .filter(nurse_location::Column::RecordedAt.gte(ts(since)))
            .order_by_asc(nurse_location::Column::RecordedAt)
            .order_by_asc(nurse_location::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::location_fix)
            .collect()
    }
}
