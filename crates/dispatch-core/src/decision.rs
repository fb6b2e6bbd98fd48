//! The dispatch engine's decisions as a pure state machine: events and the
//! clock in, commands out. The engine (`yixin-dispatcher`) is the I/O shell
//! around it (it reads the streams, the database and its fleet, and carries
//! the commands out); the city simulator drives the same machine, so a
//! simulated decision is the engine's decision.
//!
//! What it owns:
//! - the waiting orders and when each is next due;
//! - the retry back-off: an order nobody could take is due again after
//!   `retry` × its consecutive misses, at most [`MAX_RETRY_MISSES`];
//! - waking every waiting order when a nurse comes free or on shift;
//! - where to search (normal or escalated radius, how many candidates);
//! - greedy (the best-ranked candidate) or batch (the min-cost assignment
//!   over the window) and the offer deadline;
//! - escalation: the best arrival is past `promised_by`, or nobody free for
//!   `escalate_after`;
//! - which lapsed offers to expire.
//!
//! No clock reads, no I/O: `now` is always passed in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use yixin_domain::{NurseId, Offer, OfferId, OfferStatus, Order, OrderId, OrderStatus};

use crate::matching::risk::{RiskModel, assign_batch_risk};
use crate::matching::{CandidateLists, MatchingPolicy, WaitingOrder, assign_batch, best_candidate};
use crate::scoring::Candidate;

/// An order without candidates is retried after `retry` × its misses, at
/// most this many.
pub const MAX_RETRY_MISSES: u32 = 6;

/// How the engine works (`dispatch.*` in configuration; parsed by the
/// dispatcher), with its defaults.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub policy: MatchingPolicy,
    pub offer_ttl: TimeDelta,
    pub search_radius_m: f64,
    pub escalated_radius_m: f64,
    pub candidates: usize,
    pub retry: Duration,
    /// No free candidate for this long → escalated.
    pub escalate_after: TimeDelta,
    /// The `risk` policy's model of lateness (and its optional late reserve).
    pub risk: RiskModel,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            policy: MatchingPolicy::default(),
            offer_ttl: TimeDelta::seconds(yixin_domain::DEFAULT_OFFER_TTL_SECS),
            search_radius_m: 8_000.0,
            escalated_radius_m: 25_000.0,
            candidates: 20,
            retry: Duration::from_secs(5),
            escalate_after: TimeDelta::seconds(120),
            risk: RiskModel::default(),
        }
    }
}

/// Where to look for an order's candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    pub radius_m: f64,
    /// Nearest nurses to ask the fleet for: twice what is kept, so those
    /// found engaged afterwards (the database has the last word) still leave
    /// enough.
    pub nearest: usize,
    /// Candidates kept, nearest first.
    pub keep: usize,
}

/// What the shell read for one due order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFacts {
    pub order: OrderId,
    pub status: OrderStatus,
    pub created_at: DateTime<Utc>,
    pub promised_by: DateTime<Utc>,
    /// Nurses it must not go to again (declined, or let an offer lapse).
    pub excluded: HashSet<NurseId>,
    /// Free candidates found by [`Decisions::search`], ETAs filled in.
    pub candidates: Vec<Candidate>,
}

impl OrderFacts {
    pub fn of(order: &Order, excluded: HashSet<NurseId>, candidates: Vec<Candidate>) -> Self {
        Self {
            order: order.id,
            status: order.status,
            created_at: order.created_at,
            promised_by: order.promised_by,
            excluded,
            candidates,
        }
    }
}

/// What the shell is to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Offer the order to the nurse until `expires_at`; the shell reports
    /// back [`Decisions::done`] or, if the nurse got engaged meanwhile,
    /// [`Decisions::retry`] (or asks again without her).
    Offer {
        order: OrderId,
        nurse: NurseId,
        /// Minutes to the door, rounded up, as the phone shows it.
        eta_min: u32,
        distance_m: u32,
        /// When she would be at the door.
        arrival: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    /// Mark the order `escalated` (the promise cannot be kept), with the
    /// honest arrival if there is one.
    Escalate {
        order: OrderId,
        eta: Option<DateTime<Utc>>,
    },
    /// Close a lapsed offer; the order then waits again
    /// ([`Decisions::order_waiting`]).
    Expire { offer: OfferId, order: OrderId },
    /// Nobody took the order now; it is due again at `at`.
    RetryAt { order: OrderId, at: DateTime<Utc> },
}

