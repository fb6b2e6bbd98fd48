//! The batch objective that weighs the risk of missing the promise rather
//! than the ETA alone ([`assign_batch_risk`]).
//!
//! **Model.** The nurse is at the door `answer + wait + travel` from now:
//! `answer` the expected seconds to accept ([`RiskModel::answer_s`]),
//! `wait` the rest of her current visit when chained (`free_at − now`;
//! a visit's end is a prediction from the catalogue's duration, uncertain
//! by [`RiskModel::visit_sigma`] of the visit's length when the candidate
//! carries it, else by [`RiskModel::finish_sd_s`], and uncertain even
//! when predicted for now: an overrunning visit has not ended), `travel`
//! the ETA model's estimate times a log-normal factor of mean 1 and log-σ
//! [`RiskModel::travel_sigma`] (the scenario's travel noise). The sum is
//! taken as normal with those means and variances, so the probability of
//! being late is `1 − Φ((promised_by − now − mean) ÷ sd)`.
//!
//! **Objective.** As the plain batch, the solver first assigns as many
//! orders as it can. Then it minimises, over the pairs chosen, the sum of
//! `p_late × risk_weight_s + arrival_s`: a point of probability of a missed
//! promise is worth [`RiskModel::risk_weight_s`]` ÷ 100` seconds of
//! arrival. So a nurse nearly sure to be on time beats a nearer one with a
//! real chance of being late, and among safe choices the sooner wins (a
//! nurse spending less of her time on the road is free sooner for the next
//! order). The patient's nurse from before counts as arriving the order's
//! continuity credit sooner ([`WaitingOrder::continuity_cost_s`]), as in
//! the plain batch.
//!
//! **Chained candidates** (still on a visit) are kept only when nearly sure
//! to be on time ([`RiskModel::max_chained_p_late`]) and only for an order
//! that no free candidate serves on time with fair confidence
//! ([`RiskModel::chain_unless_free_p_late_below`]).
//!
//! **Late reserve** (trunk reservation, off by default:
//! [`RiskModel::late_reserve`]). When demand outruns the nurses, every
//! order served late took a nurse who could have kept a later order's
//! promise, and the queue never catches up. With a reserve of `k`, an
//! order that no candidate can reach in time any more
//! ([`RiskModel::hopeless_p_late`]) is offered only while more than `k`
//! free candidates are left for it, so the last `k` free nurses of an area
//! wait for orders they can still serve on time. It trades served orders
//! for punctual ones: more orders go unserved (the resident gives up).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use yixin_domain::{NurseId, OrderId};

use super::assignment::{self, MAX_ROWS, SparseCosts};
use super::{CandidateLists, MAX_BATCH_SECONDS, WaitingOrder};
use crate::scoring::Candidate;
use crate::settings::InvalidSettings;

/// The uncertainty the risk cost assumes, and its rules for chained
/// candidates and late orders (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RiskModel {
    /// Log-σ of the travel time's factor on the ETA model (0.25).
    pub travel_sigma: f64,
    /// Standard deviation of a chained nurse's predicted visit end, s (480),
    /// when the candidate does not say how long the visit is.
    pub finish_sd_s: f64,
    /// Log-σ of a visit's length on its catalogue duration (0.2): a chained
    /// candidate that carries the visit's length ([`Candidate::visit_s`])
    /// ends with a standard deviation of that length × √(e^σ² − 1), so a
    /// 90-minute visit is three times as uncertain as a 30-minute one.
    pub visit_sigma: f64,
    /// Expected seconds from the offer to the acceptance (15).
    pub answer_s: f64,
    /// Seconds of arrival one whole probability of lateness is worth (36 000).
    pub risk_weight_s: f64,
    /// A chained candidate (still on a visit) more likely late than this is
    /// left out (0.02): committing her early loses the choice of whoever
    /// really comes free first, which only pays when she is nearly sure.
    pub max_chained_p_late: f64,
    /// Chained candidates are left out of an order that has a free
    /// candidate less likely to be late than this (0.1; 0 turns the rule
    /// off): chaining is for the order nobody free serves in time, not a
    /// way to save a few minutes at the price of reserving a nurse whose
    /// visit may overrun.
    pub chain_unless_free_p_late_below: f64,
    /// An order none of whose candidates is at most this likely to be late
    /// is *hopeless* for the late reserve (0.9).
    pub hopeless_p_late: f64,
    /// The late reserve (module doc): a hopeless order is offered only while
    /// more than this many free candidates are left for it. `None`: off,
    /// every order is offered.
    pub late_reserve: Option<u32>,
}

