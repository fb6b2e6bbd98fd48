//! What the coordinator's dashboard reads: an organisation's orders with
//! their offers and timelines in a few queries (not one per order), open
//! orders counted by status, and the day's orders with the moments they
//! were first assigned and reached, for the KPIs.
//!
//! Every query here is scoped to one organisation, or takes ids the caller
//! already scoped.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use yixin_domain::{Offer, Order, OrderId, OrderStatus, OrgId, TimelineEvent};

use crate::convert::{self, ts};
use crate::entity::{offer, order, order_event};
use crate::error::StoreError;
use crate::store::Store;

/// One of the day's orders as the KPIs need it: when it was created and
/// promised, and when it was first assigned to a nurse and reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayOrder {
    pub id: OrderId,
    /// Its status now.
    pub status: OrderStatus,
    pub created_at: DateTime<Utc>,
    pub promised_by: DateTime<Utc>,
    /// The first `assigned` of its timeline (an order may be assigned again
    /// after a nurse dropped out; the first is when dispatch succeeded).
    pub first_assigned_at: Option<DateTime<Utc>>,
    /// The `arrived` of its timeline: the nurse at the door.
    pub arrived_at: Option<DateTime<Utc>>,
}

fn parse_status(
    table: &str,
    key: impl std::fmt::Display,
    s: &str,
) -> Result<OrderStatus, StoreError> {
    s.parse::<OrderStatus>()
        .map_err(|e| StoreError::Corrupt(format!("{table} {key}: {e}")))
}

impl Store {
    /// One order of the organisation, if it exists there (another
    /// organisation's order is `None`, as if it did not exist).
    pub async fn org_order(&self, org: &OrgId, id: OrderId) -> Result<Option<Order>, StoreError> {
        order::Entity::find_by_id(id.0)
            .filter(order::Column::OrgId.eq(org.as_str()))
            .one(&self.db)
            .await?
            .map(convert::order)
            .transpose()
    }

    /// The organisation's orders, newest first (`created_at`, then id), in
    /// any of `statuses` (every status when empty), at most `limit`.
    pub async fn org_orders(
        &self,
        org: &OrgId,
        statuses: &[OrderStatus],
        limit: u64,
    ) -> Result<Vec<Order>, StoreError> {
        let mut query = order::Entity::find().filter(order::Column::OrgId.eq(org.as_str()));
        if !statuses.is_empty() {
            query = query.filter(order::Column::Status.is_in(statuses.iter().map(|s| s.as_str())));
        }
        query
            .order_by_desc(order::Column::CreatedAt)
            .order_by_desc(order::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::order)
            .collect()
    }

    /// Every offer of each of `orders`, oldest first per order; an order
    /// without offers has no entry.
    pub async fn offers_for_orders(
        &self,
        orders: &[OrderId],
    ) -> Result<HashMap<OrderId, Vec<Offer>>, StoreError> {
        let mut out: HashMap<OrderId, Vec<Offer>> = HashMap::new();
        if orders.is_empty() {
            return Ok(out);
        }
        let rows = offer::Entity::find()
            .filter(offer::Column::OrderId.is_in(orders.iter().map(|o| o.0)))
            .order_by_asc(offer::Column::CreatedAt)
            .order_by_asc(offer::Column::Id)
            .all(&self.db)
            .await?;
        for row in rows {
            let offer = convert::offer(row)?;
            out.entry(offer.order_id).or_default().push(offer);
        }
        Ok(out)
    }

    /// The timeline of each of `orders`, oldest first per order.
    pub async fn timelines_for_orders(
        &self,
        orders: &[OrderId],
    ) -> Result<HashMap<OrderId, Vec<TimelineEvent>>, StoreError> {
        let mut out: HashMap<OrderId, Vec<TimelineEvent>> = HashMap::new();
        if orders.is_empty() {
            return Ok(out);
        }
        let rows = order_event::Entity::find()
            .filter(order_event::Column::OrderId.is_in(orders.iter().map(|o| o.0)))
            .order_by_asc(order_event::Column::Id)
            .all(&self.db)
            .await?;
        for row in rows {
            let event = convert::timeline_event(row)?;
            out.entry(event.order_id).or_default().push(event);
        }
        Ok(out)
    }

