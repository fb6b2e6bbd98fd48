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

/// Reserves a nurse for `order` (a booking), returning her, or none when
/// no planned shift covers the time. 409 `booking_overlaps` when shifts
/// cover it but every nurse is booked.
pub(crate) async fn reserve(
    svc: &OrderIntake,
    order: &Order,
    service: &Service,
) -> Result<Option<NurseId>, ApiError> {
    let Some(start) = order.scheduled_for else {
        return Ok(None);
    };
    let visit = Held {
        window: Window {
            start,
            end: start + TimeDelta::minutes(i64::from(service.duration_min)),
        },
        location: order.location,
    };
    let org = &order.org_id;
    let (nurses, shifts, held, before) = tokio::join!(
        svc.store.nurses(org),
        svc.store
            .shifts_between(org, start - AROUND, visit.window.end + AROUND),
        svc.store
            .bookings_between(org, start - AROUND, visit.window.end + AROUND),
        svc.store
            .last_nurse_of_resident(org, order.resident_id.as_str()),
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
    let before = before.map_err(store_error)?;
    let need = Need::of(service, start);
    let roster = bookable(&nurses, &need, &shifts, &held);
    let planned = roster
        .iter()
        .any(|n| n.qualified && n.shifts.iter().any(|s| s.covers(&visit.window)));
    if !planned {
        return Ok(None);
    }
    let travel = booking_travel();
    for nurse in who_can_take(&roster, &visit, before, &travel) {
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
                |others| {
                    let others: Vec<Held> = others.iter().map(held_of).collect();
                    fits(&own_shifts, &others, &visit, &travel)
                },
            )
            .await
            .map_err(store_error)?;
        if reserved {
            tracing::debug!(order_id = %order.id, nurse_id = %nurse, at = %start, "nurse reserved for a booking");
            return Ok(Some(nurse));
        }
    }
    Err(overlaps())
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
