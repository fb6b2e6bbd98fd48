//! Who gets which order: the greedy and the batch matching policies.
//!
//! - **Greedy** offers each order, as it comes, to its best-ranked candidate
//!   (the rule of [`crate::scoring`]) among those not excluded (nurses who
//!   declined this order or already hold an offer). Simple and immediate.
//! - **Batch** waits a short window (2 s by default), then solves one
//!   min-cost assignment between the waiting orders and free nurses, so a
//!   nurse who is the best choice for two orders goes where she saves the
//!   most. It serves more orders in time when demand is bursty.
//!
//! The batch objective, in strict order of precedence:
//!
//! 1. **Assign as many orders as possible.** An order left waiting has
//!    nobody on the way and is retried only next window with whoever is left;
//!    a late nurse is at least moving, the resident can be told the honest
//!    ETA and the coordinator sees it. So one more assigned order beats any
//!    amount of lateness.
//! 2. **Then as few late orders as possible** (arrival past `promised_by`).
//! 3. **Then the least total of arrival seconds plus seconds of lateness**
//!    (lateness counts twice: a late minute hurts more than an early one),
//!    less the continuity credit: the patient's nurse from before
//!    ([`Candidate::preferred`]) counts as arriving
//!    [`WaitingOrder::continuity_credit_s`] seconds sooner, as in the greedy
//!    ranking ([`crate::scoring`]). The credit moves only this term, never
//!    whether an order is late or assigned.
//!
//! As one cost per (order, nurse) pair: `arrival_s`, plus, when late,
//! `P + late_s`, where the late penalty `P` is at least 10⁶ and more than
//! the whole secondary term of any assignment, so the sum is exactly
//! lexicographic; precedence 1 is built into the solver
//! ([`assignment::min_cost_assignment`]). Fairness and acceptance are not in
//! the batch objective: within one window, arrival is what the residents feel.

pub mod assignment;
pub mod risk;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use yixin_domain::{NurseId, Order, OrderId};

use crate::scoring::{self, Candidate, ScoringWeights};
use crate::settings::InvalidSettings;
use assignment::{MAX_ROWS, SparseCosts};

/// Which policy the dispatcher runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Each order at once to its best-ranked candidate.
    #[default]
    Greedy,
    /// Waiting orders and free nurses matched together every window.
    Batch,
    /// Batch with the risk objective ([`risk::assign_batch_risk`], the
    /// default [`risk::RiskModel`]): every window, the pairs that minimise
    /// the chance of missing the promise, then arrival. Serde/config name
    /// `risk`; the engine runs it through [`crate::Decisions::batch_risk`].
    Risk,
}

/// How orders are matched to nurses.
///
/// JSON/TOML: `{"kind": "batch", "batch_window_ms": 2000, "scoring": {…}}`,
/// every field optional (greedy, 2 s, default scoring); deserialising validates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawMatchingPolicy")]
pub struct MatchingPolicy {
    pub kind: PolicyKind,
    /// How long the batch policy gathers orders before solving, 100 ms to 60 s.
    pub batch_window_ms: u64,
    /// The ranking rule of greedy offers (and of the next offer after a decline).
    pub scoring: ScoringWeights,
}