/// The engine's decision state: waiting orders, their due times and misses.
#[derive(Debug, Clone)]
pub struct Decisions {
    config: EngineConfig,
    /// Order → when it is next due; ordered by id (oldest order first).
    waiting: BTreeMap<OrderId, DateTime<Utc>>,
    /// Consecutive tries without a candidate, per waiting order.
    misses: HashMap<OrderId, u32>,
}

impl Decisions {
    pub fn new(config: EngineConfig) -> Self {
        Self {
            config,
            waiting: BTreeMap::new(),
            misses: HashMap::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    // ----- events -----

    /// The order waits for a nurse now (created, declined, its offer lapsed,
    /// back to pending, found waiting in the database).
    pub fn order_waiting(&mut self, order: OrderId, now: DateTime<Utc>) {
        self.due_at(order, now);
    }

    /// A nurse came free or on shift: every waiting order may have a
    /// candidate now.
    pub fn nurse_available(&mut self, now: DateTime<Utc>) {
        for at in self.waiting.values_mut() {
            *at = (*at).min(now);
        }
    }

    /// The order no longer needs us (cancelled): forget it.
    pub fn forget(&mut self, order: OrderId) {
        self.waiting.remove(&order);
        self.misses.remove(&order);
    }

    /// The order was offered, or no longer needs a nurse: its misses start
    /// again.
    pub fn done(&mut self, order: OrderId) {
        self.misses.remove(&order);
    }

    /// Nobody took the order now: due again after `retry` × its misses (at
    /// most [`MAX_RETRY_MISSES`]), since each try costs reads while nobody
    /// is free.
    pub fn retry(&mut self, order: OrderId, now: DateTime<Utc>) -> Command {
        let misses = self.misses.entry(order).or_insert(0);
        *misses = (*misses + 1).min(MAX_RETRY_MISSES);
        let misses = i32::try_from(*misses).unwrap_or(i32::MAX);
        let at = now + self.retry_delta() * misses;
        self.due_at(order, at);
        Command::RetryAt { order, at }
    }

    /// Dispatching the order failed (a read or write error): due again after
    /// one `retry`, misses unchanged.
    pub fn failed(&mut self, order: OrderId, now: DateTime<Utc>) -> Command {
        let at = now + self.retry_delta();
        self.due_at(order, at);
        Command::RetryAt { order, at }
    }

    // ----- questions -----

    /// The orders due at `now`, oldest first, taken off the waiting list
    /// (each comes back by an event, [`Self::retry`] or [`Self::failed`]).
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Vec<OrderId> {
        let due: Vec<OrderId> = self
            .waiting
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            self.waiting.remove(id);
        }
        due
    }

    /// When the next waiting order is due, if any.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.waiting.values().min().copied()
    }

    /// Orders waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Consecutive misses of a waiting order.
    pub fn misses(&self, order: &OrderId) -> u32 {
        self.misses.get(order).copied().unwrap_or(0)
    }

    /// Where to look for candidates of an order in `status`: wider once
    /// escalated.
    pub fn search(&self, status: OrderStatus) -> Search {
        let radius_m = if status == OrderStatus::Escalated {
            self.config.escalated_radius_m
        } else {
            self.config.search_radius_m
        };
        Search {
            radius_m,
            nearest: self.config.candidates.saturating_mul(2),
            keep: self.config.candidates,
        }
    }

    /// Whether an order in `status` with these `offers` needs dispatching
    /// now, and if so the nurses it must not go to again. `None`: it is
    /// taken or closed, or an offer is out (an answer or its expiry brings
    /// it back).
    pub fn needing_nurse(status: OrderStatus, offers: &[Offer]) -> Option<HashSet<NurseId>> {
        if !status.needs_nurse() || offers.iter().any(|o| o.status == OfferStatus::Open) {
            return None;
        }
        Some(
            offers
                .iter()
                .filter(|o| matches!(o.status, OfferStatus::Declined | OfferStatus::Expired))
                .map(|o| o.nurse_id)
                .collect(),
        )
    }

    /// The open offers among `offers` whose deadline has passed at `now`.
    pub fn expire(&self, offers: &[Offer], now: DateTime<Utc>) -> Vec<Command> {
        offers
            .iter()
            .filter(|o| o.status == OfferStatus::Open && o.expires_at <= now)
            .map(|o| Command::Expire {
                offer: o.id,
                order: o.order_id,
            })
            .collect()
    }

    // ----- decisions -----

