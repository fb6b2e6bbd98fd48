//! Bookings on the dispatcher's side:
//!
//! - the **booking worker**, which releases a booked order (`scheduled`) to
//!   dispatch (`pending`) at its time minus the lead: the predicted travel of
//!   its reserved nurse from where she is (capped; the cap when unknown)
//!   plus a buffer (`dispatch.booking_*`). The release is a conditional
//!   update from `scheduled`, so with several instances exactly one
//!   releases each booking, and a restart loses nothing (the due bookings
//!   are read from the database each round). Released, the engine offers
//!   the order like any other, its reserved nurse first (the continuity
//!   term of the scoring), another nurse if she is not free.
//! - `GET /v1/slots`: the day's bookable start times for a service at an
//!   address, from the roster's planned shifts, the credentials gate and
//!   the bookings already made (the core's [`yixin_dispatch_core::booking`]).
//! - `POST/GET /v1/dispatch/nurses/{id}/shifts`: the planned shifts.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};
use yixin_auth::{CoordinatorCaller, ResidentCaller};
use yixin_contracts::{dispatch_channel, status_changed};
use yixin_dispatch_core::booking::{Held, Window, bookable, booking_travel, slots};
use yixin_dispatch_core::{Fleet, Need};
use yixin_domain::{GeoPoint, NurseId, Order, OrderStatus, OrgId, OrgTimeZone};
use yixin_platform::{ApiError, ErrorBody, JsonBody};
use yixin_queue::Queue;
use yixin_store::{OrderTransition, Store, StoreError};

use crate::Dispatcher;
use crate::coordinator::{org_of, store_error};
use crate::eta::EtaEstimator;

/// How the booking worker times a release (`dispatch.booking_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingRelease {
    pub buffer: TimeDelta,
    pub max_travel: TimeDelta,
    pub poll: Duration,
}

impl BookingRelease {
    pub fn from_settings(s: &yixin_platform::config::DispatchSettings) -> Self {
        Self {
            buffer: TimeDelta::seconds(
                i64::try_from(s.booking_buffer_secs).unwrap_or(i64::MAX / 2),
            ),
            max_travel: TimeDelta::seconds(
                i64::try_from(s.booking_max_travel_secs).unwrap_or(i64::MAX / 2),
            ),
            poll: Duration::from_millis(s.booking_poll_ms.max(100)),
        }
    }

    /// When a booking for `at` is due, given its nurse's predicted travel
    /// (`None`: unknown, the cap is assumed).
    pub fn due_at(&self, at: DateTime<Utc>, travel: Option<TimeDelta>) -> DateTime<Utc> {
        let travel = travel.map_or(self.max_travel, |t| t.min(self.max_travel));
        at - travel - self.buffer
    }
}

/// Releases due bookings to dispatch; one per dispatcher instance.
pub struct BookingWorker {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    pub eta: Arc<dyn EtaEstimator>,
    /// Where the nurses are (the engine's fleet), for the reserved nurse's
    /// travel; none: the cap is assumed.
    pub fleet: Option<Arc<RwLock<Fleet>>>,
    pub release: BookingRelease,
}

