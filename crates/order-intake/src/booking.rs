//! Reserving a nurse for a booked visit, before its order is written.
//!
//! How a booking gets its nurse: at booking time, among the nurses whose
//! planned shift covers the visit, who are qualified for the service on
//! that day (skills and the credentials gate, as an offer checks them) and
//! whose other bookings leave room for it with the travel between them,
//! the patient's nurse from before first (continuity), then the one with
//! the fewest bookings. The store re-checks under a lock on her row, so of
//! two concurrent bookings of the same time only one holds her; the other
//! tries the next nurse, and with none left is refused 409
//! `booking_overlaps`. At due time the order is offered to her first (the
//! scoring's continuity term), to another nurse if she is not free.
//!
//! When no qualified nurse has a planned shift covering the time at all
//! (an organisation that does not plan shifts), the booking is accepted
//! without a reservation and dispatched at due time to whoever is on shift.

use chrono::TimeDelta;
use yixin_dispatch_core::Need;
use yixin_dispatch_core::booking::{
    Held, Window, bookable, booking_travel, fits, who_can_take, windows_of,
};
use yixin_domain::{NurseId, Order, Service};
use yixin_platform::ApiError;

use crate::OrderIntake;
use crate::errors::store_error;

/// How far around a visit shifts and bookings are read.
const AROUND: TimeDelta = TimeDelta::hours(24);

/// The refusal when every nurse who could come is booked then.
pub(crate) fn overlaps() -> ApiError {
    ApiError::conflict(
        "booking_overlaps",
        "no nurse is free at that time: pick another slot (GET /v1/slots)",
    )
}

/// Reserves a nurse for each of `orders` (the visits of one booking: one,
/// or a course's), all or nothing. A plain booking no planned shift covers
/// goes unreserved (`None`); a course needs every visit reserved. Later
/// visits prefer the nurse of the first (continuity), another when she is
/// booked then. 409 `booking_overlaps` when a visit finds nobody; then
/// nothing stays reserved.
pub(crate) async fn reserve(
    svc: &OrderIntake,
    orders: &[Order],
    service: &Service,
) -> Result<Vec<Option<NurseId>>, ApiError> {
    let (Some(first), Some(last)) = (
        orders.first().and_then(|o| o.scheduled_for),
        orders.last().and_then(|o| o.scheduled_for),
    ) else {
        return Ok(vec![None; orders.len()]);
    };
    let duration = TimeDelta::minutes(i64::from(service.duration_min));
    let Some(head) = orders.first() else {
        return Ok(Vec::new());
    };
    let org = &head.org_id;
    let (from, to) = (first - AROUND, last + duration + AROUND);
    let (nurses, shifts, held, before) = tokio::join!(
        svc.store.nurses(org),
        svc.store.shifts_between(org, from, to),
        svc.store.bookings_between(org, from, to),
        svc.store
            .last_nurse_of_resident(org, head.resident_id.as_str()),
    );
    let nurses = nurses.map_err(store_error)?;
    let shifts: Vec<(NurseId, Window)> = shifts
        .map_err(store_error)?
        .into_iter()
        .map(|s| {
            (
                s.nurse_id,
                Window {
                    start: s.starts_at,
                    end: s.ends_at,
                },
            )
        })
        .collect();
    let held: Vec<(NurseId, Held)> = held
        .map_err(store_error)?
        .into_iter()
        .map(|b| (b.nurse_id, held_of(&b)))
        .collect();
    let mut preferred = before.map_err(store_error)?;
    let course = (orders.len() > 1).then(uuid::Uuid::new_v4);
    let travel = booking_travel();
    let mut out = Vec::with_capacity(orders.len());
    for order in orders {
        let Some(start) = order.scheduled_for else {
            out.push(None);
            continue;
        };
        let visit = Held {
            window: Window {
                start,
                end: start + duration,
            },
            location: order.location,
        };
        let need = Need::of(service, start);
        let roster = bookable(
            &nurses,
            &need,
            &shifts,
            &held_with(&held, orders, &out, duration),
        );
        let planned = roster
            .iter()
            .any(|n| n.qualified && n.shifts.iter().any(|s| s.covers(&visit.window)));
        if !planned && course.is_none() {
            out.push(None);
            continue;
        }
        let mut got = None;
        for nurse in who_can_take(&roster, &visit, preferred, &travel) {
            let own_shifts = windows_of(nurse, &shifts);
            let reserved = svc
                .store
                .reserve_nurse(
                    org,
                    order.id,
                    nurse,
                    order.location,
                    visit.window.start,
                    visit.window.end,
                    course,
                    |others| {
                        let others: Vec<Held> = others.iter().map(held_of).collect();
                        fits(&own_shifts, &others, &visit, &travel)
                    },
                )
                .await;
            match reserved {
                Ok(true) => {
                    got = Some(nurse);
                    break;
                }
                Ok(false) => continue,
                Err(e) => {
                    release_all(svc, orders).await;
                    return Err(store_error(e));
                }
            }
        }
        let Some(nurse) = got else {
            release_all(svc, orders).await;
            return Err(overlaps());
        };
        tracing::debug!(order_id = %order.id, nurse_id = %nurse, at = %start, "nurse reserved for a booking");
        preferred = preferred.or(Some(nurse));
        out.push(Some(nurse));
    }
    Ok(out)
}

/// The bookings read before, with the visits of this booking reserved so far.
fn held_with(
    held: &[(NurseId, Held)],
    orders: &[Order],
    reserved: &[Option<NurseId>],
    duration: TimeDelta,
) -> Vec<(NurseId, Held)> {
    let mut all = held.to_vec();
    for (order, nurse) in orders.iter().zip(reserved) {
        if let (Some(nurse), Some(start)) = (nurse, order.scheduled_for) {
            all.push((
                *nurse,
                Held {
                    window: Window {
                        start,
                        end: start + duration,
                    },
                    location: order.location,
                },
            ));
        }
    }
    all
}

/// Gives every reservation of `orders` back.
pub(crate) async fn release_all(svc: &OrderIntake, orders: &[Order]) {
    for order in orders {
        release(svc, order).await;
    }
}

/// Gives the reservation back (its order was not written).
pub(crate) async fn release(svc: &OrderIntake, order: &Order) {
    if let Err(e) = svc.store.drop_booking(order.id).await {
        tracing::warn!(order_id = %order.id, error = %e, "reservation not dropped");
    }
}

fn held_of(b: &yixin_store::Booking) -> Held {
    Held {
        window: Window {
            start: b.starts_at,
            end: b.ends_at,
        },
        location: b.location,
    }
}
