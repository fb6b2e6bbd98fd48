//! Chained offers: a nurse finishing a visit soon may win her next job
//! before the current one ends.
//!
//! - **Predicted end** of a visit ([`predicted_end`]): started → start +
//!   the service's duration; at the door (not started) → from now (or the
//!   arrival, if later) + duration; assigned / en route → the predicted
//!   arrival + duration. A visit running past its duration is predicted to
//!   end now (it cannot end in the past).
//! - **Candidate** ([`ChainRules::free_at`]): a nurse with exactly one job
//!   (no next job yet) whose visit is predicted to end within the
//!   [`ChainRules::horizon`] of `now`. Her ETA to the new order counts from
//!   the current visit's location and her arrival from its predicted end
//!   (the [`crate::Candidate::free_at`] the ranking and the batch use).
//! - **Slots** ([`MAX_NEXT_JOBS`]): at most one current job plus one next
//!   job; the store's claim enforces it atomically.
//! - **Overrun** ([`ChainRules::at_risk`]): the next job is taken back and
//!   offered again when the current visit runs so late that the predicted
//!   arrival at the next door passes its deadline: the order's promise, or,
//!   when she was chosen already past the promise (an escalated order), the
//!   arrival she was chosen for plus [`ChainRules::overrun_tolerance`].
//!
//! Pure: the clock is passed in.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use yixin_domain::OrderStatus;

use crate::settings::InvalidSettings;

/// Next jobs a nurse may hold besides her current one.
pub const MAX_NEXT_JOBS: usize = 1;

/// Longest horizon accepted from configuration, in seconds (two hours).
pub const MAX_HORIZON_S: u32 = 7_200;

/// The chaining tunables (`dispatch.chain_horizon_s`,
/// `dispatch.chain_overrun_tolerance_s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawChainRules")]
pub struct ChainRules {
    /// A busy nurse is a candidate when her visit is predicted to end
    /// within this of now. Zero turns chaining off.
    pub horizon: TimeDelta,
    /// How much later than the arrival she was chosen for a chained nurse may
    /// become before her next job is taken back, when that arrival was
    /// already past the promise (see the module doc).
    pub overrun_tolerance: TimeDelta,
}

/// Default horizon: off. The simulator measures chaining as built costing
/// on-time share (README, Simulator); 1200 (20 minutes) is the horizon it
/// was measured with.
pub const DEFAULT_HORIZON_S: u32 = 0;
/// Default overrun tolerance: 5 minutes.
pub const DEFAULT_OVERRUN_TOLERANCE_S: u32 = 300;