impl BookingWorker {
    /// Runs until `shutdown` turns true.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.round(Utc::now()).await {
                    tracing::warn!(error = %e, "due bookings not released; will retry");
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.release.poll) => {}
                    _ = shutdown.changed() => return,
                }
            }
        })
    }

    /// One round: every booking due by `now` released. Returns how many
    /// this instance released.
    pub async fn round(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        // Nothing can be due whose time is beyond the longest lead.
        let horizon = now + self.release.max_travel + self.release.buffer;
        let mut released = 0;
        for order in self.store.scheduled_due_by(horizon, 500).await? {
            let Some(at) = order.scheduled_for else {
                continue;
            };
            let travel = self.travel(&order).await?;
            if self.release.due_at(at, travel) > now {
                continue;
            }
            if self.release_one(&order, now).await? {
                released += 1;
            }
        }
        Ok(released)
    }

    /// The reserved nurse's predicted travel to the order from her last fix.
    async fn travel(&self, order: &Order) -> Result<Option<TimeDelta>, StoreError> {
        let Some(fleet) = &self.fleet else {
            return Ok(None);
        };
        let Some(nurse) = self.store.booked_nurse(order.id).await? else {
            return Ok(None);
        };
        let from = {
            let fleet = fleet.read().unwrap_or_else(|p| p.into_inner());
            fleet.get(&nurse).and_then(|n| n.last_fix).map(|f| f.point)
        };
        let Some(from) = from else {
            return Ok(None);
        };
        Ok(match self.eta.etas(&[from], order.location).await {
            Ok(etas) => etas
                .first()
                .copied()
                .flatten()
                .map(|e| TimeDelta::seconds(i64::from(e.seconds))),
            Err(e) => {
                tracing::warn!(order_id = %order.id, error = %e, "no ETA for a booking's nurse");
                None
            }
        })
    }

    /// `scheduled` → `pending`, with the event that is the engine's cue;
    /// false if another instance (or a cancel) got there first.
    async fn release_one(&self, order: &Order, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut next = order.clone();
        if next.transition(OrderStatus::Pending, now).is_err() {
            return Ok(false);
        }
        let mut change = OrderTransition::new(
            order.id,
            vec![OrderStatus::Scheduled],
            OrderStatus::Pending,
            now,
        );
        let event = status_changed(&next, OrderStatus::Scheduled, now);
        change.outbox = Some(event.clone());
        match self.store.transition_order(change).await {
            Ok(_) => {
                metrics::counter!("dispatch_bookings_released_total").increment(1);
                tracing::info!(order_id = %order.id, scheduled_for = ?order.scheduled_for, "booking released to dispatch");
                let _ = self
                    .queue
                    .broadcast(&dispatch_channel(order.org_id.as_str()), &event.payload)
                    .await;
                Ok(true)
            }
            Err(StoreError::StaleState { .. }) | Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

// ----- GET /v1/slots -----

/// `GET /v1/slots` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlotsQuery {
    #[param(example = "cervical_package")]
    pub service_code: String,
    pub lat: f64,
    pub lng: f64,
    /// The local calendar day (the organisation's time zone), `YYYY-MM-DD`.
    #[param(value_type = String, example = "2026-12-02")]
    pub date: NaiveDate,
}

/// One bookable start time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SlotView {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// How many nurses could take it (never who).
    pub nurses: u32,
}

/// The day's bookable slots for a service at an address: start times every
/// 30 minutes from the planned shifts of nurses qualified for the service
/// on that day, without their bookings (and the travel between them); none
/// sooner than the 30-minute promise, none beyond the booking horizon.
/// Residents see times and how many nurses could come, never who.
#[utoipa::path(
    tag = "resident",
    security(("bearer" = [])),
    params(SlotsQuery),
    responses(
        (status = 200, body = Vec<SlotView>),
        (status = 400, description = "A missing or malformed parameter", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a resident", body = ErrorBody),
        (status = 422, description = "Unknown `service_code`, a bad location, or a date outside the booking horizon", body = ErrorBody),
    )
)]
#[get("/v1/slots")]
pub async fn list_slots(
    caller: ResidentCaller,
    svc: web::Data<Dispatcher>,
    query: web::Query<SlotsQuery>,
) -> Result<web::Json<Vec<SlotView>>, ApiError> {
    let q = query.into_inner();
    let org = OrgId::from(caller.org.as_str());
    let location = GeoPoint::new(q.lat, q.lng)
        .map_err(|e| ApiError::invalid_field("lat", "invalid_location", e.to_string()))?;
    let catalog = svc.store.catalog().await.map_err(ApiError::internal)?;
    let service = catalog
        .orderable_service(q.service_code.trim())
        .map_err(|_| {
            ApiError::invalid_field("service_code", "unknown_service", "no such service")
        })?;
    let now = Utc::now();
    let tz = OrgTimeZone::default();
    let day_start = q
        .date
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc() - TimeDelta::seconds(i64::from(tz.offset_secs())))
        .ok_or_else(|| ApiError::invalid_field("date", "invalid_date", "not a day"))?;
    let day = Window {
        start: day_start,
        end: day_start + TimeDelta::days(1),
    };
    if day.end <= now
        || yixin_domain::check_booking_time(day.start, now).is_err() && day.start > now
    {
        return Err(ApiError::invalid_field(
            "date",
            "beyond_horizon",
            format!(
                "slots are offered from today up to {} days ahead",
                yixin_domain::MAX_BOOKING_AHEAD_DAYS
            ),
        ));
    }
    let duration = TimeDelta::minutes(i64::from(service.duration_min));
    let pad = TimeDelta::hours(24);
    let (nurses, shifts, held) = tokio::join!(
        svc.store.nurses(&org),
        svc.store
            .shifts_between(&org, day.start - pad, day.end + pad),
        svc.store
            .bookings_between(&org, day.start - pad, day.end + pad),
    );
    let nurses = nurses.map_err(ApiError::internal)?;
    let shifts: Vec<(NurseId, Window)> = shifts
        .map_err(ApiError::internal)?
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
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|b| {
            (
                b.nurse_id,
                Held {
                    window: Window {
                        start: b.starts_at,
                        end: b.ends_at,
                    },
                    location: b.location,
                },
            )
        })
        .collect();
    // The credentials gate on the day asked for.
    let need = Need::of(service, day.start + TimeDelta::hours(12));
    let roster = bookable(&nurses, &need, &shifts, &held);
    let earliest = now + TimeDelta::minutes(yixin_domain::PROMISE_MINUTES) + TimeDelta::seconds(1);
    let horizon = now + TimeDelta::days(yixin_domain::MAX_BOOKING_AHEAD_DAYS);
    let found = slots(
        &roster,
        location,
        duration,
        day,
        earliest,
        &booking_travel(),
    );
    Ok(web::Json(
        found
            .into_iter()
            .filter(|s| s.start <= horizon)
            .map(|s| SlotView {
                start: s.start,
                end: s.end,
                nurses: s.nurses,
            })
            .collect(),
    ))
}

