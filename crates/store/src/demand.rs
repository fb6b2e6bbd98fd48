//! The organisation's own order history, as the demand forecast learns it:
//! where and when each order appeared, nothing else (no resident, no
//! address beyond the point).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use yixin_domain::{GeoPoint, OrgId};

use crate::convert::ts;
use crate::entity::order;
use crate::error::StoreError;
use crate::store::Store;

/// One past order as demand: where and when it was placed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PastOrder {
    pub location: GeoPoint,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// The organisation's orders placed at or after `since` (whatever became
    /// of them: a cancelled order was demand too), newest first, at most
    /// `limit` (the bound on what one relearning reads). A row whose point
    /// is not a valid position is `Corrupt`.
    pub async fn order_history(
        &self,
        org: &OrgId,
        since: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<PastOrder>, StoreError> {
        let rows: Vec<(uuid::Uuid, f64, f64, DateTime<Utc>)> = order::Entity::find()
            .select_only()
            .column(order::Column::Id)
            .column(order::Column::Lat)
            .column(order::Column::Lng)
            .column(order::Column::CreatedAt)
            .filter(order::Column::OrgId.eq(org.as_str()))
            .filter(order::Column::CreatedAt.gte(ts(since)))
            .order_by_desc(order::Column::CreatedAt)
            .order_by_desc(order::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|(id, lat, lng, created_at)| {
                let location = GeoPoint::new(lat, lng)
                    .map_err(|e| StoreError::Corrupt(format!("orders {id}: {e}")))?;
                Ok(PastOrder {
                    location,
                    created_at,
                })
            })
            .collect()
    }
}
