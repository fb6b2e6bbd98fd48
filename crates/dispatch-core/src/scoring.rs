//! Which nurse to offer an order to first: candidates and their ranking.
//!
//! The rule, in order of precedence:
//!
//! 1. **Arrival first.** A nurse's arrival is `max(now, free_at) + eta`: a
//!    nurse finishing a job sets off when it ends. The 30-minute promise is
//!    the product, so the fastest arrival wins — except that:
//! 2. **Near-ties go to fairness.** Arrivals within [`ScoringWeights::eta_band_s`]
//!    (60 s by default) of the fastest remaining candidate are treated as
//!    equal; among them the nurse with fewer jobs today comes first, so work
//!    spreads over the shift instead of piling on whoever happens to sit in
//!    the middle of the district. A minute is invisible to the resident.
//! 3. **Then acceptance record.** The higher estimated acceptance rate first:
//!    `(accepted + a) / (answered + a + d)`, the mean of a Beta(a, d) prior
//!    updated with the nurse's record. The prior (4 accepted, 1 declined by
//!    default, i.e. 80 %) stands for a typical nurse, so a new nurse is
//!    neither punished nor favoured and a short record moves the estimate
//!    only a little; a raw rate would put 1/1 above 99/100.
//! 4. **Then the exact arrival, then the nurse id**, so ranking is a total,
//!    deterministic order: the same input always gives the same offers.
//!
//! **Continuity.** A candidate who is the patient's nurse from before (the
//! nurse reserved for a booking, an earlier visit of the same course, or the
//! last completed visit of the same resident) is ranked as if she arrived
//! [`ScoringWeights::continuity_credit_s`] seconds sooner (300 s by
//! default; 0 disables). So she is preferred when she is about as near as
//! the others, and not when she is far: the 30-minute promise still comes
//! first. The credit changes only the ranking, never the predicted arrival
//! an offer or an escalation is judged by.
//!
//! Banding is anchored on the fastest candidate left (the first band is
//! `[fastest, fastest + band]`, the next band starts at the fastest arrival
//! after it, and so on) rather than on pairwise "within 60 s" comparisons,
//! which would not be transitive and so could not be sorted consistently.
//!
//! The batch matcher ([`crate::matching::assign_batch`]) does not use this
//! rule (nor the continuity credit): it minimises total arrival across
//! orders (see there).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use yixin_domain::NurseId;

use crate::settings::InvalidSettings;

/// A nurse who could take one order, with what ranking needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub nurse_id: NurseId,
    /// Travel time to the order, in seconds, from where the nurse is (or will be at `free_at`).
    pub eta_s: u32,
    /// Road distance to the order, in metres (informative; ranking uses time).
    pub distance_m: u32,
    /// Jobs already done or assigned today.
    pub jobs_today: u32,
    /// Offers answered (accepted or declined; expired ones count as declined).
    pub offers_answered: u32,
    /// Offers accepted, at most `offers_answered`.
    pub offers_accepted: u32,
    /// `Some` when the nurse is finishing a job: the ETA counts from its end.
    pub free_at: Option<DateTime<Utc>>,
    /// The patient's nurse from before (see the module doc on continuity).
    #[serde(default)]
    pub preferred: bool,
    /// With `free_at`: the catalogue length of the visit she is finishing,
    /// in seconds, when known. The risk objective scales the uncertainty
    /// of her visit's end with it (a 90-minute visit overruns by more than
    /// a 30-minute one); `None` falls back to a fixed spread.
    #[serde(default)]
    pub visit_s: Option<u32>,
}

impl Candidate {
    /// Seconds from `now` until the nurse would be at the door:
    /// the wait for the current job to end (if any, rounded up) plus the ETA.
    pub fn arrival_in_s(&self, now: DateTime<Utc>) -> i64 {
        let wait_s = match self.free_at {
            Some(at) if at > now => {
                let ms = (at - now).num_milliseconds();
                (ms + 999) / 1000
            }
            _ => 0,
        };
        wait_s.saturating_add(i64::from(self.eta_s))
    }