    /// Greedy: the order goes to its best-ranked candidate (escalated first
    /// if even she arrives late); nobody → maybe escalated, and retried.
    pub fn greedy(&mut self, facts: &OrderFacts, now: DateTime<Utc>) -> Vec<Command> {
        let weights = &self.config.policy.scoring;
        match best_candidate(&facts.candidates, &facts.excluded, now, weights).cloned() {
            Some(best) => self.offer(facts, &best, now),
            None => self.no_candidate(facts, now),
        }
    }

    /// Batch: the due orders matched together by the min-cost assignment.
    /// Orders without candidates, or whose candidates all went to orders
    /// the solver served better, are retried.
    pub fn batch(&mut self, orders: &[OrderFacts], now: DateTime<Utc>) -> Vec<Command> {
        self.batch_by(orders, now, None)
    }

    /// Batch with the risk objective ([`crate::matching::risk`]): the same
    /// flow, but the pairs minimise the chance of missing the promise
    /// before the arrival time.
    pub fn batch_risk(
        &mut self,
        orders: &[OrderFacts],
        now: DateTime<Utc>,
        model: &RiskModel,
    ) -> Vec<Command> {
        self.batch_by(orders, now, Some(model))
    }

    fn batch_by(
        &mut self,
        orders: &[OrderFacts],
        now: DateTime<Utc>,
        risk: Option<&RiskModel>,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        let mut lists = CandidateLists::new();
        let mut matched = Vec::new();
        for facts in orders {
            if facts.candidates.is_empty() {
                out.extend(self.no_candidate(facts, now));
            } else {
                lists.insert(facts.order, facts.candidates.clone());
                matched.push(facts);
            }
        }
        if matched.is_empty() {
            return out;
        }
        let waiting: Vec<WaitingOrder> = matched
            .iter()
            .map(|f| WaitingOrder {
                order_id: f.order,
                promised_by: f.promised_by,
                continuity_credit_s: self.config.policy.scoring.continuity_credit_s,
            })
            .collect();
        let pairs: HashMap<OrderId, NurseId> = match risk {
            Some(model) => assign_batch_risk(&waiting, &lists, now, model),
            None => assign_batch(&waiting, &lists, now),
        }
        .into_iter()
        .collect();
        for facts in matched {
            let chosen = pairs.get(&facts.order).and_then(|nurse| {
                lists
                    .get(&facts.order)
                    .iter()
                    .find(|c| c.nurse_id == *nurse)
            });
            match chosen.cloned() {
                Some(c) => out.extend(self.offer(facts, &c, now)),
                None => out.push(self.retry(facts.order, now)),
            }
        }
        out
    }

    fn offer(&self, facts: &OrderFacts, best: &Candidate, now: DateTime<Utc>) -> Vec<Command> {
        let mut out = Vec::with_capacity(2);
        let arrival = best.arrival_at(now);
        if arrival > facts.promised_by {
            out.extend(escalate(facts, Some(arrival)));
        }
        out.push(Command::Offer {
            order: facts.order,
            nurse: best.nurse_id,
            eta_min: best.eta_s.div_ceil(60),
            distance_m: best.distance_m,
            arrival,
            expires_at: now + self.config.offer_ttl,
        });
        out
    }

    /// Nobody free can take the order now: after `escalate_after` of that
    /// it is escalated (a nurse may come free or on shift before), and it
    /// is retried.
    fn no_candidate(&mut self, facts: &OrderFacts, now: DateTime<Utc>) -> Vec<Command> {
        let mut out = Vec::with_capacity(2);
        if now - facts.created_at >= self.config.escalate_after {
            out.extend(escalate(facts, None));
        }
        out.push(self.retry(facts.order, now));
        out
    }

    fn due_at(&mut self, order: OrderId, at: DateTime<Utc>) {
        let due = self.waiting.entry(order).or_insert(at);
        if at < *due {
            *due = at;
        }
    }

    fn retry_delta(&self) -> TimeDelta {
        TimeDelta::from_std(self.config.retry).unwrap_or(TimeDelta::seconds(5))
    }
}