    /// How many of the organisation's orders are in each of `statuses` (a
    /// status with none is absent), counted by the database.
    pub async fn org_order_counts(
        &self,
        org: &OrgId,
        statuses: &[OrderStatus],
    ) -> Result<HashMap<OrderStatus, u64>, StoreError> {
        if statuses.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, i64)> = order::Entity::find()
            .select_only()
            .column(order::Column::Status)
            .column_as(order::Column::Id.count(), "n")
            .filter(order::Column::OrgId.eq(org.as_str()))
            .filter(order::Column::Status.is_in(statuses.iter().map(|s| s.as_str())))
            .group_by(order::Column::Status)
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|(status, n)| {
                let status = parse_status("orders", org.as_str(), &status)?;
                Ok((status, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    /// The organisation's orders created at or after `since`, oldest first,
    /// with their first assignment and their arrival (two queries, whatever
    /// the number of orders).
    pub async fn day_orders(
        &self,
        org: &OrgId,
        since: DateTime<Utc>,
    ) -> Result<Vec<DayOrder>, StoreError> {
        let rows: Vec<(uuid::Uuid, String, DateTime<Utc>, DateTime<Utc>)> = order::Entity::find()
            .select_only()
            .column(order::Column::Id)
            .column(order::Column::Status)
            .column(order::Column::CreatedAt)
            .column(order::Column::PromisedBy)
            .filter(order::Column::OrgId.eq(org.as_str()))
            .filter(order::Column::CreatedAt.gte(ts(since)))
            .order_by_asc(order::Column::CreatedAt)
            .order_by_asc(order::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let todays = Query::select()
            .column(order::Column::Id)
            .from(order::Entity)
            .and_where(order::Column::OrgId.eq(org.as_str()))
            .and_where(order::Column::CreatedAt.gte(ts(since)))
            .to_owned();
        let events: Vec<(uuid::Uuid, String, DateTime<Utc>)> = order_event::Entity::find()
            .select_only()
            .column(order_event::Column::OrderId)
            .column(order_event::Column::Status)
            .column(order_event::Column::At)
            .filter(order_event::Column::OrderId.in_subquery(todays))
            .filter(order_event::Column::Status.is_in([
                OrderStatus::Assigned.as_str(),
                OrderStatus::Arrived.as_str(),
            ]))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut assigned: HashMap<uuid::Uuid, DateTime<Utc>> = HashMap::new();
        let mut arrived: HashMap<uuid::Uuid, DateTime<Utc>> = HashMap::new();
        for (id, status, at) in events {
            let slot = if status == OrderStatus::Assigned.as_str() {
                &mut assigned
            } else {
                &mut arrived
            };
            slot.entry(id)
                .and_modify(|t| *t = (*t).min(at))
                .or_insert(at);
        }
        rows.into_iter()
            .map(|(id, status, created_at, promised_by)| {
                Ok(DayOrder {
                    id: OrderId(id),
                    status: parse_status("orders", id, &status)?,
                    created_at,
                    promised_by,
                    first_assigned_at: assigned.get(&id).copied(),
                    arrived_at: arrived.get(&id).copied(),
                })
            })
            .collect()
    }

    /// The stars of the organisation's ratings recorded at or after
    /// `since`. A rating is the last change a (completed) order can take, so
    /// its `updated_at` is when the resident rated it.
    pub async fn ratings_since(
        &self,
        org: &OrgId,
        since: DateTime<Utc>,
    ) -> Result<Vec<u8>, StoreError> {
        let rows: Vec<Option<i16>> = order::Entity::find()
            .select_only()
            .column(order::Column::RatingStars)
            .filter(order::Column::OrgId.eq(org.as_str()))
            .filter(order::Column::RatingStars.is_not_null())
            .filter(order::Column::UpdatedAt.gte(ts(since)))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .flatten()
            .filter_map(|s| u8::try_from(s).ok())
            .collect())
    }
}