    /// When the nurse would be at the door.
    pub fn arrival_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::TimeDelta::seconds(self.arrival_in_s(now))
    }

    /// The arrival ranking compares: [`Self::arrival_in_s`] less the
    /// continuity credit for the patient's nurse from before.
    pub fn ranked_arrival_s(&self, now: DateTime<Utc>, weights: &ScoringWeights) -> i64 {
        let credit = if self.preferred {
            i64::from(weights.continuity_credit_s)
        } else {
            0
        };
        self.arrival_in_s(now).saturating_sub(credit)
    }

    /// The acceptance rate estimated under the prior of `weights` (see the module doc).
    pub fn acceptance_rate(&self, weights: &ScoringWeights) -> f64 {
        let answered = f64::from(self.offers_answered);
        let accepted = f64::from(self.offers_accepted.min(self.offers_answered));
        (accepted + weights.acceptance_prior_accepted)
            / (answered + weights.acceptance_prior_accepted + weights.acceptance_prior_declined)
    }
}

/// The tunables of the ranking rule (see the module doc).
///
/// JSON/TOML: `{"eta_band_s": 60, "acceptance_prior_accepted": 4.0,
/// "acceptance_prior_declined": 1.0, "continuity_credit_s": 300}`, every
/// field optional; deserialising validates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawScoringWeights")]
pub struct ScoringWeights {
    /// Arrivals within this many seconds of the fastest are treated as equal; 0 disables.
    pub eta_band_s: u32,
    /// Prior pseudo-count of accepted offers, > 0.
    pub acceptance_prior_accepted: f64,
    /// Prior pseudo-count of declined offers, > 0.
    pub acceptance_prior_declined: f64,
    /// Seconds of arrival credited to the patient's nurse from before; 0
    /// disables continuity. At most 600.
    pub continuity_credit_s: u32,
}