/// Escalation, unless the order already is.
fn escalate(facts: &OrderFacts, eta: Option<DateTime<Utc>>) -> Option<Command> {
    (facts.status != OrderStatus::Escalated).then_some(Command::Escalate {
        order: facts.order,
        eta,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::matching::PolicyKind;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    fn order(n: u128) -> OrderId {
        OrderId(Uuid::from_u128(n))
    }

    fn nurse(n: u128) -> NurseId {
        NurseId(Uuid::from_u128(1_000 + n))
    }

    fn cand(n: u128, eta_s: u32) -> Candidate {
        Candidate {
            nurse_id: nurse(n),
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

    fn facts(o: u128, created: i64, candidates: Vec<Candidate>) -> OrderFacts {
        OrderFacts {
            order: order(o),
            status: OrderStatus::Pending,
            created_at: t(created),
            promised_by: t(created) + TimeDelta::minutes(30),
            excluded: HashSet::new(),
            candidates,
        }
    }

    fn offers(cmds: &[Command]) -> Vec<(OrderId, NurseId)> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Offer { order, nurse, .. } => Some((*order, *nurse)),
                _ => None,
            })
            .collect()
    }

    fn escalations(cmds: &[Command]) -> Vec<(OrderId, Option<DateTime<Utc>>)> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Escalate { order, eta } => Some((*order, *eta)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn retries_back_off_up_to_six_times_the_retry() {
        let mut d = Decisions::new(EngineConfig::default());
        let o = order(1);
        d.order_waiting(o, t(0));
        assert_eq!(d.take_due(t(0)), [o]);
        let mut now = t(0);
        let mut gaps = Vec::new();
        for _ in 0..8 {
            let cmds = d.greedy(&facts(1, 0, vec![]), now);
            let Some(Command::RetryAt { at, .. }) = cmds.last().cloned() else {
                panic!("{cmds:?}")
            };
            gaps.push((at - now).num_seconds());
            assert!(d.take_due(at - TimeDelta::milliseconds(1)).is_empty());
            assert_eq!(d.take_due(at), [o]);
            now = at;
        }
        assert_eq!(gaps, [5, 10, 15, 20, 25, 30, 30, 30]);
        assert_eq!(d.misses(&o), MAX_RETRY_MISSES);
        // An offer starts the count again.
        d.done(o);
        assert_eq!(d.misses(&o), 0);
        let at = now + TimeDelta::seconds(5);
        assert_eq!(d.retry(o, now), Command::RetryAt { order: o, at });
        // A failure retries after one `retry`, misses unchanged.
        d.take_due(at);
        assert_eq!(
            d.failed(o, now),
            Command::RetryAt {
                order: o,
                at: now + TimeDelta::seconds(5)
            }
        );
        assert_eq!(d.misses(&o), 1);
    }

    #[test]
    fn a_nurse_coming_free_wakes_every_waiting_order() {
        let mut d = Decisions::new(EngineConfig::default());
        for o in 1..=3 {
            d.order_waiting(order(o), t(0));
        }
        d.take_due(t(0));
        for o in 1..=3 {
            for _ in 0..o {
                d.retry(order(o), t(0));
            }
        }
        assert!(d.take_due(t(4)).is_empty());
        assert_eq!(d.next_due(), Some(t(5)));
        d.nurse_available(t(4));
        assert_eq!(d.take_due(t(4)), [order(1), order(2), order(3)]);
        assert_eq!(d.next_due(), None);
        // Waiting again keeps the earlier due time.
        d.order_waiting(order(1), t(10));
        d.order_waiting(order(1), t(20));
        assert_eq!(d.next_due(), Some(t(10)));
        d.forget(order(1));
        assert_eq!(d.waiting(), 0);
    }

    #[test]
    fn no_candidate_escalates_only_after_escalate_after() {
        let mut d = Decisions::new(EngineConfig::default());
        let cmds = d.greedy(&facts(1, 0, vec![]), t(119));
        assert!(escalations(&cmds).is_empty(), "{cmds:?}");
        let cmds = d.greedy(&facts(1, 0, vec![]), t(120));
        assert_eq!(escalations(&cmds), [(order(1), None)]);
        // Already escalated: not again, but still retried.
        let mut f = facts(1, 0, vec![]);
        f.status = OrderStatus::Escalated;
        let cmds = d.greedy(&f, t(200));
        assert!(escalations(&cmds).is_empty());
        assert!(matches!(cmds.as_slice(), [Command::RetryAt { .. }]));
    }

    #[test]
    fn a_late_best_candidate_is_offered_with_the_honest_eta_and_escalated() {
        let mut d = Decisions::new(EngineConfig::default());
        // 31 minutes away: past the 30-minute promise.
        let cmds = d.greedy(&facts(1, 0, vec![cand(1, 31 * 60)]), t(0));
        assert_eq!(
            cmds,
            [
                Command::Escalate {
                    order: order(1),
                    eta: Some(t(31 * 60))
                },
                Command::Offer {
                    order: order(1),
                    nurse: nurse(1),
                    eta_min: 31,
                    distance_m: 31 * 60 * 5,
                    arrival: t(31 * 60),
                    expires_at: t(30),
                }
            ]
        );
        let cmds = d.greedy(&facts(1, 0, vec![cand(1, 600)]), t(0));
        assert!(escalations(&cmds).is_empty());
        assert_eq!(offers(&cmds), [(order(1), nurse(1))]);
    }

    #[test]
    fn greedy_takes_the_best_ranked_not_excluded() {
        let mut d = Decisions::new(EngineConfig::default());
        let mut f = facts(1, 0, vec![cand(1, 300), cand(2, 600)]);
        assert_eq!(offers(&d.greedy(&f, t(0))), [(order(1), nurse(1))]);
        f.excluded.insert(nurse(1));
        assert_eq!(offers(&d.greedy(&f, t(0))), [(order(1), nurse(2))]);
        f.excluded.insert(nurse(2));
        let cmds = d.greedy(&f, t(0));
        assert!(matches!(cmds.as_slice(), [Command::RetryAt { .. }]));
    }

    #[test]
    fn batch_serves_both_orders_where_greedy_would_not() {
        // Nurse 1 is nearest to both orders; only order 1 can use nurse 2 in
        // time, so the assignment gives nurse 1 to order 2.
        let config = EngineConfig {
            policy: MatchingPolicy::new(PolicyKind::Batch, 2_000, Default::default()).unwrap(),
            ..EngineConfig::default()
        };
        let mut d = Decisions::new(config);
        let one = facts(1, 0, vec![cand(1, 300), cand(2, 900)]);
        let two = facts(2, 0, vec![cand(1, 400), cand(2, 3_000)]);
        let none = facts(3, 0, vec![]);
        let cmds = d.batch(&[one.clone(), two.clone(), none], t(0));
        let mut got = offers(&cmds);
        got.sort();
        assert_eq!(got, [(order(1), nurse(2)), (order(2), nurse(1))]);
        assert!(cmds.contains(&Command::RetryAt {
            order: order(3),
            at: t(5)
        }));
        // Greedy, order by order, gives nurse 1 to order 1 first.
        let mut g = Decisions::new(EngineConfig::default());
        assert_eq!(offers(&g.greedy(&one, t(0))), [(order(1), nurse(1))]);
        // One nurse for two orders: the other is retried.
        let cmds = d.batch(
            &[
                facts(1, 0, vec![cand(1, 300)]),
                facts(2, 0, vec![cand(1, 400)]),
            ],
            t(0),
        );
        assert_eq!(offers(&cmds).len(), 1);
        assert_eq!(
            cmds.iter()
                .filter(|c| matches!(c, Command::RetryAt { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn search_widens_once_escalated() {
        let d = Decisions::new(EngineConfig::default());
        let s = d.search(OrderStatus::Pending);
        assert_eq!((s.radius_m, s.nearest, s.keep), (8_000.0, 40, 20));
        assert_eq!(d.search(OrderStatus::Escalated).radius_m, 25_000.0);
    }

    #[test]
    fn lapsed_open_offers_expire_and_excluded_nurses_come_from_closed_ones() {
        let d = Decisions::new(EngineConfig::default());
        let o = order(1);
        let ttl = TimeDelta::seconds(30);
        let open = Offer::new(o, nurse(1), t(0), ttl, 5, 500);
        let mut declined = Offer::new(o, nurse(2), t(0), ttl, 5, 500);
        declined.status = OfferStatus::Declined;
        assert!(d.expire(std::slice::from_ref(&open), t(29)).is_empty());
        assert_eq!(
            d.expire(&[open.clone(), declined.clone()], t(30)),
            [Command::Expire {
                offer: open.id,
                order: o
            }]
        );
        assert_eq!(
            Decisions::needing_nurse(OrderStatus::Offered, &[open.clone(), declined.clone()]),
            None
        );
        let mut lapsed = open;
        lapsed.status = OfferStatus::Expired;
        assert_eq!(
            Decisions::needing_nurse(OrderStatus::Pending, &[lapsed, declined]),
            Some(HashSet::from([nurse(1), nurse(2)]))
        );
        assert_eq!(Decisions::needing_nurse(OrderStatus::Assigned, &[]), None);
        // Screening holds an order back until a coordinator approves it.
        assert_eq!(
            Decisions::needing_nurse(OrderStatus::AwaitingReview, &[]),
            None
        );
        assert_eq!(Decisions::needing_nurse(OrderStatus::Rejected, &[]), None);
    }
}
