//! Visit records: append-only, one row per submitted version.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;
use yixin_domain::{OrderId, OrgId, VisitRecord};

use crate::convert::{self, ts};
use crate::entity::visit_record;
use crate::error::{StoreError, is_unique_violation};
use crate::store::{Store, finish};

/// How often an amendment retries when a concurrent one took its version number.
const VERSION_ATTEMPTS: usize = 3;

impl Store {
    /// Appends a version of an order's visit record: the next version
    /// number (1 for the first) is chosen here and returned in the record;
    /// `record.version` is ignored. Rows are never updated or deleted.
    pub async fn append_visit_record(
        &self,
        mut record: VisitRecord,
    ) -> Result<VisitRecord, StoreError> {
        for _ in 0..VERSION_ATTEMPTS {
            let txn = self.begin_write().await?;
            let result = async {
                let last: Option<i32> = visit_record::Entity::find()
                    .select_only()
                    .column(visit_record::Column::Version)
                    .filter(visit_record::Column::OrderId.eq(record.order_id.0))
                    .order_by_desc(visit_record::Column::Version)
                    .into_tuple()
                    .one(&txn)
                    .await?;
                let version = last.unwrap_or(0) + 1;
                visit_record::Entity::insert(visit_record::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    order_id: Set(record.order_id.0),
                    version: Set(version),
                    org_id: Set(record.org_id.as_str().to_owned()),
                    nurse_id: Set(record.nurse_id.0),
                    service_code: Set(record.service_code.clone()),
                    field_values: Set(convert::to_json(&record.values)),
                    notes: Set(record.notes.clone()),
                    submitted_at: Set(ts(record.submitted_at)),
                })
                .exec_without_returning(&txn)
                .await?;
                Ok::<i32, StoreError>(version)
            }
            .await;
            match finish(txn, result, "visit record").await {
                Ok(version) => {
                    record.version = u32::try_from(version).unwrap_or(u32::MAX);
                    record.submitted_at = ts(record.submitted_at);
                    return Ok(record);
                }
                Err(StoreError::Database(e)) if is_unique_violation(&e) => continue,
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(
            "the visit record is being amended concurrently; retry".to_owned(),
        ))
    }

    /// The latest version of an order's visit record, if any was submitted.
    pub async fn latest_visit_record(
        &self,
        order: OrderId,
    ) -> Result<Option<VisitRecord>, StoreError> {
        visit_record::Entity::find()
            .filter(visit_record::Column::OrderId.eq(order.0))
            .order_by_desc(visit_record::Column::Version)
            .one(&self.db)
            .await?
            .map(convert::visit_record)
            .transpose()
    }

    /// Every version of every record of `org` submitted in `[from, to)`,
    /// oldest first, at most `limit`.
    pub async fn visit_records(
        &self,
        org: &OrgId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<VisitRecord>, StoreError> {
        visit_record::Entity::find()
            .filter(visit_record::Column::OrgId.eq(org.as_str()))
            .filter(visit_record::Column::SubmittedAt.gte(ts(from)))
            .filter(visit_record::Column::SubmittedAt.lt(ts(to)))
            .order_by_asc(visit_record::Column::SubmittedAt)
            .order_by_asc(visit_record::Column::OrderId)
            .order_by_asc(visit_record::Column::Version)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::visit_record)
            .collect()
    }
}