impl Default for RiskModel {
    fn default() -> Self {
        Self {
            travel_sigma: 0.25,
            finish_sd_s: 480.0,
            visit_sigma: 0.2,
            answer_s: 15.0,
            risk_weight_s: 36_000.0,
            max_chained_p_late: 0.02,
            chain_unless_free_p_late_below: 0.1,
            hopeless_p_late: 0.9,
            late_reserve: None,
        }
    }
}

impl RiskModel {
    /// Checks every value finite and non-negative, `travel_sigma` and
    /// `visit_sigma` ≤ 2, probabilities ≤ 1.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        for (field, v, max) in [
            ("travel_sigma", self.travel_sigma, 2.0),
            ("finish_sd_s", self.finish_sd_s, 7_200.0),
            ("visit_sigma", self.visit_sigma, 2.0),
            ("answer_s", self.answer_s, 3_600.0),
            ("risk_weight_s", self.risk_weight_s, 1e7),
            ("max_chained_p_late", self.max_chained_p_late, 1.0),
            (
                "chain_unless_free_p_late_below",
                self.chain_unless_free_p_late_below,
                1.0,
            ),
            ("hopeless_p_late", self.hopeless_p_late, 1.0),
        ] {
            if !(v >= 0.0 && v <= max) {
                return Err(InvalidSettings::new(
                    field,
                    format!("must be within 0..={max}, got {v}"),
                ));
            }
        }
        Ok(())
    }

    /// Standard deviation of when chained candidate `c`'s visit ends, s.
    fn finish_sd(&self, c: &Candidate) -> f64 {
        match c.visit_s {
            Some(visit) => f64::from(visit) * (self.visit_sigma * self.visit_sigma).exp_m1().sqrt(),
            None => self.finish_sd_s,
        }
    }

    /// Probability that `c` reaches the door after `promised_by`.
    pub fn p_late(&self, c: &Candidate, promised_by: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
        let wait_s = c.free_at.map_or(0.0, |at| {
            (at - now).num_milliseconds().max(0) as f64 / 1_000.0
        });
        let eta = f64::from(c.eta_s);
        let mean = self.answer_s + wait_s + eta;
        let travel_sd = eta * (self.travel_sigma * self.travel_sigma).exp_m1().sqrt();
        // A chained nurse's end is uncertain even when it is predicted for
        // now: a visit running past its catalogue length has not ended.
        let finish_sd = if c.free_at.is_some() {
            self.finish_sd(c)
        } else {
            0.0
        };
        let sd = (travel_sd * travel_sd + finish_sd * finish_sd).sqrt();
        let slack = (promised_by - now).num_milliseconds() as f64 / 1_000.0 - mean;
        if sd <= 0.0 {
            return if slack >= 0.0 { 0.0 } else { 1.0 };
        }
        1.0 - std_normal_cdf(slack / sd)
    }

    /// The pair's cost in the risk objective (module doc), in seconds-equivalent.
    pub fn cost(&self, c: &Candidate, order: &WaitingOrder, now: DateTime<Utc>) -> i64 {
        let arrival_s = c.arrival_in_s(now).clamp(0, MAX_BATCH_SECONDS);
        let risk = (self.p_late(c, order.promised_by, now) * self.risk_weight_s).round() as i64;
        arrival_s + risk.clamp(0, MAX_BATCH_SECONDS) + order.continuity_cost_s(c)
    }

    /// The candidates of an order (promised by `promised_by`) the batch may
    /// choose from: every free one and the chained ones the rules keep,
    /// or none when the late reserve holds the order back (module doc).
    pub fn usable<'a>(
        &self,
        cands: &'a [Candidate],
        promised_by: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<&'a Candidate> {
        let p: Vec<f64> = cands
            .iter()
            .map(|c| self.p_late(c, promised_by, now))
            .collect();
        let is_free = |c: &Candidate| c.free_at.is_none();
        if let Some(reserve) = self.late_reserve {
            let hopeless = p.iter().all(|&x| x > self.hopeless_p_late);
            let free = cands.iter().filter(|c| is_free(c)).count();
            if hopeless && free <= reserve as usize {
                return Vec::new();
            }
        }
        let chain_allowed = !cands
            .iter()
            .zip(&p)
            .any(|(c, &x)| is_free(c) && x < self.chain_unless_free_p_late_below);
        cands
            .iter()
            .zip(&p)
            .filter(|&(c, &x)| is_free(c) || (chain_allowed && x <= self.max_chained_p_late))
            .map(|(c, _)| c)
            .collect()
    }
}

