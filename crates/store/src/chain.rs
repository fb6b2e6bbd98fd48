//! Chained jobs as the dispatcher needs them: every nurse's current visit
//! with its timings (for chain candidates and the overrun check), taking a
//! next job back, and promoting a next job whose current job ended.
//!
//! The rules live in `yixin_dispatch_core::chain`; the claim itself (one
//! current plus one next job per nurse) in [`crate::Store::claim_offer`]
//! and the slot indexes of the migration `m20261202_100001_chained_jobs`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, Statement, Value,
};
use yixin_domain::{NurseId, Order, OrderId, OrderStatus};

use crate::convert::{self, ts};
use crate::entity::{order, visit_check};
use crate::error::StoreError;
use crate::orders::transition_in;
use crate::store::{Store, finish};
use crate::types::OrderTransition;

/// A nurse's current job (not a next job) with what predicting its end needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentVisit {
    pub order: Order,
    pub arrived_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    /// Her next job, if she holds one.
    pub next: Option<Order>,
}

fn with_nurse() -> Vec<&'static str> {
    OrderStatus::ALL
        .into_iter()
        .filter(|s| s.has_nurse())
        .map(OrderStatus::as_str)
        .collect()
}

impl Store {
    /// Every nurse's current job (assigned … in service, not a next job),
    /// with its arrival and start (from the visit checks) and her next job.
    pub async fn current_visits(&self) -> Result<Vec<CurrentVisit>, StoreError> {
        let rows = order::Entity::find()
            .filter(order::Column::NurseId.is_not_null())
            .filter(order::Column::Status.is_in(with_nurse()))
            .all(&self.db)
            .await?;
        let mut currents = Vec::new();
        let mut nexts = std::collections::HashMap::new();
        for row in rows {
            let o = convert::order(row)?;
            match o.chained_after {
                Some(after) => {
                    nexts.insert(after, o);
                }
                None => currents.push(o),
            }
        }
        let ids: Vec<uuid::Uuid> = currents.iter().map(|o| o.id.0).collect();
        let mut timings = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            for c in visit_check::Entity::find()
                .filter(visit_check::Column::OrderId.is_in(chunk.to_vec()))
                .all(&self.db)
                .await?
            {
                timings.insert(c.order_id, (c.arrived_at, c.started_at));
            }
        }
        Ok(currents
            .into_iter()
            .map(|order| {
                let (arrived_at, started_at) =
                    timings.get(&order.id.0).copied().unwrap_or((None, None));
                let next = nexts.remove(&order.id);
                CurrentVisit {
                    order,
                    arrived_at,
                    started_at,
                    next,
                }
            })
            .collect())
    }

    /// Takes a next job back from its nurse (the overrun rule): `assigned`
    /// → `pending`, nurse and ETA cleared, only if it is still the next job
    /// as read at `version` (a job promoted meanwhile is hers to keep).
    /// `StaleState` otherwise.
    pub async fn take_back_next(
        &self,
        id: OrderId,
        version: i32,
        at: DateTime<Utc>,
        outbox: Option<crate::types::NewOutboxMessage>,
    ) -> Result<Order, StoreError> {
        let txn = self.begin_write().await?;
        let result = async {
            let row = order::Entity::find_by_id(id.0)
                .one(&txn)
                .await?
                .ok_or(StoreError::NotFound)?;
            if row.chained_after.is_none() || row.version != version {
                return Err(StoreError::StaleState {
                    current: row.status,
                });
            }
            let mut change =
                OrderTransition::new(id, vec![OrderStatus::Assigned], OrderStatus::Pending, at);
            change.nurse_id = Some(None);
            change.eta = Some(None);
            change.outbox = outbox;
            transition_in(&txn, &change, Some(version)).await
        }
        .await;
        finish(txn, result, "order").await
    }

    /// Next jobs whose current job is no longer under way (it ended in a
    /// race with the claim that chained them) become their nurse's current
    /// job. Returns them, with their nurse.
    pub async fn promote_orphaned_next(
        &self,
        at: DateTime<Utc>,
    ) -> Result<Vec<(OrderId, NurseId)>, StoreError> {
        let active = with_nurse()
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let backend = self.backend();
        let p = |i: usize| match backend {
            DatabaseBackend::Postgres => format!("${i}"),
            _ => "?".to_owned(),
        };
        let orphans = format!(
            "SELECT n.id, n.nurse_id FROM orders n WHERE n.chained_after IS NOT NULL \
             AND n.status IN ({active}) AND NOT EXISTS (SELECT 1 FROM orders c \
             WHERE c.id = n.chained_after AND c.nurse_id = n.nurse_id AND c.status IN ({active}))"
        );
        let rows = self
            .db
            .query_all_raw(Statement::from_string(backend, orphans))
            .await?;
        let mut promoted = Vec::new();
        for row in rows {
            let id: uuid::Uuid = row.try_get_by_index(0)?;
            let nurse: uuid::Uuid = row.try_get_by_index(1)?;
            let sql = format!(
                "UPDATE orders SET chained_after = NULL, updated_at = {}, version = version + 1 \
                 WHERE id = {} AND chained_after IS NOT NULL AND NOT EXISTS (SELECT 1 FROM orders c \
                 WHERE c.id = orders.chained_after AND c.nurse_id = orders.nurse_id AND c.status IN ({active}))",
                p(1),
                p(2)
            );
            let values: Vec<Value> = vec![ts(at).into(), id.into()];
            let res = self
                .db
                .execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
            if res.rows_affected() == 1 {
                promoted.push((OrderId(id), NurseId(nurse)));
            }
        }
        Ok(promoted)
    }
}
