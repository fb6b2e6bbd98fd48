//! Region leases (sharded dispatch): each a row taken, renewed and released
//! only by conditional updates, so of two instances asking at once exactly
//! one holds a region, and a holder that let its lease run out must take
//! it again (with a new fencing token) before renewing.
//!
//! Times are the callers' clocks (`now`): instances are expected to agree
//! to well within the dispatcher's safety margin (`lease_ttl_s / 5`).

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};

use crate::convert::ts;
use crate::entity::region_lease;
use crate::error::StoreError;
use crate::store::Store;

/// One region's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionLease {
    pub region: String,
    /// The instance holding it, or the last one (see `expires_at`); `None`
    /// for a region nobody has taken yet.
    pub holder: Option<String>,
    /// Raised each time the region is taken.
    pub token: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub acquired_at: Option<DateTime<Utc>>,
    pub renewed_at: Option<DateTime<Utc>>,
}

fn lease_of(m: region_lease::Model) -> RegionLease {
    RegionLease {
        region: m.region,
        holder: m.holder,
        token: m.token,
        expires_at: m.expires_at,
        acquired_at: m.acquired_at,
        renewed_at: m.renewed_at,
    }
}

impl Store {
    /// Makes a region known (an order came from it) without taking it; a
    /// known region is left as it is.
    pub async fn register_region(&self, region: &str) -> Result<(), StoreError> {
        region_lease::Entity::insert(region_lease::ActiveModel {
            region: Set(region.to_owned()),
            holder: Set(None),
            token: Set(0),
            expires_at: Set(None),
            acquired_at: Set(None),
            renewed_at: Set(None),
        })
        .on_conflict(
            OnConflict::column(region_lease::Column::Region)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// Takes `region` for `holder` until `now + ttl` if nobody holds it
    /// (never held, or expired by `now`) or `holder` itself does; returns
    /// the new fencing token, or `None` if another instance holds it.
    pub async fn acquire_region(
        &self,
        region: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: TimeDelta,
    ) -> Result<Option<i64>, StoreError> {
        let (now, until) = (ts(now), ts(now + ttl));
        let free = Condition::any()
            .add(region_lease::Column::Holder.is_null())
            .add(region_lease::Column::Holder.eq(holder))
            .add(region_lease::Column::ExpiresAt.is_null())
            .add(region_lease::Column::ExpiresAt.lte(now));
        let taken = region_lease::Entity::update_many()
            .col_expr(region_lease::Column::Holder, Expr::value(holder))
            .col_expr(
                region_lease::Column::Token,
                Expr::col(region_lease::Column::Token).add(1),
            )
            .col_expr(region_lease::Column::ExpiresAt, Expr::value(until))
            .col_expr(region_lease::Column::AcquiredAt, Expr::value(now))
            .col_expr(region_lease::Column::RenewedAt, Expr::value(now))
            .filter(region_lease::Column::Region.eq(region))
            .filter(free)
            .exec(&self.db)
            .await?
            .rows_affected;
        if taken == 0 {
            // Unknown region: the first insert wins it.
            let inserted = region_lease::Entity::insert(region_lease::ActiveModel {
                region: Set(region.to_owned()),
                holder: Set(Some(holder.to_owned())),
                token: Set(1),
                expires_at: Set(Some(until)),
                acquired_at: Set(Some(now)),
                renewed_at: Set(Some(now)),
            })
            .on_conflict(
                OnConflict::column(region_lease::Column::Region)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
            if inserted == 0 {
                return Ok(None);
            }
        }
        let row = region_lease::Entity::find_by_id(region.to_owned())
            .one(&self.db)
            .await?;
        Ok(row
            .filter(|r| r.holder.as_deref() == Some(holder))
            .map(|r| r.token))
    }

    /// Extends `holder`'s lease on `region` (with `token`) to `now + ttl`,
    /// if it still holds it unexpired; `false` otherwise (lost: stop
    /// serving the region).
    pub async fn renew_region(
        &self,
        region: &str,
        holder: &str,
        token: i64,
        now: DateTime<Utc>,
        ttl: TimeDelta,
    ) -> Result<bool, StoreError> {
        let res = region_lease::Entity::update_many()
            .col_expr(region_lease::Column::ExpiresAt, Expr::value(ts(now + ttl)))
            .col_expr(region_lease::Column::RenewedAt, Expr::value(ts(now)))
            .filter(region_lease::Column::Region.eq(region))
            .filter(region_lease::Column::Holder.eq(holder))
            .filter(region_lease::Column::Token.eq(token))
            .filter(region_lease::Column::ExpiresAt.gt(ts(now)))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Gives a held lease up now (a graceful stop), so another instance
    /// takes the region without waiting for the expiry.
    pub async fn release_region(
        &self,
        region: &str,
        holder: &str,
        token: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let res = region_lease::Entity::update_many()
            .col_expr(region_lease::Column::ExpiresAt, Expr::value(ts(now)))
            .filter(region_lease::Column::Region.eq(region))
            .filter(region_lease::Column::Holder.eq(holder))
            .filter(region_lease::Column::Token.eq(token))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Every known region and its lease, by region.
    pub async fn region_leases(&self) -> Result<Vec<RegionLease>, StoreError> {
        Ok(region_lease::Entity::find()
            .order_by_asc(region_lease::Column::Region)
            .all(&self.db)
            .await?
            .into_iter()
            .map(lease_of)
            .collect())
    }
}