/// Φ, the standard normal distribution function (Abramowitz & Stegun
/// 7.1.26 for erfc, absolute error below 1.5·10⁻⁷).
pub fn std_normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        1.0 - erfc / 2.0
    } else {
        erfc / 2.0
    }
}

/// Assigns waiting orders to candidates: most orders assigned, then the
/// least total risk cost ([`RiskModel::cost`]). Each nurse at most once;
/// deterministic; at most [`MAX_ROWS`] orders per solve.
pub fn assign_batch_risk(
    orders: &[WaitingOrder],
    candidates: &CandidateLists,
    now: DateTime<Utc>,
    model: &RiskModel,
) -> Vec<(OrderId, NurseId)> {
    let mut seen = HashSet::with_capacity(orders.len());
    let mut rows: Vec<&WaitingOrder> = orders.iter().filter(|o| seen.insert(o.order_id)).collect();
    rows.truncate(MAX_ROWS);
    let mut nurse_col: HashMap<NurseId, usize> = HashMap::new();
    let mut nurses: Vec<NurseId> = Vec::new();
    let mut row_edges: Vec<Vec<(usize, i64)>> = Vec::with_capacity(rows.len());
    for o in &rows {
        let edges = model
            .usable(candidates.get(&o.order_id), o.promised_by, now)
            .into_iter()
            .map(|c| {
                let col = *nurse_col.entry(c.nurse_id).or_insert_with(|| {
                    nurses.push(c.nurse_id);
                    nurses.len() - 1
                });
                (col, model.cost(c, o, now))
            })
            .collect();
        row_edges.push(edges);
    }
    let Ok(mut problem) = SparseCosts::new(nurses.len()) else {
        return Vec::new();
    };
    for edges in row_edges {
        if let Err(error) = problem.push_row(edges) {
            tracing::error!(%error, "risk batch assignment refused its input");
            return Vec::new();
        }
    }
    assignment::min_cost_assignment(&problem)
        .into_iter()
        .zip(&rows)
        .filter_map(|(col, o)| col.map(|c| (o.order_id, nurses[c])))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::{TimeDelta, TimeZone};
    use uuid::Uuid;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0).unwrap()
    }

    fn cand(n: u128, eta_s: u32, free_in_s: Option<i64>) -> Candidate {
        Candidate {
            nurse_id: NurseId(Uuid::from_u128(n)),
            eta_s,
            distance_m: 0,
            jobs_today: 0,
            offers_answered: 0,
            offers_accepted: 0,
            free_at: free_in_s.map(|s| now() + TimeDelta::seconds(s)),
            preferred: false,
            visit_s: None,
        }
    }

    #[test]
    fn phi_matches_known_values() {
        for (z, p) in [
            (0.0, 0.5),
            (1.0, 0.841_344_7),
            (-1.96, 0.024_997_9),
            (3.0, 0.998_650_1),
        ] {
            assert!((std_normal_cdf(z) - p).abs() < 1e-6, "{z}");
        }
    }

    #[test]
    fn lateness_probability_by_hand() {
        let m = RiskModel {
            answer_s: 0.0,
            ..RiskModel::default()
        };
        let due = now() + TimeDelta::minutes(30);
        // ETA 1 800 s exactly on the promise: half a chance of being late.
        assert!((m.p_late(&cand(1, 1_800, None), due, now()) - 0.5).abs() < 1e-6);
        // ETA 1 200 s: sd = 1200·sqrt(e^0.0625 − 1) ≈ 304.8 s; slack 600 s → z ≈ 1.968.
        let sd = 1_200.0 * (0.0625f64.exp() - 1.0).sqrt();
        let want = 1.0 - std_normal_cdf(600.0 / sd);
        assert!((m.p_late(&cand(1, 1_200, None), due, now()) - want).abs() < 1e-12);
        // Chained: free in 10 min, 10 min away: same mean, more spread → riskier.
        let chained = m.p_late(&cand(2, 600, Some(600)), due, now());
        let sd2 = ((600.0 * (0.0625f64.exp() - 1.0).sqrt()).powi(2) + 480f64.powi(2)).sqrt();
        assert!((chained - (1.0 - std_normal_cdf(600.0 / sd2))).abs() < 1e-12);
        // No noise at all: a step.
        let exact = RiskModel {
            travel_sigma: 0.0,
            finish_sd_s: 0.0,
            visit_sigma: 0.0,
            answer_s: 0.0,
            risk_weight_s: 1.0,
            max_chained_p_late: 1.0,
            chain_unless_free_p_late_below: 0.0,
            hopeless_p_late: 1.0,
            late_reserve: None,
        };
        assert_eq!(exact.p_late(&cand(1, 1_800, None), due, now()), 0.0);
        assert_eq!(exact.p_late(&cand(1, 1_801, None), due, now()), 1.0);
    }

    #[test]
    fn risk_not_eta_picks_the_nurse() {
        let m = RiskModel {
            max_chained_p_late: 1.0,
            chain_unless_free_p_late_below: 0.0,
            ..RiskModel::default()
        };
        let o = WaitingOrder {
            order_id: OrderId(Uuid::from_u128(99)),
            promised_by: now() + TimeDelta::minutes(20),
            continuity_credit_s: 0,
        };
        let mut lists = CandidateLists::new();
        // Nurse 1 idle, 900 s away: p_late ≈ 0.11. Nurse 2 finishing a
        // visit in 120 s, then 600 s away: sooner (720 s) but her visit's
        // end is uncertain: p_late ≈ 0.18.
        lists.insert(
            o.order_id,
            vec![cand(1, 900, None), cand(2, 600, Some(120))],
        );
        assert!(
            m.p_late(&cand(1, 900, None), o.promised_by, now())
                < m.p_late(&cand(2, 600, Some(120)), o.promised_by, now())
        );
        let risk = assign_batch_risk(&[o], &lists, now(), &m);
        assert_eq!(risk, vec![(o.order_id, NurseId(Uuid::from_u128(1)))]);
        // The ETA objective takes the sooner one.
        let eta = super::super::assign_batch(&[o], &lists, now());
        assert_eq!(eta, vec![(o.order_id, NurseId(Uuid::from_u128(2)))]);
        // With an hour to spare both are safe: the sooner arrival wins.
        let relaxed = WaitingOrder {
            promised_by: now() + TimeDelta::minutes(60),
            ..o
        };
        let pairs = assign_batch_risk(&[relaxed], &lists, now(), &m);
        assert_eq!(pairs, vec![(o.order_id, NurseId(Uuid::from_u128(2)))]);
    }

    #[test]
    fn the_patients_nurse_from_before_wins_a_near_tie_not_a_risky_one() {
        let m = RiskModel::default();
        let o = WaitingOrder {
            order_id: OrderId(Uuid::from_u128(99)),
            promised_by: now() + TimeDelta::minutes(30),
            continuity_credit_s: 300,
        };
        // Both sure to be on time; she is 4 minutes farther: the credit wins.
        let mut before = cand(1, 540, None);
        before.preferred = true;
        let lists: CandidateLists = [(o.order_id, vec![before.clone(), cand(2, 300, None)])]
            .into_iter()
            .collect();
        assert_eq!(
            assign_batch_risk(&[o], &lists, now(), &m),
            vec![(o.order_id, before.nurse_id)]
        );
        let plain = WaitingOrder {
            continuity_credit_s: 0,
            ..o
        };
        assert_eq!(
            assign_batch_risk(&[plain], &lists, now(), &m),
            vec![(o.order_id, NurseId(Uuid::from_u128(2)))]
        );
        // 26 minutes away she has a real chance of being late (about 1 in 4):
        // the credit does not buy that risk.
        let mut risky = cand(1, 1_560, None);
        risky.preferred = true;
        assert!(m.p_late(&risky, o.promised_by, now()) > 0.1);
        let lists: CandidateLists = [(o.order_id, vec![risky, cand(2, 1_200, None)])]
            .into_iter()
            .collect();
        assert_eq!(
            assign_batch_risk(&[o], &lists, now(), &m),
            vec![(o.order_id, NurseId(Uuid::from_u128(2)))]
        );
    }

    #[test]
    fn a_longer_visit_ends_less_surely() {
        let m = RiskModel {
            answer_s: 0.0,
            ..RiskModel::default()
        };
        let due = now() + TimeDelta::minutes(30);
        let chained = |visit_s: Option<u32>| Candidate {
            visit_s,
            ..cand(1, 600, Some(600))
        };
        let travel_var = (600.0 * (0.0625f64.exp() - 1.0).sqrt()).powi(2);
        for (visit_s, finish_sd) in [
            (Some(1_800), 1_800.0 * (0.04f64.exp() - 1.0).sqrt()),
            (Some(5_400), 5_400.0 * (0.04f64.exp() - 1.0).sqrt()),
            (None, 480.0),
        ] {
            let want = 1.0 - std_normal_cdf(600.0 / (travel_var + finish_sd * finish_sd).sqrt());
            let got = m.p_late(&chained(visit_s), due, now());
            assert!((got - want).abs() < 1e-12, "{visit_s:?}: {got} vs {want}");
        }
        assert!(
            m.p_late(&chained(Some(5_400)), due, now())
                > m.p_late(&chained(Some(1_800)), due, now())
        );
        // A visit predicted to end now (overrunning) is still uncertain: she
        // is riskier than a free nurse as far away.
        let overrunning = Candidate {
            visit_s: Some(3_600),
            ..cand(2, 1_500, Some(0))
        };
        assert!(m.p_late(&overrunning, due, now()) > m.p_late(&cand(3, 1_500, None), due, now()));
    }

    #[test]
    fn chained_only_when_no_free_nurse_keeps_the_promise() {
        let m = RiskModel::default();
        let o = WaitingOrder {
            order_id: OrderId(Uuid::from_u128(99)),
            promised_by: now() + TimeDelta::minutes(30),
            continuity_credit_s: 0,
        };
        let soon = cand(2, 120, Some(60));
        assert!(m.p_late(&soon, o.promised_by, now()) <= m.max_chained_p_late);
        // A free nurse 20 min away is safe enough (p_late ≈ 0.03): the
        // chained one, sooner, is not used.
        let safe = [cand(1, 1_200, None), soon.clone()];
        assert!(m.p_late(&safe[0], o.promised_by, now()) < 0.1);
        let kept = m.usable(&safe, o.promised_by, now());
        assert_eq!(kept, vec![&safe[0]]);
        // A free nurse 29 min away is not (p_late ≈ 0.45): both are kept and
        // the chained nurse wins.
        let unsafe_free = [cand(1, 1_740, None), soon.clone()];
        assert_eq!(m.usable(&unsafe_free, o.promised_by, now()).len(), 2);
        let mut lists = CandidateLists::new();
        lists.insert(o.order_id, unsafe_free.to_vec());
        assert_eq!(
            assign_batch_risk(&[o], &lists, now(), &m),
            vec![(o.order_id, NurseId(Uuid::from_u128(2)))]
        );
        // The rule off (0): the chained nurse is kept beside the safe one.
        let off = RiskModel {
            chain_unless_free_p_late_below: 0.0,
            ..m
        };
        assert_eq!(off.usable(&safe, o.promised_by, now()).len(), 2);
    }

    #[test]
    fn the_late_reserve_holds_hopeless_orders_for_the_last_free_nurses() {
        let reserve = RiskModel {
            late_reserve: Some(2),
            ..RiskModel::default()
        };
        // Promised 10 min ago: every nurse is late, the order is hopeless.
        let late = WaitingOrder {
            order_id: OrderId(Uuid::from_u128(98)),
            promised_by: now() - TimeDelta::minutes(10),
            continuity_credit_s: 0,
        };
        let fresh = WaitingOrder {
            order_id: OrderId(Uuid::from_u128(99)),
            promised_by: now() + TimeDelta::minutes(30),
            continuity_credit_s: 0,
        };
        let two = [cand(1, 300, None), cand(2, 600, None)];
        let three = [cand(1, 300, None), cand(2, 600, None), cand(3, 900, None)];
        let assign = |m: &RiskModel, o: WaitingOrder, cands: &[Candidate]| {
            let mut lists = CandidateLists::new();
            lists.insert(o.order_id, cands.to_vec());
            assign_batch_risk(&[o], &lists, now(), m)
        };
        // Two free nurses left, reserve 2: held back.
        assert!(assign(&reserve, late, &two).is_empty());
        // Three: the nearest goes.
        assert_eq!(
            assign(&reserve, late, &three),
            vec![(late.order_id, NurseId(Uuid::from_u128(1)))]
        );
        // An order that can still be on time is never held back.
        assert_eq!(assign(&reserve, fresh, &two).len(), 1);
        // Off by default: the late order takes a nurse.
        assert_eq!(assign(&RiskModel::default(), late, &two).len(), 1);
        // Hopeless is every candidate more likely late than 0.9: one nurse
        // still likely in time (p ≈ 0.16) keeps it served.
        let due_soon = WaitingOrder {
            promised_by: now() + TimeDelta::seconds(390),
            ..late
        };
        let near = [cand(1, 300, None), cand(2, 3_000, None)];
        let p = reserve.p_late(&near[0], due_soon.promised_by, now());
        assert!(p < 0.9, "{p}");
        assert_eq!(assign(&reserve, due_soon, &near).len(), 1);
    }

    #[test]
    fn bad_model_is_refused() {
        let m = RiskModel {
            travel_sigma: f64::NAN,
            ..RiskModel::default()
        };
        assert_eq!(m.validate().unwrap_err().field, "travel_sigma");
        assert!(RiskModel::default().validate().is_ok());
    }
}
