//! The transactional outbox and the nurses' location trail.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend,
    DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    TransactionTrait,
};
use yixin_domain::{NurseId, OrderStatus};

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
        mark_published_on(&self.db, ids, at).await
    }

    /// Claims up to `limit` unpublished outbox rows, oldest first, for one
    /// relay. On PostgreSQL the rows stay locked (`FOR UPDATE SKIP LOCKED`)
    /// until [`OutboxClaim::published`] marks them or the claim is dropped,
    /// so relays of other instances skip them and no row is published by
    /// two relays at once. SQLite has one writer process; there the claim is
    /// a plain read.
    pub async fn claim_outbox(&self, limit: u64) -> Result<OutboxClaim, StoreError> {
        if self.backend() != DatabaseBackend::Postgres {
            let rows = self.unpublished_outbox(limit).await?;
            return Ok(OutboxClaim {
                store: self.clone(),
                txn: None,
                rows,
            });
        }
        let txn = self.db.begin().await?;
        let rows = outbox::Entity::find()
            .filter(outbox::Column::PublishedAt.is_null())
            .order_by_asc(outbox::Column::Id)
            .limit(limit)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await;
        let rows = match rows {
            Ok(rows) => rows.into_iter().map(convert::outbox_message).collect(),
            Err(e) => {
                rollback(txn).await;
                return Err(e.into());
            }
        };
        Ok(OutboxClaim {
            store: self.clone(),
            txn: Some(txn),
            rows,
        })
    }

    /// Deletes up to `batch` outbox rows published before `before`, oldest
    /// first; returns how many went. Unpublished rows are never deleted.
    pub async fn prune_outbox(&self, before: DateTime<Utc>, batch: u64) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
             WHERE published_at IS NOT NULL AND published_at < {} ORDER BY id LIMIT {})",
            self.placeholder(1),
            self.placeholder(2)
        );
        self.delete_batch(sql, before, batch).await
    }

    /// Deletes up to `batch` trail samples recorded before `before` that were
    /// not taken on a visit (between an order's assignment to the nurse and
    /// its completion or cancellation); returns how many went. Samples of a
    /// visit are proof of it: see [`Store::prune_visit_trail`].
    pub async fn prune_off_visit_trail(
        &self,
        before: DateTime<Utc>,
        batch: u64,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM nurse_locations WHERE id IN (\
               SELECT l.id FROM nurse_locations l \
               WHERE l.recorded_at < {before} \
                 AND NOT EXISTS (\
                   SELECT 1 FROM orders o \
                   JOIN order_events a ON a.order_id = o.id AND a.status = '{assigned}' \
                   WHERE o.nurse_id = l.nurse_id AND a.at <= l.recorded_at \
                     AND NOT EXISTS (\
                       SELECT 1 FROM order_events e WHERE e.order_id = o.id \
                         AND e.status IN ('{completed}', '{cancelled}') AND e.at < l.recorded_at)) \
               ORDER BY l.id LIMIT {limit})",
            before = self.placeholder(1),
            limit = self.placeholder(2),
            assigned = OrderStatus::Assigned.as_str(),
            completed = OrderStatus::Completed.as_str(),
            cancelled = OrderStatus::Cancelled.as_str(),
        );
        self.delete_batch(sql, before, batch).await
    }

    /// Deletes up to `batch` trail samples recorded before `before`, visit
    /// or not (the visit trail's own, longer retention); returns how many went.
    pub async fn prune_visit_trail(
        &self,
        before: DateTime<Utc>,
        batch: u64,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM nurse_locations WHERE id IN (SELECT id FROM nurse_locations \
             WHERE recorded_at < {} ORDER BY id LIMIT {})",
            self.placeholder(1),
            self.placeholder(2)
        );
        self.delete_batch(sql, before, batch).await
    }

    /// The `n`th bound parameter in this backend's spelling.
    fn placeholder(&self, n: usize) -> String {
        match self.backend() {
            DatabaseBackend::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        }
    }

    async fn delete_batch(
        &self,
        sql: String,
        before: DateTime<Utc>,
        batch: u64,
    ) -> Result<u64, StoreError> {
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let stmt =
            Statement::from_sql_and_values(self.backend(), sql, [ts(before).into(), limit.into()]);
        Ok(self.db.execute_raw(stmt).await?.rows_affected())
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

/// Outbox rows one relay has claimed ([`Store::claim_outbox`]).
#[derive(Debug)]
pub struct OutboxClaim {
    store: Store,
    txn: Option<DatabaseTransaction>,
    /// The claimed rows, oldest first.
    pub rows: Vec<OutboxMessage>,
}

impl OutboxClaim {
    /// Marks `ids` (some of the claimed rows) published at `at` and releases
    /// the claim; the other claimed rows go back to the outbox.
    pub async fn published(self, ids: &[i64], at: DateTime<Utc>) -> Result<(), StoreError> {
        match self.txn {
            None => self.store.mark_published(ids, at).await,
            Some(txn) => match mark_published_on(&txn, ids, at).await {
                Ok(()) => Ok(txn.commit().await?),
                Err(e) => {
                    rollback(txn).await;
                    Err(e)
                }
            },
        }
    }
}

async fn mark_published_on(
    db: &impl ConnectionTrait,
    ids: &[i64],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    outbox::Entity::update_many()
        .col_expr(outbox::Column::PublishedAt, Expr::value(Some(ts(at))))
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .filter(outbox::Column::PublishedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}
