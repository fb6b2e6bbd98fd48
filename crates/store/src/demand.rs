//! The organisation's own order history, as the demand forecast learns it:
//! where and when each order appeared and what skills it required, nothing
//! else (no resident, no address beyond the point).

use chrono::{DateTime, Utc};
use sea_orm::prelude::Json;
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait,
    sea_query::JoinType,
};
use yixin_domain::{GeoPoint, OrgId, Skill};

use crate::convert::{skills_from_json, ts};
use crate::entity::{order, service};
use crate::error::StoreError;
use crate::store::Store;

/// One past order as demand: where and when it was placed, and the skills
/// its service requires (what a nurse must hold to take it).
#[derive(Debug, Clone, PartialEq)]
pub struct PastOrder {
    pub location: GeoPoint,
    pub created_at: DateTime<Utc>,
    /// The service's required skills in the catalogue now (none when the
    /// service left the catalogue, as the engine's eligibility has it).
    pub required_skills: Vec<Skill>,
}

impl Store {
    /// The organisation's orders placed at or after `since` (whatever became
    /// of them: a cancelled order was demand too), newest first, at most
    /// `limit` (the bound on what one relearning reads), each with its
    /// service's required skills (one query, joined with the catalogue). A
    /// row whose point or skills are not valid is `Corrupt`.
    pub async fn order_history(
        &self,
        org: &OrgId,
        since: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<PastOrder>, StoreError> {
        type Row = (uuid::Uuid, f64, f64, DateTime<Utc>, Option<Json>);
        let rows: Vec<Row> = order::Entity::find()
            .select_only()
            .column(order::Column::Id)
            .column(order::Column::Lat)
            .column(order::Column::Lng)
            .column(order::Column::CreatedAt)
            .column(service::Column::RequiredSkills)
            .join(JoinType::LeftJoin, order::Relation::Service.def())
            .filter(order::Column::OrgId.eq(org.as_str()))
            .filter(order::Column::CreatedAt.gte(ts(since)))
            .order_by_desc(order::Column::CreatedAt)
            .order_by_desc(order::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|(id, lat, lng, created_at, required)| {
                let location = GeoPoint::new(lat, lng)
                    .map_err(|e| StoreError::Corrupt(format!("orders {id}: {e}")))?;
                let required_skills = match required {
                    Some(json) => {
                        skills_from_json("services", format!("of order {id}").as_str(), &json)?
                    }
                    None => Vec::new(),
                };
                Ok(PastOrder {
                    location,
                    created_at,
                    required_skills,
                })
            })
            .collect()
    }
}