impl Default for ScoringWeights {
    fn default() -> Self {
        Self {
            eta_band_s: 60,
            acceptance_prior_accepted: 4.0,
            acceptance_prior_declined: 1.0,
            continuity_credit_s: 300,
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawScoringWeights {
    eta_band_s: u32,
    acceptance_prior_accepted: f64,
    acceptance_prior_declined: f64,
    continuity_credit_s: u32,
}

impl Default for RawScoringWeights {
    fn default() -> Self {
        let d = ScoringWeights::default();
        Self {
            eta_band_s: d.eta_band_s,
            acceptance_prior_accepted: d.acceptance_prior_accepted,
            acceptance_prior_declined: d.acceptance_prior_declined,
            continuity_credit_s: d.continuity_credit_s,
        }
    }
}

impl TryFrom<RawScoringWeights> for ScoringWeights {
    type Error = InvalidSettings;

    fn try_from(r: RawScoringWeights) -> Result<Self, Self::Error> {
        ScoringWeights::new(
            r.eta_band_s,
            r.acceptance_prior_accepted,
            r.acceptance_prior_declined,
        )?
        .with_continuity(r.continuity_credit_s)
    }
}

/// Longest sensible band: beyond 10 minutes fairness would override the promise.
const MAX_ETA_BAND_S: u32 = 600;

impl ScoringWeights {
    /// Checks: band at most 600 s; prior counts finite and > 0.
    pub fn new(
        eta_band_s: u32,
        acceptance_prior_accepted: f64,
        acceptance_prior_declined: f64,
    ) -> Result<Self, InvalidSettings> {
        if eta_band_s > MAX_ETA_BAND_S {
            return Err(InvalidSettings::new(
                "eta_band_s",
                format!("must be at most {MAX_ETA_BAND_S}, got {eta_band_s}"),
            ));
        }
        for (field, v) in [
            ("acceptance_prior_accepted", acceptance_prior_accepted),
            ("acceptance_prior_declined", acceptance_prior_declined),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(InvalidSettings::new(
                    field,
                    format!("must be a finite number > 0, got {v}"),
                ));
            }
        }
        Ok(Self {
            eta_band_s,
            acceptance_prior_accepted,
            acceptance_prior_declined,
            continuity_credit_s: ScoringWeights::default().continuity_credit_s,
        })
    }

    /// These weights with a continuity credit of `credit_s` seconds (at most 600).
    pub fn with_continuity(self, credit_s: u32) -> Result<Self, InvalidSettings> {
        if credit_s > MAX_CONTINUITY_CREDIT_S {
            return Err(InvalidSettings::new(
                "continuity_credit_s",
                format!("must be at most {MAX_CONTINUITY_CREDIT_S}, got {credit_s}"),
            ));
        }
        Ok(Self {
            continuity_credit_s: credit_s,
            ..self
        })
    }
}

/// Largest continuity credit: beyond 10 minutes it would override the promise.
const MAX_CONTINUITY_CREDIT_S: u32 = 600;

/// A candidate with its ranking keys computed once.
struct Keyed {
    arrival_s: i64,
    jobs_today: u32,
    acceptance: f64,
    nurse_id: NurseId,
}

impl Keyed {
    fn of(c: &Candidate, now: DateTime<Utc>, w: &ScoringWeights) -> Self {
        Self {
            arrival_s: c.ranked_arrival_s(now, w),
            jobs_today: c.jobs_today,
            acceptance: c.acceptance_rate(w),
            nurse_id: c.nurse_id,
        }
    }

    /// Order within one band: fairness, acceptance, exact arrival, id.
    fn within_band(&self, other: &Self) -> Ordering {
        self.jobs_today
            .cmp(&other.jobs_today)
            .then_with(|| other.acceptance.total_cmp(&self.acceptance))
            .then_with(|| self.arrival_s.cmp(&other.arrival_s))
            .then_with(|| self.nurse_id.cmp(&other.nurse_id))
    }
}

/// Sorts `candidates` best first under the rule of the module doc.
pub fn rank(candidates: &mut [Candidate], now: DateTime<Utc>, weights: &ScoringWeights) {
    let mut keyed: Vec<(Keyed, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (Keyed::of(c, now, weights), i))
        .collect();
    keyed.sort_unstable_by(|(a, _), (b, _)| {
        a.arrival_s
            .cmp(&b.arrival_s)
            .then_with(|| a.nurse_id.cmp(&b.nurse_id))
    });
    let band = i64::from(weights.eta_band_s);
    let mut start = 0;
    while start < keyed.len() {
        let limit = keyed[start].0.arrival_s.saturating_add(band);
        let end = start + keyed[start..].partition_point(|(k, _)| k.arrival_s <= limit);
        keyed[start..end].sort_unstable_by(|(a, _), (b, _)| a.within_band(b));
        start = end;
    }
    let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    let ranked: Vec<Candidate> = order.iter().map(|&i| candidates[i].clone()).collect();
    for (slot, c) in candidates.iter_mut().zip(ranked) {
        *slot = c;
    }
}

/// The candidate [`rank`] would put first, in one pass without sorting.
pub fn best<'a>(
    candidates: impl IntoIterator<Item = &'a Candidate> + Clone,
    now: DateTime<Utc>,
    weights: &ScoringWeights,
) -> Option<&'a Candidate> {
    let fastest = candidates
        .clone()
        .into_iter()
        .map(|c| c.ranked_arrival_s(now, weights))
        .min()?;
    let limit = fastest.saturating_add(i64::from(weights.eta_band_s));
    candidates
        .into_iter()
        .map(|c| (Keyed::of(c, now, weights), c))
        .filter(|(k, _)| k.arrival_s <= limit)
        .min_by(|(a, _), (b, _)| a.within_band(b))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0).unwrap()
    }

    fn nurse(n: u128) -> NurseId {
        NurseId(Uuid::from_u128(n))
    }

    fn cand(n: u128, eta_s: u32) -> Candidate {
        Candidate {
            nurse_id: nurse(n),
            eta_s,
            distance_m: eta_s * 7,
            jobs_today: 0,
            offers_answered: 0,
            offers_accepted: 0,
            free_at: None,
            preferred: false,
            visit_s: None,
        }
    }

    #[test]
    fn continuity_prefers_the_nurse_from_before_only_when_near() {
        let w = ScoringWeights::default();
        let mut before = cand(2, 650); // 3 min slower than the fastest
        before.preferred = true;
        before.jobs_today = 5;
        let fast = cand(1, 460);
        assert_eq!(
            ranked_ids(vec![fast.clone(), before.clone()], &w),
            vec![2, 1]
        );
        assert_eq!(
            best([&fast, &before], now(), &w).map(|c| c.nurse_id),
            Some(nurse(2))
        );
        // 10 minutes slower: the credit does not cover it.
        let mut far = cand(2, 1100);
        far.preferred = true;
        assert_eq!(ranked_ids(vec![fast.clone(), far], &w), vec![1, 2]);
        // Off: arrival alone.
        let off = w.with_continuity(0).unwrap();
        assert_eq!(ranked_ids(vec![fast, before], &off), vec![1, 2]);
        assert!(w.with_continuity(601).is_err());
    }

    fn ranked_ids(mut cs: Vec<Candidate>, w: &ScoringWeights) -> Vec<u128> {
        rank(&mut cs, now(), w);
        cs.iter().map(|c| c.nurse_id.0.as_u128()).collect()
    }

    #[test]
    fn eta_dominates_beyond_the_band() {
        let w = ScoringWeights::default();
        // Nurse 2 has done nothing today and a perfect record, but is 61 s slower.
        let mut slow_but_fair = cand(2, 661);
        slow_but_fair.offers_answered = 50;
        slow_but_fair.offers_accepted = 50;
        let mut fast = cand(1, 600);
        fast.jobs_today = 9;
        fast.offers_answered = 10;
        fast.offers_accepted = 1;
        assert_eq!(ranked_ids(vec![slow_but_fair, fast], &w), vec![1, 2]);
    }

    #[test]
    fn fairness_breaks_near_ties() {
        let w = ScoringWeights::default();
        let mut busy = cand(1, 600);
        busy.jobs_today = 3;
        let mut idle = cand(2, 660); // exactly at the band's edge: still a tie
        idle.jobs_today = 1;
        assert_eq!(ranked_ids(vec![busy.clone(), idle.clone()], &w), vec![2, 1]);
        // With banding off, the faster nurse wins.
        let strict = ScoringWeights::new(0, 4.0, 1.0).unwrap();
        assert_eq!(ranked_ids(vec![busy, idle], &strict), vec![1, 2]);
    }

    #[test]
    fn bands_are_anchored_on_the_fastest() {
        let w = ScoringWeights::default();
        // 0 s, 50 s, 100 s: 100 s is within 60 s of 50 s but not of the fastest.
        let mut a = cand(1, 0);
        a.jobs_today = 5;
        let mut b = cand(2, 50);
        b.jobs_today = 4;
        let mut c = cand(3, 100);
        c.jobs_today = 0;
        assert_eq!(ranked_ids(vec![a, b, c], &w), vec![2, 1, 3]);
    }

    #[test]
    fn acceptance_breaks_remaining_ties() {
        let w = ScoringWeights::default();
        let mut flaky = cand(1, 300);
        flaky.offers_answered = 10;
        flaky.offers_accepted = 5;
        let mut reliable = cand(2, 330);
        reliable.offers_answered = 10;
        reliable.offers_accepted = 9;
        assert_eq!(
            ranked_ids(vec![flaky.clone(), reliable.clone()], &w),
            vec![2, 1]
        );
        // Fairness still comes before acceptance.
        flaky.jobs_today = 0;
        reliable.jobs_today = 1;
        assert_eq!(ranked_ids(vec![reliable, flaky], &w), vec![1, 2]);
    }

    #[test]
    fn a_new_nurse_is_not_punished() {
        let w = ScoringWeights::default();
        let new = cand(1, 0);
        let mut one_decline = cand(2, 0);
        one_decline.offers_answered = 1;
        let mut mediocre = cand(3, 0);
        mediocre.offers_answered = 20;
        mediocre.offers_accepted = 12; // 60 %
        let mut good = cand(4, 0);
        good.offers_answered = 20;
        good.offers_accepted = 19; // 95 %
        assert_eq!(new.acceptance_rate(&w), 0.8);
        assert!(new.acceptance_rate(&w) > mediocre.acceptance_rate(&w));
        assert!(new.acceptance_rate(&w) > one_decline.acceptance_rate(&w));
        assert!(new.acceptance_rate(&w) < good.acceptance_rate(&w));
        assert_eq!(
            ranked_ids(vec![new, one_decline, mediocre, good], &w),
            vec![4, 1, 2, 3]
        );
        // A record claiming more acceptances than answers is clamped, not trusted.
        let mut odd = cand(5, 0);
        odd.offers_accepted = 3;
        assert_eq!(odd.acceptance_rate(&w), 0.8);
    }

    #[test]
    fn free_at_shifts_arrival() {
        let w = ScoringWeights::default();
        // Closest, but busy for 10 more minutes.
        let mut busy = cand(1, 120);
        busy.free_at = Some(now() + chrono::TimeDelta::minutes(10));
        let idle = cand(2, 500);
        assert_eq!(busy.arrival_in_s(now()), 720);
        assert_eq!(
            busy.arrival_at(now()),
            now() + chrono::TimeDelta::seconds(720)
        );
        assert_eq!(ranked_ids(vec![busy.clone(), idle], &w), vec![2, 1]);
        // A job that already ended does not delay; part seconds round up.
        busy.free_at = Some(now() - chrono::TimeDelta::minutes(1));
        assert_eq!(busy.arrival_in_s(now()), 120);
        busy.free_at = Some(now() + chrono::TimeDelta::milliseconds(1));
        assert_eq!(busy.arrival_in_s(now()), 121);
    }

    #[test]
    fn identical_candidates_order_by_id() {
        let w = ScoringWeights::default();
        assert_eq!(
            ranked_ids(vec![cand(3, 10), cand(1, 10), cand(2, 10)], &w),
            vec![1, 2, 3]
        );
        // Same band, same jobs and record: the exact arrival decides before the id.
        assert_eq!(ranked_ids(vec![cand(1, 40), cand(2, 10)], &w), vec![2, 1]);
        let mut empty: Vec<Candidate> = vec![];
        rank(&mut empty, now(), &w);
        assert!(best(&empty, now(), &w).is_none());
    }

    #[test]
    fn weights_validate_and_deserialise() {
        let w: ScoringWeights = serde_json::from_str("{}").unwrap();
        assert_eq!(w, ScoringWeights::default());
        let w: ScoringWeights = serde_json::from_str(r#"{"eta_band_s": 30}"#).unwrap();
        assert_eq!(w.eta_band_s, 30);
        assert!(serde_json::from_str::<ScoringWeights>(r#"{"eta_band_s": 601}"#).is_err());
        assert!(serde_json::from_str::<ScoringWeights>(r#"{"band": 1}"#).is_err());
        assert_eq!(
            ScoringWeights::new(60, 0.0, 1.0).unwrap_err().field,
            "acceptance_prior_accepted"
        );
        assert_eq!(
            ScoringWeights::new(60, 1.0, f64::NAN).unwrap_err().field,
            "acceptance_prior_declined"
        );
    }

    fn any_candidate() -> impl Strategy<Value = Candidate> {
        (
            0u128..12,
            0u32..2_000,
            0u32..6,
            0u32..20,
            0u32..20,
            prop::option::of(-300i64..900),
            any::<bool>(),
        )
            .prop_map(
                |(id, eta_s, jobs, answered, accepted, free, preferred)| Candidate {
                    nurse_id: nurse(id),
                    eta_s,
                    distance_m: 0,
                    jobs_today: jobs,
                    offers_answered: answered,
                    offers_accepted: accepted.min(answered),
                    free_at: free.map(|s| now() + chrono::TimeDelta::seconds(s)),
                    preferred,
                    visit_s: None,
                },
            )
    }

    proptest! {
        #[test]
        fn rank_is_deterministic_and_best_agrees(
            cs in prop::collection::vec(any_candidate(), 0..30),
            band in 0u32..200,
        ) {
            // A candidate list holds each nurse once.
            let mut seen = std::collections::HashSet::new();
            let cs: Vec<Candidate> = cs.into_iter().filter(|c| seen.insert(c.nurse_id)).collect();
            let w = ScoringWeights::new(band, 4.0, 1.0).unwrap();
            let mut a = cs.clone();
            rank(&mut a, now(), &w);
            let mut b: Vec<_> = cs.iter().rev().cloned().collect();
            rank(&mut b, now(), &w);
            // Input order does not matter.
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(best(&cs, now(), &w), a.first());
            // The first is within the band of the fastest, and nobody is
            // ranked above a candidate more than a band faster (arrivals as
            // ranked: less the continuity credit).
            let r = |c: &Candidate| c.ranked_arrival_s(now(), &w);
            if let Some(first) = a.first() {
                let fastest = cs.iter().map(r).min().unwrap();
                prop_assert!(r(first) <= fastest + i64::from(band));
            }
            for (i, x) in a.iter().enumerate() {
                for y in &a[i + 1..] {
                    prop_assert!(
                        r(x) <= r(y) + i64::from(band),
                        "{x:?} ranked above a much faster {y:?}"
                    );
                }
            }
        }
    }
}