impl Default for MatchingPolicy {
    fn default() -> Self {
        Self {
            kind: PolicyKind::Greedy,
            batch_window_ms: 2_000,
            scoring: ScoringWeights::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawMatchingPolicy {
    kind: PolicyKind,
    batch_window_ms: u64,
    scoring: ScoringWeights,
}

impl Default for RawMatchingPolicy {
    fn default() -> Self {
        let d = MatchingPolicy::default();
        Self {
            kind: d.kind,
            batch_window_ms: d.batch_window_ms,
            scoring: d.scoring,
        }
    }
}

impl TryFrom<RawMatchingPolicy> for MatchingPolicy {
    type Error = InvalidSettings;

    fn try_from(r: RawMatchingPolicy) -> Result<Self, Self::Error> {
        MatchingPolicy::new(r.kind, r.batch_window_ms, r.scoring)
    }
}

impl MatchingPolicy {
    /// Checks the window: 100 ms to 60 s (shorter gathers nothing, longer eats the promise).
    pub fn new(
        kind: PolicyKind,
        batch_window_ms: u64,
        scoring: ScoringWeights,
    ) -> Result<Self, InvalidSettings> {
        if !(100..=60_000).contains(&batch_window_ms) {
            return Err(InvalidSettings::new(
                "batch_window_ms",
                format!("must be between 100 and 60000, got {batch_window_ms}"),
            ));
        }
        Ok(Self {
            kind,
            batch_window_ms,
            scoring,
        })
    }

    /// The batch window as a duration.
    pub fn batch_window(&self) -> Duration {
        Duration::from_millis(self.batch_window_ms)
    }
}

/// An order waiting for a nurse, as the matchers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WaitingOrder {
    pub order_id: OrderId,
    /// The nurse should be at the door by then.
    pub promised_by: DateTime<Utc>,
    /// Seconds of arrival the patient's nurse from before is worth
    /// ([`ScoringWeights::continuity_credit_s`]; 0: none).
    pub continuity_credit_s: u32,
}

impl WaitingOrder {
    /// What choosing `c` costs beyond her arrival for continuity: every
    /// candidate but the patient's nurse from before pays the credit, so
    /// costs stay non-negative and the difference is the credit.
    pub fn continuity_cost_s(&self, c: &Candidate) -> i64 {
        if c.preferred {
            0
        } else {
            i64::from(self.continuity_credit_s)
        }
    }
}

impl From<&Order> for WaitingOrder {
    fn from(o: &Order) -> Self {
        Self {
            order_id: o.id,
            promised_by: o.promised_by,
            continuity_credit_s: ScoringWeights::default().continuity_credit_s,
        }
    }
}

/// Each waiting order's candidates (typically 10–30 nurses each), already
/// filtered: qualified, available, fresh position, not declined this order.
#[derive(Debug, Clone, Default)]
pub struct CandidateLists {
    by_order: HashMap<OrderId, Vec<Candidate>>,
}

impl CandidateLists {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the candidates of `order`, returning the previous list if any.
    pub fn insert(&mut self, order: OrderId, candidates: Vec<Candidate>) -> Option<Vec<Candidate>> {
        self.by_order.insert(order, candidates)
    }

    /// The candidates of `order`; empty when it has none.
    pub fn get(&self, order: &OrderId) -> &[Candidate] {
        self.by_order.get(order).map_or(&[], Vec::as_slice)
    }

    /// Number of orders with a list.
    pub fn len(&self) -> usize {
        self.by_order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_order.is_empty()
    }
}

impl FromIterator<(OrderId, Vec<Candidate>)> for CandidateLists {
    fn from_iter<T: IntoIterator<Item = (OrderId, Vec<Candidate>)>>(iter: T) -> Self {
        Self {
            by_order: iter.into_iter().collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// Greedy

/// The best-ranked candidate for one order, skipping `excluded` nurses
/// (declined this order, or hold an offer); `None` when nobody is left.
pub fn best_candidate<'a>(
    candidates: &'a [Candidate],
    excluded: &HashSet<NurseId>,
    now: DateTime<Utc>,
    weights: &ScoringWeights,
) -> Option<&'a Candidate> {
    scoring::best(
        candidates
            .iter()
            .filter(|c| !excluded.contains(&c.nurse_id)),
        now,
        weights,
    )
}

/// Greedy over several orders, in the order given (oldest first is the
/// caller's job): each takes its best-ranked candidate not already taken.
/// What the greedy policy does over a window; the baseline batch is measured against.
pub fn assign_greedy(
    orders: &[WaitingOrder],
    candidates: &CandidateLists,
    now: DateTime<Utc>,
    weights: &ScoringWeights,
) -> Vec<(OrderId, NurseId)> {
    let mut taken = HashSet::new();
    let mut done = HashSet::new();
    let mut out = Vec::new();
    for o in orders {
        if !done.insert(o.order_id) {
            continue;
        }
        if let Some(c) = best_candidate(candidates.get(&o.order_id), &taken, now, weights) {
            taken.insert(c.nurse_id);
            out.push((o.order_id, c.nurse_id));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Batch

/// Longest arrival or lateness the batch cost distinguishes: 7 days. Anything
/// longer is equally useless, and the cap keeps the costs inside the solver's range.
pub const MAX_BATCH_SECONDS: i64 = 7 * 24 * 3600;
/// The least late penalty, seconds-equivalent.
pub const MIN_LATE_PENALTY: i64 = 1_000_000;

/// What giving one order to one candidate costs in the batch objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchCost {
    /// Seconds from now to the nurse at the door (capped at [`MAX_BATCH_SECONDS`]).
    pub arrival_s: i64,
    /// Seconds past `promised_by`, 0 when on time (capped likewise).
    pub late_s: i64,
    /// The order's continuity credit unless she is the patient's nurse from
    /// before ([`WaitingOrder::continuity_cost_s`]).
    pub continuity_s: i64,
}

impl BatchCost {
    pub fn of(order: &WaitingOrder, candidate: &Candidate, now: DateTime<Utc>) -> Self {
        let arrival_s = candidate.arrival_in_s(now).clamp(0, MAX_BATCH_SECONDS);
        let due_ms = (order.promised_by - now).num_milliseconds();
        let over_ms = (arrival_s * 1_000).saturating_sub(due_ms);
        // Arriving exactly on the promise is on time; part seconds round up.
        let late_s = if over_ms > 0 {
            over_ms.saturating_add(999) / 1_000
        } else {
            0
        };
        Self {
            arrival_s,
            late_s: late_s.min(MAX_BATCH_SECONDS),
            continuity_s: order.continuity_cost_s(candidate),
        }
    }

    pub fn is_late(&self) -> bool {
        self.late_s > 0
    }

    /// Arrival plus lateness (plus the continuity cost): the term minimised
    /// after the count of late orders.
    pub fn seconds(&self) -> i64 {
        self.arrival_s + self.late_s + self.continuity_s
    }
}

/// Assigns waiting orders to candidates, optimally for the objective of the
/// module doc: most orders assigned, then fewest late, then least arrival +
/// lateness. Each nurse at most once; orders without candidates (or beaten
/// to all of theirs) are left out and wait for the next window. An order id
/// listed twice counts once; a nurse listed twice for an order counts at her
/// best. Deterministic for a given input.
///
/// Exact: see [`assignment`]. At most [`MAX_ROWS`] orders are considered per
/// solve (the first ones); more would be a runaway backlog.
pub fn assign_batch(
    orders: &[WaitingOrder],
    candidates: &CandidateLists,
    now: DateTime<Utc>,
) -> Vec<(OrderId, NurseId)> {
    let mut seen = HashSet::with_capacity(orders.len());
    let mut rows: Vec<&WaitingOrder> = orders.iter().filter(|o| seen.insert(o.order_id)).collect();
    if rows.len() > MAX_ROWS {
        tracing::warn!(
            orders = rows.len(),
            solved = MAX_ROWS,
            "batch larger than the solver takes; the rest waits"
        );
        rows.truncate(MAX_ROWS);
    }

    // Nurses as columns, and every (order, nurse) cost.
    let mut nurse_col: HashMap<NurseId, usize> = HashMap::new();
    let mut nurses: Vec<NurseId> = Vec::new();
    let mut row_end = Vec::with_capacity(rows.len());
    let mut edges: Vec<(usize, BatchCost)> = Vec::new();
    let mut late_penalty = MIN_LATE_PENALTY;
    let mut secondary_bound: i64 = 1;
    for o in &rows {
        let mut row_max = 0;
        for c in candidates.get(&o.order_id) {
            let col = *nurse_col.entry(c.nurse_id).or_insert_with(|| {
                nurses.push(c.nurse_id);
                nurses.len() - 1
            });
            let cost = BatchCost::of(o, c, now);
            row_max = row_max.max(cost.seconds());
            edges.push((col, cost));
        }
        secondary_bound = secondary_bound.saturating_add(row_max);
        row_end.push(edges.len());
    }
    // More than any assignment's total of the secondary term, so one late
    // order more always costs more than any saving in seconds.
    late_penalty = late_penalty.max(secondary_bound);

    let Ok(mut problem) = SparseCosts::with_capacity(nurses.len(), rows.len(), edges.len()) else {
        return Vec::new(); // more nurses than a u32 index: cannot happen in memory
    };
    let mut start = 0;
    for &end in &row_end {
        let row = edges[start..end].iter().map(|&(col, cost)| {
            let penalty = if cost.is_late() { late_penalty } else { 0 };
            (col, cost.seconds() + penalty)
        });
        if let Err(error) = problem.push_row(row) {
            // Unreachable with the caps above; never hand out a wrong answer.
            tracing::error!(%error, "batch assignment refused its input");
            return Vec::new();
        }
        start = end;
    }
    assignment::min_cost_assignment(&problem)
        .into_iter()
        .zip(&rows)
        .filter_map(|(col, o)| col.map(|c| (o.order_id, nurses[c])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};
    use proptest::prelude::*;
    use uuid::Uuid;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0).unwrap()
    }

    fn nurse(n: u128) -> NurseId {
        NurseId(Uuid::from_u128(n))
    }

    fn order(n: u128, minutes_left: i64) -> WaitingOrder {
        WaitingOrder {
            order_id: OrderId(Uuid::from_u128(1_000 + n)),
            promised_by: now() + TimeDelta::minutes(minutes_left),
            continuity_credit_s: 0,
        }
    }

    fn cand(n: u128, eta_s: u32) -> Candidate {
        Candidate {
            nurse_id: nurse(n),
            eta_s,
            distance_m: 0,
            jobs_today: 0,
            offers_answered: 0,
            offers_accepted: 0,
            free_at: None,
            preferred: false,
            visit_s: None,
        }
    }

    /// (orders assigned, late orders, arrival + lateness): the batch objective, smaller is better
    /// once the count is negated.
    fn objective(
        orders: &[WaitingOrder],
        lists: &CandidateLists,
        result: &[(OrderId, NurseId)],
    ) -> (usize, usize, i64) {
        let mut nurses = HashSet::new();
        let mut assigned = HashSet::new();
        let (mut late, mut secs) = (0, 0);
        for (o, n) in result {
            assert!(nurses.insert(*n), "nurse {n} assigned twice");
            assert!(assigned.insert(*o), "order {o} assigned twice");
            let order = orders.iter().find(|w| w.order_id == *o).unwrap();
            // A nurse listed twice counts at her best.
            let cost = lists
                .get(o)
                .iter()
                .filter(|c| c.nurse_id == *n)
                .map(|c| BatchCost::of(order, c, now()))
                .min_by_key(|c| (c.is_late(), c.seconds()))
                .expect("assigned to one of its candidates");
            late += usize::from(cost.is_late());
            secs += cost.seconds();
        }
        (result.len(), late, secs)
    }

    fn better(a: (usize, usize, i64), b: (usize, usize, i64)) -> bool {
        (std::cmp::Reverse(a.0), a.1, a.2) < (std::cmp::Reverse(b.0), b.1, b.2)
    }

    /// Every assignment, by enumeration.
    fn brute_force(orders: &[WaitingOrder], lists: &CandidateLists) -> (usize, usize, i64) {
        fn go(
            orders: &[WaitingOrder],
            lists: &CandidateLists,
            i: usize,
            used: &mut HashSet<NurseId>,
            acc: (usize, usize, i64),
            best: &mut (usize, usize, i64),
        ) {
            if i == orders.len() {
                if better(acc, *best) {
                    *best = acc;
                }
                return;
            }
            go(orders, lists, i + 1, used, acc, best);
            for c in lists.get(&orders[i].order_id) {
                if used.insert(c.nurse_id) {
                    let k = BatchCost::of(&orders[i], c, now());
                    let next = (
                        acc.0 + 1,
                        acc.1 + usize::from(k.is_late()),
                        acc.2 + k.seconds(),
                    );
                    go(orders, lists, i + 1, used, next, best);
                    used.remove(&c.nurse_id);
                }
            }
        }
        let mut best = (0, 0, 0);
        go(orders, lists, 0, &mut HashSet::new(), (0, 0, 0), &mut best);
        best
    }

    #[test]
    fn policy_settings() {
        let p: MatchingPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, MatchingPolicy::default());
        assert_eq!(p.kind, PolicyKind::Greedy);
        assert_eq!(p.batch_window(), Duration::from_secs(2));
        let p: MatchingPolicy = serde_json::from_str(
            r#"{"kind": "batch", "batch_window_ms": 500, "scoring": {"eta_band_s": 30}}"#,
        )
        .unwrap();
        assert_eq!(p.kind, PolicyKind::Batch);
        assert_eq!(p.batch_window(), Duration::from_millis(500));
        assert_eq!(p.scoring.eta_band_s, 30);
        assert_eq!(serde_json::to_value(PolicyKind::Batch).unwrap(), "batch");
        assert_eq!(serde_json::to_value(PolicyKind::Greedy).unwrap(), "greedy");
        assert!(serde_json::from_str::<MatchingPolicy>(r#"{"kind": "Batch"}"#).is_err());
        assert!(serde_json::from_str::<MatchingPolicy>(r#"{"batch_window_ms": 0}"#).is_err());
        assert!(serde_json::from_str::<MatchingPolicy>(r#"{"window": 5}"#).is_err());
        assert_eq!(
            MatchingPolicy::new(PolicyKind::Batch, 60_001, ScoringWeights::default())
                .unwrap_err()
                .field,
            "batch_window_ms"
        );
    }

    #[test]
    fn greedy_skips_excluded_nurses() {
        let cs = vec![cand(1, 100), cand(2, 400), cand(3, 900)];
        let w = ScoringWeights::default();
        let none = HashSet::new();
        assert_eq!(
            best_candidate(&cs, &none, now(), &w).unwrap().nurse_id,
            nurse(1)
        );
        let declined: HashSet<_> = [nurse(1)].into();
        assert_eq!(
            best_candidate(&cs, &declined, now(), &w).unwrap().nurse_id,
            nurse(2)
        );
        let all: HashSet<_> = [nurse(1), nurse(2), nurse(3)].into();
        assert!(best_candidate(&cs, &all, now(), &w).is_none());
        assert!(best_candidate(&[], &none, now(), &w).is_none());
    }

    #[test]
    fn greedy_follows_the_ranking_rule() {
        // Within the band, the nurse with fewer jobs gets it.
        let mut busy = cand(1, 100);
        busy.jobs_today = 4;
        let idle = cand(2, 150);
        let w = ScoringWeights::default();
        let cs = [busy, idle];
        let got = best_candidate(&cs, &HashSet::new(), now(), &w).unwrap();
        assert_eq!(got.nurse_id, nurse(2));
    }

    #[test]
    fn batch_prefers_the_patients_nurse_from_before_only_when_about_as_near() {
        // Nurse 1 is the patient's nurse from before, 4 minutes farther
        // than nurse 2: the 300 s credit gives her the order.
        let credited = WaitingOrder {
            continuity_credit_s: 300,
            ..order(1, 30)
        };
        let mut before = cand(1, 540);
        before.preferred = true;
        let lists: CandidateLists = [(credited.order_id, vec![before, cand(2, 300)])]
            .into_iter()
            .collect();
        assert_eq!(
            assign_batch(&[credited], &lists, now()),
            vec![(credited.order_id, nurse(1))]
        );
        // Without the credit the nearer nurse wins.
        let plain = WaitingOrder {
            continuity_credit_s: 0,
            ..credited
        };
        assert_eq!(
            assign_batch(&[plain], &lists, now()),
            vec![(plain.order_id, nurse(2))]
        );
        // Six minutes farther: more than the credit, the nearer nurse wins.
        let mut far = cand(1, 661);
        far.preferred = true;
        let lists: CandidateLists = [(credited.order_id, vec![far, cand(2, 300)])]
            .into_iter()
            .collect();
        assert_eq!(
            assign_batch(&[credited], &lists, now()),
            vec![(credited.order_id, nurse(2))]
        );
        // The credit never makes a late nurse beat an on-time one: 1 minute
        // of promise left, she arrives 30 s late, the other on time.
        let tight = WaitingOrder {
            promised_by: now() + TimeDelta::seconds(60),
            ..credited
        };
        let mut late = cand(1, 90);
        late.preferred = true;
        let lists: CandidateLists = [(tight.order_id, vec![late, cand(2, 60)])]
            .into_iter()
            .collect();
        assert_eq!(
            assign_batch(&[tight], &lists, now()),
            vec![(tight.order_id, nurse(2))]
        );
    }

    #[test]
    fn batch_beats_greedy_on_a_contested_nurse() {
        // Nurse 1 is closest to both orders; order B has no alternative.
        let (a, b) = (order(1, 30), order(2, 30));
        let lists: CandidateLists = [
            (a.order_id, vec![cand(1, 300), cand(2, 360)]),
            (b.order_id, vec![cand(1, 320)]),
        ]
        .into_iter()
        .collect();
        let greedy = assign_greedy(&[a, b], &lists, now(), &ScoringWeights::default());
        assert_eq!(greedy, vec![(a.order_id, nurse(1))]);
        let mut batch = assign_batch(&[a, b], &lists, now());
        batch.sort();
        assert_eq!(batch, vec![(a.order_id, nurse(2)), (b.order_id, nurse(1))]);
    }

    #[test]
    fn no_candidates_stay_unassigned() {
        let (a, b) = (order(1, 30), order(2, 30));
        let lists: CandidateLists = [(a.order_id, vec![cand(1, 300)]), (b.order_id, vec![])]
            .into_iter()
            .collect();
        assert_eq!(
            assign_batch(&[a, b], &lists, now()),
            vec![(a.order_id, nurse(1))]
        );
        let c = order(3, 30); // no list at all
        assert_eq!(assign_batch(&[c], &lists, now()), vec![]);
        assert_eq!(assign_batch(&[], &lists, now()), vec![]);
        assert_eq!(assign_batch(&[a], &CandidateLists::new(), now()), vec![]);
    }

    #[test]
    fn more_orders_than_nurses() {
        // Three orders, two nurses: two are served, fastest total first. The
        // third waits for the next window (being due soonest does not buy
        // priority among equally many assigned orders: see the module doc).
        let (o1, o2, o3) = (order(1, 30), order(2, 30), order(3, 5));
        let lists: CandidateLists = [
            (o1.order_id, vec![cand(1, 200), cand(2, 900)]),
            (o2.order_id, vec![cand(1, 700), cand(2, 800)]),
            (o3.order_id, vec![cand(1, 250), cand(2, 1_200)]),
        ]
        .into_iter()
        .collect();
        let orders = [o1, o2, o3];
        let got = assign_batch(&orders, &lists, now());
        assert_eq!(got, vec![(o1.order_id, nurse(1)), (o2.order_id, nurse(2))]);
        assert_eq!(objective(&orders, &lists, &got), (2, 0, 1_000));
        assert_eq!(
            objective(&orders, &lists, &got),
            brute_force(&orders, &lists)
        );
    }

    #[test]
    fn one_late_order_is_better_than_one_unassigned() {
        // Nurse 1 serves order 1 fastest, but order 2 has nobody else; she is
        // late for it, and still both orders are served rather than one.
        let (o1, o2) = (order(1, 30), order(2, 1));
        let lists: CandidateLists = [
            (o1.order_id, vec![cand(1, 100), cand(2, 1_500)]),
            (o2.order_id, vec![cand(1, 600)]),
        ]
        .into_iter()
        .collect();
        let mut got = assign_batch(&[o1, o2], &lists, now());
        got.sort();
        assert_eq!(got, vec![(o1.order_id, nurse(2)), (o2.order_id, nurse(1))]);
    }

    #[test]
    fn fewer_late_orders_before_less_total_time() {
        // Both orders can be served; the cheapest total makes o2 late by a
        // second, the other way round nobody is late but the total is longer.
        let (o1, o2) = (order(1, 60), order(2, 10));
        let lists: CandidateLists = [
            (o1.order_id, vec![cand(1, 100), cand(2, 3_000)]),
            (o2.order_id, vec![cand(1, 500), cand(2, 601)]),
        ]
        .into_iter()
        .collect();
        let mut got = assign_batch(&[o1, o2], &lists, now());
        got.sort();
        assert_eq!(got, vec![(o1.order_id, nurse(2)), (o2.order_id, nurse(1))]);
    }

    #[test]
    fn duplicates_and_a_nurse_wanted_by_all() {
        let orders: Vec<_> = (0..5).map(|i| order(i, 30)).collect();
        // Everyone wants nurse 7 (listed twice for order 0, the second time faster).
        let mut lists = CandidateLists::new();
        for (i, o) in orders.iter().enumerate() {
            let mut cs = vec![cand(7, 100 + i as u32 * 10)];
            if i == 0 {
                cs.push(cand(7, 50));
            }
            lists.insert(o.order_id, cs);
        }
        // The same order twice counts once.
        let mut with_dup = orders.clone();
        with_dup.push(orders[3]);
        let got = assign_batch(&with_dup, &lists, now());
        assert_eq!(got, vec![(orders[0].order_id, nurse(7))]);
        assert_eq!(objective(&orders, &lists, &got), (1, 0, 50));
        assert_eq!(
            objective(&orders, &lists, &got),
            brute_force(&orders, &lists)
        );
    }

    #[test]
    fn free_at_and_overdue_orders() {
        // An order already 10 minutes past its promise: every arrival is late;
        // the nurse who is there first still wins.
        let overdue = order(1, -10);
        let mut finishing = cand(1, 60);
        finishing.free_at = Some(now() + TimeDelta::minutes(20));
        let lists: CandidateLists = [(overdue.order_id, vec![finishing.clone(), cand(2, 900)])]
            .into_iter()
            .collect();
        assert_eq!(
            assign_batch(&[overdue], &lists, now()),
            vec![(overdue.order_id, nurse(2))]
        );
        let k = BatchCost::of(&overdue, &finishing, now());
        assert_eq!(
            k,
            BatchCost {
                arrival_s: 1_260,
                late_s: 1_860,
                continuity_s: 0
            }
        );
        // Exactly on the promise is on time.
        let due = order(2, 10);
        assert!(!BatchCost::of(&due, &cand(3, 600), now()).is_late());
        assert_eq!(BatchCost::of(&due, &cand(3, 601), now()).late_s, 1);
        // Absurd values are capped rather than overflowing.
        let k = BatchCost::of(&order(3, -1_000_000), &cand(4, u32::MAX), now());
        assert_eq!(
            k,
            BatchCost {
                arrival_s: MAX_BATCH_SECONDS,
                late_s: MAX_BATCH_SECONDS,
                continuity_s: 0
            }
        );
    }

    fn instance() -> impl Strategy<Value = (Vec<WaitingOrder>, CandidateLists)> {
        let candidate =
            (0u128..9, 0u32..2_400, prop::option::of(0i64..900)).prop_map(|(n, eta, free)| {
                let mut c = cand(n, eta);
                c.free_at = free.map(|s| now() + TimeDelta::seconds(s));
                c
            });
        prop::collection::vec((-5i64..40, prop::collection::vec(candidate, 0..6)), 0..=7).prop_map(
            |spec| {
                let mut orders = Vec::new();
                let mut lists = CandidateLists::new();
                for (i, (minutes, cs)) in spec.into_iter().enumerate() {
                    let o = order(i as u128, minutes);
                    orders.push(o);
                    lists.insert(o.order_id, cs);
                }
                (orders, lists)
            },
        )
    }

    proptest! {
        #[test]
        fn batch_is_optimal_against_brute_force((orders, lists) in instance()) {
            let got = assign_batch(&orders, &lists, now());
            prop_assert_eq!(objective(&orders, &lists, &got), brute_force(&orders, &lists));
            // Same input, same answer.
            prop_assert_eq!(&got, &assign_batch(&orders, &lists, now()));
        }

        #[test]
        fn batch_is_never_worse_than_greedy((orders, lists) in instance()) {
            let batch = objective(&orders, &lists, &assign_batch(&orders, &lists, now()));
            let greedy = assign_greedy(&orders, &lists, now(), &ScoringWeights::default());
            let greedy = objective(&orders, &lists, &greedy);
            prop_assert!(!better(greedy, batch), "greedy {greedy:?} beat batch {batch:?}");
        }
    }
}