impl Default for ChainRules {
    fn default() -> Self {
        Self {
            horizon: TimeDelta::seconds(i64::from(DEFAULT_HORIZON_S)),
            overrun_tolerance: TimeDelta::seconds(i64::from(DEFAULT_OVERRUN_TOLERANCE_S)),
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawChainRules {
    horizon_s: u32,
    overrun_tolerance_s: u32,
}

impl Default for RawChainRules {
    fn default() -> Self {
        Self {
            horizon_s: DEFAULT_HORIZON_S,
            overrun_tolerance_s: DEFAULT_OVERRUN_TOLERANCE_S,
        }
    }
}

impl TryFrom<RawChainRules> for ChainRules {
    type Error = InvalidSettings;

    fn try_from(raw: RawChainRules) -> Result<Self, Self::Error> {
        ChainRules::new(raw.horizon_s, raw.overrun_tolerance_s)
    }
}

impl ChainRules {
    /// Validated rules: the horizon at most [`MAX_HORIZON_S`] (0 = off), the
    /// tolerance at most an hour.
    pub fn new(horizon_s: u32, overrun_tolerance_s: u32) -> Result<Self, InvalidSettings> {
        if horizon_s > MAX_HORIZON_S {
            return Err(InvalidSettings::new(
                "chain_horizon_s",
                format!("at most {MAX_HORIZON_S} seconds (0 turns chaining off)"),
            ));
        }
        if overrun_tolerance_s > 3_600 {
            return Err(InvalidSettings::new(
                "chain_overrun_tolerance_s",
                "at most 3600 seconds",
            ));
        }
        Ok(Self {
            horizon: TimeDelta::seconds(i64::from(horizon_s)),
            overrun_tolerance: TimeDelta::seconds(i64::from(overrun_tolerance_s)),
        })
    }

    /// Chaining switched off (a zero horizon).
    pub fn off() -> Self {
        Self {
            horizon: TimeDelta::zero(),
            ..Self::default()
        }
    }

    /// Whether chaining is on (a horizon above zero).
    pub fn enabled(&self) -> bool {
        self.horizon > TimeDelta::zero()
    }

    /// Whether a visit predicted to end at `end` ends within the horizon of `now`.
    pub fn within_horizon(&self, end: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.enabled() && end - now <= self.horizon
    }

    /// When a nurse working on `current`, holding `next_jobs` next jobs, is
    /// free for another order, if she is a chain candidate at `now`: the
    /// predicted end of her visit. `None`: not a candidate (chaining off, the
    /// next slot taken, no visit under way, or it ends beyond the horizon).
    pub fn free_at(
        &self,
        current: &Visit,
        next_jobs: usize,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if next_jobs >= MAX_NEXT_JOBS {
            return None;
        }
        predicted_end(current, now).filter(|end| self.within_horizon(*end, now))
    }

    /// Whether the next job is at risk at `now`, so it is taken back and
    /// offered again: the nurse's predicted arrival there (from the current
    /// visit's predicted end `current_end`, then `eta_s` of travel) is later
    /// than the job's [`NextJob::deadline`].
    pub fn at_risk(
        &self,
        next: &NextJob,
        current_end: DateTime<Utc>,
        eta_s: u32,
        now: DateTime<Utc>,
    ) -> bool {
        next_arrival(current_end, eta_s, now) > next.deadline(self)
    }
}

/// What the rules need of the visit a nurse is working on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visit {
    pub status: OrderStatus,
    /// The service's duration.
    pub duration: TimeDelta,
    /// When she reached the door (`arrived` step), if she has.
    pub arrived_at: Option<DateTime<Utc>>,
    /// When the visit started (`started` step), if it has.
    pub started_at: Option<DateTime<Utc>>,
    /// Her predicted arrival at the door while assigned or en route (the
    /// order's `eta`).
    pub eta: Option<DateTime<Utc>>,
}

impl Visit {
    /// A visit of `duration_min` minutes in `status`, nothing timed yet.
    pub fn new(status: OrderStatus, duration_min: u32) -> Self {
        Self {
            status,
            duration: TimeDelta::minutes(i64::from(duration_min)),
            arrived_at: None,
            started_at: None,
            eta: None,
        }
    }
}

/// When the visit is predicted to end, seen at `now` (see the module doc);
/// never before `now`. `None` for an order that is no visit under way
/// (waiting for a nurse, completed, cancelled, ...).
pub fn predicted_end(visit: &Visit, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let start = match visit.status {
        OrderStatus::InService => visit.started_at.or(visit.arrived_at).unwrap_or(now),
        OrderStatus::Arrived => visit.arrived_at.map_or(now, |at| at.max(now)),
        OrderStatus::Assigned | OrderStatus::EnRoute => visit.eta.map_or(now, |at| at.max(now)),
        _ => return None,
    };
    Some((start + visit.duration).max(now))
}

/// When a nurse free at `free_at` (or now, if that is past) arrives after
/// `eta_s` seconds of travel.
pub fn next_arrival(free_at: DateTime<Utc>, eta_s: u32, now: DateTime<Utc>) -> DateTime<Utc> {
    free_at.max(now) + TimeDelta::seconds(i64::from(eta_s))
}

/// What the overrun rule needs of a next job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextJob {
    /// The order's promise.
    pub promised_by: DateTime<Utc>,
    /// The arrival she was chosen for (the order's `eta` when she won it).
    pub committed: Option<DateTime<Utc>>,
}

impl NextJob {
    /// The latest arrival still kept: the promise, or the committed arrival
    /// plus the tolerance when she was chosen past the promise.
    pub fn deadline(&self, rules: &ChainRules) -> DateTime<Utc> {
        match self.committed {
            Some(at) if at > self.promised_by => at + rules.overrun_tolerance,
            _ => self.promised_by,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap()
    }

    fn min(m: i64) -> i64 {
        m * 60
    }

    #[test]
    fn the_end_of_a_visit_is_predicted_from_its_progress() {
        let now = t(min(100));
        let mut v = Visit::new(OrderStatus::InService, 60);
        v.started_at = Some(t(min(70)));
        assert_eq!(predicted_end(&v, now), Some(t(min(130))));
        // No start recorded: from the arrival, else now.
        v.started_at = None;
        v.arrived_at = Some(t(min(65)));
        assert_eq!(predicted_end(&v, now), Some(t(min(125))));
        v.arrived_at = None;
        assert_eq!(predicted_end(&v, now), Some(t(min(160))));
        // At the door: starts now (or at the arrival, if later).
        let mut v = Visit::new(OrderStatus::Arrived, 30);
        v.arrived_at = Some(t(min(95)));
        assert_eq!(predicted_end(&v, now), Some(t(min(130))));
        // On the way: the predicted arrival, then the visit.
        let mut v = Visit::new(OrderStatus::EnRoute, 30);
        v.eta = Some(t(min(110)));
        assert_eq!(predicted_end(&v, now), Some(t(min(140))));
        v.eta = Some(t(min(90))); // late: not before now
        assert_eq!(predicted_end(&v, now), Some(t(min(130))));
        v.status = OrderStatus::Assigned;
        v.eta = None;
        assert_eq!(predicted_end(&v, now), Some(t(min(130))));
        // Overrunning: ends "now", never in the past.
        let mut v = Visit::new(OrderStatus::InService, 30);
        v.started_at = Some(t(min(10)));
        assert_eq!(predicted_end(&v, now), Some(now));
        for s in [
            OrderStatus::Pending,
            OrderStatus::Offered,
            OrderStatus::Completed,
            OrderStatus::Cancelled,
            OrderStatus::Scheduled,
        ] {
            assert_eq!(predicted_end(&Visit::new(s, 30), now), None, "{s}");
        }
    }

    /// Chaining on, with the horizon the simulator measured.
    fn twenty_minutes() -> ChainRules {
        ChainRules::new(1_200, DEFAULT_OVERRUN_TOLERANCE_S).unwrap()
    }

    #[test]
    fn a_nurse_finishing_within_the_horizon_is_a_candidate_once() {
        let rules = twenty_minutes();
        assert_eq!(rules.horizon, TimeDelta::minutes(20));
        let now = t(0);
        let mut v = Visit::new(OrderStatus::InService, 60);
        // Started 40 min ago: ends in 20 min, exactly the horizon.
        v.started_at = Some(t(-min(40)));
        assert_eq!(rules.free_at(&v, 0, now), Some(t(min(20))));
        // One second later in the visit's life: 20 min 1 s away.
        v.started_at = Some(t(-min(40) + 1));
        assert_eq!(rules.free_at(&v, 0, now), None);
        // The next slot is taken.
        v.started_at = Some(t(-min(50)));
        assert_eq!(rules.free_at(&v, 0, now), Some(t(min(10))));
        assert_eq!(rules.free_at(&v, 1, now), None);
        // Chaining off.
        assert!(!ChainRules::off().enabled());
        assert_eq!(ChainRules::off().free_at(&v, 0, now), None);
        // Nothing under way.
        assert_eq!(
            rules.free_at(&Visit::new(OrderStatus::Completed, 30), 0, now),
            None
        );
    }

    #[test]
    fn an_overrun_puts_the_next_promise_at_risk() {
        let rules = twenty_minutes();
        let now = t(0);
        let next = NextJob {
            promised_by: t(min(30)),
            committed: Some(t(min(22))),
        };
        assert_eq!(next.deadline(&rules), t(min(30)));
        // Ends in 10 min, 12 min away: arrives at 22 min — kept.
        assert!(!rules.at_risk(&next, t(min(10)), 720, now));
        // Ends in 18 min: arrives at 30 min exactly — still kept.
        assert!(!rules.at_risk(&next, t(min(18)), 720, now));
        // One second later: at risk.
        assert!(rules.at_risk(&next, t(min(18) + 1), 720, now));
        // A predicted end in the past counts from now.
        assert!(!rules.at_risk(&next, t(-min(5)), 720, now));
        assert_eq!(next_arrival(t(-min(5)), 60, now), t(60));
    }

    #[test]
    fn a_job_chosen_past_its_promise_keeps_its_honest_arrival_and_the_tolerance() {
        let rules = twenty_minutes();
        let next = NextJob {
            promised_by: t(min(30)),
            committed: Some(t(min(40))),
        };
        assert_eq!(next.deadline(&rules), t(min(45)));
        assert!(!rules.at_risk(&next, t(min(33)), 720, t(0)));
        assert!(rules.at_risk(&next, t(min(33) + 1), 720, t(0)));
        let none = NextJob {
            committed: None,
            ..next
        };
        assert_eq!(none.deadline(&rules), t(min(30)));
    }

    #[test]
    fn settings_are_validated() {
        assert!(!ChainRules::default().enabled(), "off unless configured");
        assert_eq!(
            ChainRules::new(0, DEFAULT_OVERRUN_TOLERANCE_S).unwrap(),
            ChainRules::default()
        );
        assert!(!ChainRules::new(0, 300).unwrap().enabled());
        assert_eq!(
            ChainRules::new(7_201, 300).unwrap_err().field,
            "chain_horizon_s"
        );
        assert!(ChainRules::new(60, 3_601).is_err());
        let parsed: ChainRules = serde_json::from_str(r#"{"horizon_s": 600}"#).unwrap();
        assert_eq!(parsed.horizon, TimeDelta::minutes(10));
        assert_eq!(parsed.overrun_tolerance, TimeDelta::minutes(5));
        assert!(serde_json::from_str::<ChainRules>(r#"{"horizon_s": 99999}"#).is_err());
        assert!(serde_json::from_str::<ChainRules>(r#"{"horizon": 60}"#).is_err());
    }
}
