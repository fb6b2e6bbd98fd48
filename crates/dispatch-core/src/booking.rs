//! Bookings: which nurse can take a visit at a booked time, and the
//! bookable slots of a day.
//!
//! A nurse can take a visit `[start, end)` when
//! - one of her planned shifts covers it entirely, and
//! - it overlaps none of her other bookings **with the travel between
//!   them**: a booking before it must end early enough to travel from its
//!   address to this one by `start`, and one after it must start late
//!   enough to travel there from this visit's `end`.
//!
//! Qualification (skills and the credentials gate on the visit's day) is
//! the caller's fact: the same [`crate::Need`] an offer uses.
//!
//! Slots are the day's start times on a [`SLOT_STEP_MIN`] grid that at least
//! one qualified nurse can take, with how many can: never who, nor where
//! they are. The store re-checks [`fits`] under a lock when a booking is
//! written, so two concurrent bookings of the same time cannot both hold a
//! nurse.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use yixin_domain::{GeoPoint, Nurse, NurseId};

use crate::eta::EtaSettings;
use crate::qualification::Need;

/// Minutes between the start times a day's slots are offered on.
pub const SLOT_STEP_MIN: i64 = 30;

/// A time range, `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// Whether `other` lies entirely inside this window.
    pub fn covers(&self, other: &Window) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

/// A visit held for a nurse: its time and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub window: Window,
    pub location: GeoPoint,
}

/// What booking needs to know of one nurse.
#[derive(Debug, Clone, PartialEq)]
pub struct BookableNurse {
    pub id: NurseId,
    /// Skills and credentials meet the service's need on the visit's day.
    pub qualified: bool,
    /// Her planned shifts.
    pub shifts: Vec<Window>,
    /// Her bookings still holding her (not cancelled).
    pub bookings: Vec<Held>,
}

/// One bookable start time and how many nurses could take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub nurses: u32,
}

/// The roster as booking sees it: each nurse with whether she meets `need`
/// (active, skills, credentials on the visit's day), her planned shifts
/// and her bookings still holding her.
pub fn bookable(
    nurses: &[Nurse],
    need: &Need,
    shifts: &[(NurseId, Window)],
    held: &[(NurseId, Held)],
) -> Vec<BookableNurse> {
    nurses
        .iter()
        .map(|n| BookableNurse {
            id: n.id,
            qualified: n.active
                && crate::eligibility::covers(&n.skills, &need.skills)
                && need.met_by(n.credentials.as_ref()),
            shifts: shifts
                .iter()
                .filter(|(id, _)| *id == n.id)
                .map(|(_, w)| *w)
                .collect(),
            bookings: held
                .iter()
                .filter(|(id, _)| *id == n.id)
                .map(|(_, h)| *h)
                .collect(),
        })
        .collect()
}

/// Travel between two booked addresses under the straight-line model, in seconds.
pub fn travel_by(settings: EtaSettings) -> impl Fn(&GeoPoint, &GeoPoint) -> i64 {
    move |a, b| i64::from(settings.eta(a, b).seconds)
}

/// The travel model every booking check uses (slots, reservations): the
/// straight-line model with its default settings, so a slot offered is a
/// slot the reservation accepts.
pub fn booking_travel() -> impl Fn(&GeoPoint, &GeoPoint) -> i64 {
    travel_by(EtaSettings::default())
}

/// Converts shift rows to windows of one nurse, for [`fits`].
pub fn windows_of(nurse: NurseId, shifts: &[(NurseId, Window)]) -> Vec<Window> {
    shifts
        .iter()
        .filter(|(id, _)| *id == nurse)
        .map(|(_, w)| *w)
        .collect()
}

/// Whether a nurse with `shifts` and `bookings` can take `visit`;
/// `travel_s(from, to)` is the predicted trip between two addresses.
pub fn fits(
    shifts: &[Window],
    bookings: &[Held],
    visit: &Held,
    travel_s: &impl Fn(&GeoPoint, &GeoPoint) -> i64,
) -> bool {
    if visit.window.end <= visit.window.start {
        return false;
    }
    if !shifts.iter().any(|s| s.covers(&visit.window)) {
        return false;
    }
    bookings.iter().all(|b| {
        if b.window.end <= visit.window.start {
            b.window.end + TimeDelta::seconds(travel_s(&b.location, &visit.location))
                <= visit.window.start
        } else if b.window.start >= visit.window.end {
            visit.window.end + TimeDelta::seconds(travel_s(&visit.location, &b.location))
                <= b.window.start
        } else {
            false
        }
    })
}

/// The nurses who can take `visit`, best first: `preferred` (the nurse the
/// patient had before) if she can, then the fewest bookings, then the id
/// (deterministic).
pub fn who_can_take(
    nurses: &[BookableNurse],
    visit: &Held,
    preferred: Option<NurseId>,
    travel_s: &impl Fn(&GeoPoint, &GeoPoint) -> i64,
) -> Vec<NurseId> {
    let mut able: Vec<&BookableNurse> = nurses
        .iter()
        .filter(|n| n.qualified && fits(&n.shifts, &n.bookings, visit, travel_s))
        .collect();
    able.sort_by_key(|n| (Some(n.id) != preferred, n.bookings.len(), n.id));
    able.into_iter().map(|n| n.id).collect()
}

