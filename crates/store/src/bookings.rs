//! Planned shifts and bookings: the roster's future and the reservations
//! that keep a nurse's booked visits apart.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;
use yixin_domain::{GeoPoint, NurseId, Order, OrderId, OrderStatus, OrgId};

use crate::convert::{self, ts};
use crate::entity::{booking, nurse, nurse_shift, order};
use crate::error::StoreError;
use crate::store::{Store, finish};

/// One planned shift of a nurse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedShift {
    pub id: Uuid,
    pub nurse_id: NurseId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// A booked order's hold on its nurse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Booking {
    pub order_id: OrderId,
    pub nurse_id: NurseId,
    pub location: GeoPoint,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub course_id: Option<Uuid>,
}

/// How far around a new booking the others are read for the overlap check:
/// longer than any visit plus the travel to or from it.
const NEIGHBOURHOOD: TimeDelta = TimeDelta::hours(24);

/// Order statuses in which a booking no longer holds its nurse.
const RELEASED: [OrderStatus; 2] = [OrderStatus::Cancelled, OrderStatus::Rejected];

impl Store {
    /// Plans a shift for a nurse of `org`. `NotFound` for a nurse of another
    /// organisation (or none).
    pub async fn add_shift(
        &self,
        org: &OrgId,
        nurse: NurseId,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    ) -> Result<PlannedShift, StoreError> {
        let known = nurse::Entity::find_by_id(nurse.0)
            .filter(nurse::Column::OrgId.eq(org.as_str()))
            .one(&self.db)
            .await?;
        if known.is_none() {
            return Err(StoreError::NotFound);
        }
        let shift = PlannedShift {
            id: Uuid::new_v4(),
            nurse_id: nurse,
            starts_at: ts(starts_at),
            ends_at: ts(ends_at),
        };
        nurse_shift::Entity::insert(nurse_shift::ActiveModel {
            id: Set(shift.id),
            org_id: Set(org.as_str().to_owned()),
            nurse_id: Set(nurse.0),
            starts_at: Set(shift.starts_at),
            ends_at: Set(shift.ends_at),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| StoreError::from_constraint(e, "shift"))?;
        Ok(shift)
    }

    /// The organisation's planned shifts overlapping `[from, to)`.
    pub async fn shifts_between(
        &self,
        org: &OrgId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PlannedShift>, StoreError> {
        Ok(nurse_shift::Entity::find()
            .filter(nurse_shift::Column::OrgId.eq(org.as_str()))
            .filter(nurse_shift::Column::StartsAt.lt(ts(to)))
            .filter(nurse_shift::Column::EndsAt.gt(ts(from)))
            .order_by_asc(nurse_shift::Column::StartsAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| PlannedShift {
                id: m.id,
                nurse_id: NurseId(m.nurse_id),
                starts_at: m.starts_at,
                ends_at: m.ends_at,
            })
            .collect())
    }

    /// The organisation's bookings still holding their nurse (their order
    /// neither cancelled nor rejected) overlapping `[from, to)`.
    pub async fn bookings_between(
        &self,
        org: &OrgId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Booking>, StoreError> {
        let rows = booking::Entity::find()
            .filter(booking::Column::OrgId.eq(org.as_str()))
            .filter(booking::Column::StartsAt.lt(ts(to)))
            .filter(booking::Column::EndsAt.gt(ts(from)))
            .all(&self.db)
            .await?;
        holding(&self.db, rows).await
    }

    /// Reserves `nurse` for the booked order `order_id` at `location` over
    /// `[starts_at, ends_at)` (a visit of `course`, if any), if `fits` (given her other bookings still
    /// holding her, around that time) says she can take it. The check and
    /// the write are one transaction under a lock on the nurse's row
    /// (PostgreSQL: `SELECT … FOR UPDATE`; SQLite: the one writer), so two
    /// concurrent bookings cannot both take the same time. `Ok(false)`:
    /// refused, nothing written.
    #[allow(clippy::too_many_arguments)]
    pub async fn reserve_nurse(
        &self,
        org: &OrgId,
        order_id: OrderId,
        nurse: NurseId,
        location: GeoPoint,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        course: Option<Uuid>,
        fits: impl FnOnce(&[Booking]) -> bool,
    ) -> Result<bool, StoreError> {
        let txn = self.begin_write().await?;
        let result = async {
            let mut find =
                nurse::Entity::find_by_id(nurse.0).filter(nurse::Column::OrgId.eq(org.as_str()));
            if txn.get_database_backend() == DatabaseBackend::Postgres {
                find = find.lock_exclusive();
            }
            if find.one(&txn).await?.is_none() {
                return Err(StoreError::NotFound);
            }
            let rows = booking::Entity::find()
                .filter(booking::Column::NurseId.eq(nurse.0))
                .filter(booking::Column::StartsAt.lt(ts(ends_at + NEIGHBOURHOOD)))
                .filter(booking::Column::EndsAt.gt(ts(starts_at - NEIGHBOURHOOD)))
                .all(&txn)
                .await?;
            let others = holding(&txn, rows).await?;
            if !fits(&others) {
                return Ok(false);
            }
            booking::Entity::insert(booking::ActiveModel {
                order_id: Set(order_id.0),
                org_id: Set(org.as_str().to_owned()),
                nurse_id: Set(nurse.0),
                lat: Set(location.lat()),
                lng: Set(location.lng()),
                starts_at: Set(ts(starts_at)),
                ends_at: Set(ts(ends_at)),
                course_id: Set(course),
                created_at: Set(ts(Utc::now())),
            })
            .exec_without_returning(&txn)
            .await
            .map_err(|e| StoreError::from_constraint(e, "booking"))?;
            Ok(true)
        }
        .await;
        finish(txn, result, "booking").await
    }

    /// Drops a reservation (its order was not written after all).
    pub async fn drop_booking(&self, order_id: OrderId) -> Result<(), StoreError> {
        booking::Entity::delete_by_id(order_id.0)
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The visits of a course, soonest first.
    pub async fn course_bookings(&self, course: Uuid) -> Result<Vec<Booking>, StoreError> {
        let rows = booking::Entity::find()
            .filter(booking::Column::CourseId.eq(course))
            .order_by_asc(booking::Column::StartsAt)
            .all(&self.db)
            .await?;
        holding(&self.db, rows).await
    }

    /// The nurse reserved for a booked order, if any.
    pub async fn booked_nurse(&self, order_id: OrderId) -> Result<Option<NurseId>, StoreError> {
        Ok(booking::Entity::find_by_id(order_id.0)
            .one(&self.db)
            .await?
            .map(|b| NurseId(b.nurse_id)))
    }

    /// The nurse of the resident's latest completed visit in `org`, if any:
    /// the continuity preference of a repeat order.
    pub async fn last_nurse_of_resident(
        &self,
        org: &OrgId,
        resident: &str,
    ) -> Result<Option<NurseId>, StoreError> {
        Ok(order::Entity::find()
            .filter(order::Column::OrgId.eq(org.as_str()))
            .filter(order::Column::ResidentId.eq(resident))
            .filter(order::Column::Status.eq(OrderStatus::Completed.as_str()))
            .filter(order::Column::NurseId.is_not_null())
            .order_by_desc(order::Column::UpdatedAt)
            .limit(1)
            .all(&self.db)
            .await?
            .into_iter()
            .next()
            .and_then(|m| m.nurse_id.map(NurseId)))
    }

    /// Booked orders still `scheduled` whose time is at or before `by`,
    /// soonest first (the booking worker releases them when due).
    pub async fn scheduled_due_by(
        &self,
        by: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Order>, StoreError> {
        order::Entity::find()
            .filter(order::Column::Status.eq(OrderStatus::Scheduled.as_str()))
            .filter(order::Column::ScheduledFor.lte(ts(by)))
            .order_by_asc(order::Column::ScheduledFor)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::order)
            .collect()
    }
}

/// The rows whose order still holds the nurse: neither cancelled nor
/// rejected (a row whose order is not written yet holds her too).
async fn holding(
    db: &impl ConnectionTrait,
    rows: Vec<booking::Model>,
) -> Result<Vec<Booking>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.order_id).collect();
    let released: HashSet<Uuid> = order::Entity::find()
        .filter(order::Column::Id.is_in(ids))
        .filter(order::Column::Status.is_in(RELEASED.iter().map(|s| s.as_str())))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if released.contains(&r.order_id) {
            continue;
        }
        let location = GeoPoint::new(r.lat, r.lng)
            .map_err(|e| StoreError::Corrupt(format!("booking location: {e}")))?;
        out.push(Booking {
            order_id: OrderId(r.order_id),
            nurse_id: NurseId(r.nurse_id),
            location,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            course_id: r.course_id,
        });
    }
    Ok(out)
}