// ----- planned shifts -----

/// A planned shift.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlannedShiftBody {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A planned shift as stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlannedShiftView {
    pub id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Longest planned shift.
const MAX_SHIFT_HOURS: i64 = 16;

/// Plans a shift for a nurse of the coordinator's organisation (what
/// bookable slots are computed from).
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Nurse id")),
    request_body = PlannedShiftBody,
    responses(
        (status = 201, body = PlannedShiftView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "`end` not after `start`, or longer than 16 hours", body = ErrorBody),
    )
)]
#[post("/v1/dispatch/nurses/{id}/shifts")]
pub async fn add_shift(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
    body: JsonBody<PlannedShiftBody>,
) -> Result<HttpResponse, ApiError> {
    let org = org_of(&caller);
    let body = body.into_inner();
    if body.end <= body.start || body.end - body.start > TimeDelta::hours(MAX_SHIFT_HOURS) {
        return Err(ApiError::invalid_field(
            "end",
            "invalid_shift",
            format!("a shift ends after it starts and lasts at most {MAX_SHIFT_HOURS} hours"),
        ));
    }
    let nurse = id
        .parse()
        .map(NurseId)
        .map_err(|_| ApiError::not_found("no such nurse"))?;
    let shift = svc
        .store
        .add_shift(&org, nurse, body.start, body.end)
        .await
        .map_err(|e| store_error(e, "nurse"))?;
    Ok(HttpResponse::Created().json(PlannedShiftView {
        id: shift.id.to_string(),
        start: shift.starts_at,
        end: shift.ends_at,
    }))
}

/// The nurse's planned shifts from a day ago on.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Nurse id")),
    responses(
        (status = 200, body = Vec<PlannedShiftView>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/v1/dispatch/nurses/{id}/shifts")]
pub async fn list_shifts(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
) -> Result<web::Json<Vec<PlannedShiftView>>, ApiError> {
    let org = org_of(&caller);
    let nurse: Option<NurseId> = id.parse().map(NurseId).ok();
    let now = Utc::now();
    let shifts = svc
        .store
        .shifts_between(&org, now - TimeDelta::days(1), now + TimeDelta::days(60))
        .await
        .map_err(ApiError::internal)?;
    Ok(web::Json(
        shifts
            .into_iter()
            .filter(|s| Some(s.nurse_id) == nurse)
            .map(|s| PlannedShiftView {
                id: s.id.to_string(),
                start: s.starts_at,
                end: s.ends_at,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_booking_is_due_its_travel_and_buffer_before_its_time() {
        let r = BookingRelease {
            buffer: TimeDelta::minutes(15),
            max_travel: TimeDelta::minutes(30),
            poll: Duration::from_secs(1),
        };
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap();
        assert_eq!(
            r.due_at(at, Some(TimeDelta::minutes(10))),
            at - TimeDelta::minutes(25)
        );
        // Unknown or longer travel: the cap.
        assert_eq!(r.due_at(at, None), at - TimeDelta::minutes(45));
        assert_eq!(
            r.due_at(at, Some(TimeDelta::hours(2))),
            at - TimeDelta::minutes(45)
        );
    }
}