/// The slots of `day` (a window, e.g. one local calendar day) for a visit
/// of `duration` at `location`: start times on the [`SLOT_STEP_MIN`] grid
/// from the day's start, none before `earliest`, each with the number of
/// nurses who could take it; times nobody can take are left out.
pub fn slots(
    nurses: &[BookableNurse],
    location: GeoPoint,
    duration: TimeDelta,
    day: Window,
    earliest: DateTime<Utc>,
    travel_s: &impl Fn(&GeoPoint, &GeoPoint) -> i64,
) -> Vec<Slot> {
    let step = TimeDelta::minutes(SLOT_STEP_MIN);
    let mut out = Vec::new();
    if duration <= TimeDelta::zero() {
        return out;
    }
    let mut start = day.start;
    while start < day.end {
        if start >= earliest {
            let visit = Held {
                window: Window {
                    start,
                    end: start + duration,
                },
                location,
            };
            let count = nurses
                .iter()
                .filter(|n| n.qualified && fits(&n.shifts, &n.bookings, &visit, travel_s))
                .count();
            if count > 0 {
                out.push(Slot {
                    start,
                    end: visit.window.end,
                    nurses: u32::try_from(count).unwrap_or(u32::MAX),
                });
            }
        }
        start += step;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap() + TimeDelta::minutes(min)
    }

    fn w(a: i64, b: i64) -> Window {
        Window {
            start: t(a),
            end: t(b),
        }
    }

    fn here() -> GeoPoint {
        GeoPoint::new(29.39, 106.32).unwrap()
    }

    fn far() -> GeoPoint {
        GeoPoint::new(29.45, 106.32).unwrap()
    }

    /// 10 minutes between different addresses, none at the same one.
    fn travel(a: &GeoPoint, b: &GeoPoint) -> i64 {
        if a == b { 0 } else { 600 }
    }

    fn nurse(n: u128, shifts: Vec<Window>, bookings: Vec<Held>) -> BookableNurse {
        BookableNurse {
            id: NurseId(Uuid::from_u128(n)),
            qualified: true,
            shifts,
            bookings,
        }
    }

    fn visit(a: i64, b: i64, at: GeoPoint) -> Held {
        Held {
            window: w(a, b),
            location: at,
        }
    }

    #[test]
    fn a_visit_must_lie_inside_a_shift() {
        let shifts = [w(480, 720)];
        assert!(fits(&shifts, &[], &visit(480, 540, here()), &travel));
        assert!(fits(&shifts, &[], &visit(660, 720, here()), &travel));
        assert!(!fits(&shifts, &[], &visit(690, 750, here()), &travel));
        assert!(!fits(&shifts, &[], &visit(450, 510, here()), &travel));
        assert!(!fits(&[], &[], &visit(480, 540, here()), &travel));
    }

    #[test]
    fn bookings_never_overlap_counting_travel_between_them() {
        let shifts = [w(0, 1440)];
        let held = [visit(600, 660, far())];
        // Overlapping outright.
        assert!(!fits(&shifts, &held, &visit(630, 690, here()), &travel));
        // Back to back, but 10 minutes of travel are needed either way.
        assert!(!fits(&shifts, &held, &visit(660, 720, here()), &travel));
        assert!(fits(&shifts, &held, &visit(670, 730, here()), &travel));
        assert!(!fits(&shifts, &held, &visit(545, 600, here()), &travel));
        assert!(fits(&shifts, &held, &visit(530, 590, here()), &travel));
        // Same address: no travel needed.
        assert!(fits(&shifts, &held, &visit(660, 720, far()), &travel));
    }

    #[test]
    fn slots_count_free_qualified_nurses_and_skip_the_rest() {
        let busy = nurse(1, vec![w(480, 720)], vec![visit(540, 600, here())]);
        let free = nurse(2, vec![w(480, 600)], vec![]);
        let mut unqualified = nurse(3, vec![w(0, 1440)], vec![]);
        unqualified.qualified = false;
        let all = [busy, free, unqualified];
        let s = slots(
            &all,
            here(),
            TimeDelta::minutes(60),
            w(0, 1440),
            t(0),
            &travel,
        );
        let got: Vec<(i64, u32)> = s
            .iter()
            .map(|s| ((s.start - t(0)).num_minutes(), s.nurses))
            .collect();
        // 08:00 both (nurse 1 ends at 09:00 where her booking starts, same
        // address); 08:30 only nurse 2; 09:00 only nurse 2 (nurse 1 is
        // booked); 10:00, 10:30, 11:00 only nurse 1; nurse 3 never.
        assert_eq!(
            got,
            vec![(480, 2), (510, 1), (540, 1), (600, 1), (630, 1), (660, 1)]
        );
        // Nothing before `earliest`.
        let later = slots(
            &all,
            here(),
            TimeDelta::minutes(60),
            w(0, 1440),
            t(600),
            &travel,
        );
        assert_eq!(later.first().map(|s| s.start), Some(t(600)));
    }

    #[test]
    fn the_preferred_nurse_comes_first_when_she_can() {
        let a = nurse(1, vec![w(0, 1440)], vec![]);
        let b = nurse(2, vec![w(0, 1440)], vec![visit(0, 60, here())]);
        let v = visit(600, 660, here());
        let ids = |v: Vec<NurseId>| v.into_iter().map(|n| n.0.as_u128()).collect::<Vec<_>>();
        assert_eq!(
            ids(who_can_take(&[a.clone(), b.clone()], &v, None, &travel)),
            vec![1, 2]
        );
        let pref = Some(NurseId(Uuid::from_u128(2)));
        assert_eq!(
            ids(who_can_take(&[a.clone(), b.clone()], &v, pref, &travel)),
            vec![2, 1]
        );
        // She is booked then: the others.
        let clash = visit(0, 60, here());
        assert_eq!(ids(who_can_take(&[a, b], &clash, pref, &travel)), vec![1]);
    }
}
