//! A quote before ordering: how soon the dispatcher's own pick would be at
//! the door, whether the 30-minute promise holds, and otherwise the
//! earliest honest arrival or the next bookable time. Pure: the shell
//! passes the candidates it found (the fleet's candidate rule, the
//! configured ETA) and the clock.

use std::collections::HashSet;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use yixin_domain::PROMISE_MINUTES;

use crate::{EngineConfig, matching::best_candidate, scoring::Candidate};

/// Why a quote is not "a nurse within 30 minutes, now".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteReason {
    /// A booked time: the nurse is due then.
    Scheduled,
    /// The nearest free nurse cannot be there within the promise.
    BeyondPromise,
    /// No free nurse can take it now: the earliest time is a booking.
    NoNurseFree,
}

impl QuoteReason {
    /// As spelled in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::BeyondPromise => "beyond_promise",
            Self::NoNurseFree => "no_nurse_free",
        }
    }
}

/// The answer of a quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// Minutes until the nurse the dispatcher would pick is at the door
    /// (rounded up, as the offer shows it); none for a booking or when no
    /// nurse is free.
    pub predicted_arrival_min: Option<u32>,
    /// Whether the nurse would be at the door within the 30-minute promise
    /// (a booking: whether the booked time can be served).
    pub within_promise: bool,
    /// The earliest honest arrival, or the booked time, or the next
    /// bookable time.
    pub earliest_at: DateTime<Utc>,
    pub reason: Option<QuoteReason>,
}

/// Bookable times start on the half hour.
pub const SLOT_MINUTES: i64 = 30;

/// The first half-hour slot at least an hour from `now`.
pub fn next_bookable(now: DateTime<Utc>) -> DateTime<Utc> {
    let slot = TimeDelta::minutes(SLOT_MINUTES);
    let soonest = now + TimeDelta::minutes(60);
    match soonest.duration_trunc(slot) {
        Ok(t) if t == soonest => t,
        Ok(t) => t + slot,
        Err(_) => soonest,
    }
}

/// The quote from the free candidates within the normal search radius
/// (`near`) and within the escalated one (`wide`), ETAs filled in.
///
/// The pick is the engine's ([`best_candidate`]). An order nobody near can
/// take is escalated only after `config.escalate_after` with no candidate,
/// so a wide-radius arrival counts that wait too.
pub fn quote(
    config: &EngineConfig,
    near: &[Candidate],
    wide: &[Candidate],
    scheduled_for: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Quote {
    let promise = TimeDelta::minutes(PROMISE_MINUTES);
    if let Some(at) = scheduled_for.filter(|at| *at > now + promise) {
        return Quote {
            predicted_arrival_min: None,
            within_promise: true,
            earliest_at: at,
            reason: Some(QuoteReason::Scheduled),
        };
    }
    let none = HashSet::new();
    let weights = &config.policy.scoring;
    let arrival_s = best_candidate(near, &none, now, weights)
        .map(|c| c.arrival_in_s(now))
        .or_else(|| {
            best_candidate(wide, &none, now, weights)
                .map(|c| c.arrival_in_s(now) + config.escalate_after.num_seconds().max(0))
        });
    match arrival_s {
        Some(s) => {
            let minutes = u32::try_from(s.max(0)).unwrap_or(u32::MAX).div_ceil(60);
            let within = i64::from(minutes) <= PROMISE_MINUTES;
            Quote {
                predicted_arrival_min: Some(minutes),
                within_promise: within,
                earliest_at: now + TimeDelta::seconds(s.max(0)),
                reason: (!within).then_some(QuoteReason::BeyondPromise),
            }
        }
        None => Quote {
            predicted_arrival_min: None,
            within_promise: false,
            earliest_at: next_bookable(now),
            reason: Some(QuoteReason::NoNurseFree),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use yixin_domain::NurseId;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn candidate(eta_s: u32) -> Candidate {
        Candidate {
            nurse_id: NurseId(uuid::Uuid::new_v4()),
            eta_s,
            distance_m: eta_s * 5,
            jobs_today: 0,
            offers_answered: 0,
            offers_accepted: 0,
            free_at: None,
            preferred: false,
            visit_s: None,
        }
    }

    #[test]
    fn a_near_free_nurse_keeps_the_promise() {
        let q = quote(
            &EngineConfig::default(),
            &[candidate(900), candidate(400)],
            &[],
            None,
            t(0),
        );
        // The engine's pick: the fastest (the other is beyond the 60 s band).
        assert_eq!(q.predicted_arrival_min, Some(7));
        assert!(q.within_promise);
        assert_eq!(q.earliest_at, t(400));
        assert_eq!(q.reason, None);
    }

    #[test]
    fn minutes_round_up_and_the_limit_is_thirty() {
        let config = EngineConfig::default();
        let q = quote(&config, &[candidate(1_800)], &[], None, t(0));
        assert_eq!(
            (q.predicted_arrival_min, q.within_promise),
            (Some(30), true)
        );
        let q = quote(&config, &[candidate(1_801)], &[], None, t(0));
        assert_eq!(
            (q.predicted_arrival_min, q.within_promise),
            (Some(31), false)
        );
        assert_eq!(q.reason, Some(QuoteReason::BeyondPromise));
        assert_eq!(q.earliest_at, t(1_801));
    }

    #[test]
    fn only_far_nurses_count_the_escalation_wait() {
        let config = EngineConfig::default();
        let q = quote(&config, &[], &[candidate(1_200)], None, t(0));
        // 20 min away, found only after 2 min of searching near: 22 min.
        assert_eq!(q.predicted_arrival_min, Some(22));
        assert!(q.within_promise);
        let q = quote(&config, &[], &[candidate(1_750)], None, t(0));
        assert!(!q.within_promise);
        assert_eq!(q.earliest_at, t(1_870));
    }

    #[test]
    fn nobody_free_offers_the_next_bookable_time() {
        let q = quote(&EngineConfig::default(), &[], &[], None, t(100));
        assert_eq!(q.predicted_arrival_min, None);
        assert!(!q.within_promise);
        assert_eq!(q.reason, Some(QuoteReason::NoNurseFree));
        assert!(q.earliest_at >= t(100) + TimeDelta::minutes(60));
        assert!(q.earliest_at < t(100) + TimeDelta::minutes(90));
        assert_eq!(q.earliest_at.timestamp() % 1_800, 0);
    }

    #[test]
    fn a_booking_is_quoted_for_its_time() {
        let at = t(0) + TimeDelta::hours(3);
        let q = quote(&EngineConfig::default(), &[], &[], Some(at), t(0));
        assert_eq!(q.earliest_at, at);
        assert!(q.within_promise);
        assert_eq!(q.reason, Some(QuoteReason::Scheduled));
        // A "booking" sooner than the promise is an order for now.
        let q = quote(
            &EngineConfig::default(),
            &[candidate(600)],
            &[],
            Some(t(600)),
            t(0),
        );
        assert_eq!(q.predicted_arrival_min, Some(10));
    }

    #[test]
    fn next_bookable_is_on_the_half_hour() {
        assert_eq!(next_bookable(t(0)).timestamp() % 1_800, 0);
        // 1_800_000_000 s is a whole number of half hours.
        let exact = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(next_bookable(exact), exact + TimeDelta::minutes(60));
    }
}
