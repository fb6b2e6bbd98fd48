//! The online policies, `greedy` and `batch`, as a discrete-event simulation
//! of what the dispatch engine does, calling the dispatcher's own
//! [`best_candidate`] (the ranking rule of `scoring.rs`), [`assign_batch`]
//! (the exact min-cost assignment) and the straight-line [`EtaSettings`].
//!
//! What is re-implemented here is only the engine's glue (its I/O lives in
//! `engine.rs`): the waiting queue with the retry back-off (5 s × misses,
//! at most 6), a wake of every waiting order when a nurse comes on shift,
//! candidates (on shift, free, skills, not declined or lapsed on this
//! order, within 8 km — 25 km once escalated — nearest 20), escalation
//! (best arrival past the promise, or nobody free for 120 s), offers with a
//! 30 s deadline, today's jobs and offer record for the ranking.
//!
//! Events at the same instant run in the order they were scheduled, so a
//! run is a pure function of the instance.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use uuid::Uuid;
use yixin_dispatcher::engine::{EngineConfig, MAX_RETRY_MISSES};
use yixin_dispatcher::{
    Candidate, CandidateLists, EtaSettings, ScoringWeights, WaitingOrder, assign_batch,
    best_candidate,
};
use yixin_domain::{NurseId, OrderId, PROMISE_MINUTES};

use crate::metrics::{Outcome, Tally};
use crate::scenario::{Answer, DAY_MS, Instance};

/// The engine's settings the glue follows, taken from its defaults
/// (`EngineConfig::default`), in the simulation's milliseconds.
struct Glue {
    retry_ms: i64,
    max_misses: i64,
    escalate_after_ms: i64,
    search_radius_m: f64,
    escalated_radius_m: f64,
    candidates: usize,
}

impl Glue {
    fn engine_defaults() -> Self {
        let c = EngineConfig::default();
        Self {
            retry_ms: i64::try_from(c.retry.as_millis()).unwrap_or(i64::MAX),
            max_misses: i64::from(MAX_RETRY_MISSES),
            escalate_after_ms: c.escalate_after.num_milliseconds(),
            search_radius_m: c.search_radius_m,
            escalated_radius_m: c.escalated_radius_m,
            candidates: c.candidates,
        }
    }
}

/// Which online policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Online {
    Greedy,
    Batch,
}

/// Local midnight of day 0 in Chongqing (UTC+8), as the engine's clock.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 31, 16, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn at(ms: i64) -> DateTime<Utc> {
    epoch() + TimeDelta::milliseconds(ms)
}

pub(crate) fn nurse_id(n: usize) -> NurseId {
    NurseId(Uuid::from_u128(n as u128 + 1))
}

fn order_id(o: usize) -> OrderId {
    OrderId(Uuid::from_u128((1u128 << 64) + o as u128))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Midnight: today's records start again.
    Midnight,
    ShiftStart(usize),
    ShiftEnd(usize),
    Order(usize),
    /// The answer to offer `seq` of an order.
    Answer {
        order: usize,
        seq: u32,
    },
    Arrive(usize),
    ServiceEnd(usize),
    /// The resident's patience runs out.
    GiveUp(usize),
    /// Greedy: some order's retry is due. Batch: the window closes.
    Wake,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Off,
    Idle,
    /// Holds an offer (not a candidate meanwhile).
    Offered,
    /// On the way or at the door; free again at the end of the visit.
    Busy,
}

struct NurseState {
    phase: Phase,
    on_shift: bool,
    pos: yixin_domain::GeoPoint,
    answered: u32,
    accepted: u32,
    /// When the current on-shift (or overtime) period began.
    on_since: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    Offered { nurse: usize, seq: u32 },
    Assigned { nurse: usize },
    Done,
    Cancelled,
}

struct OrderState {
    status: Status,
    escalated: bool,
    excluded: Vec<usize>,
    misses: i64,
    seq: u32,
    accepted_ms: Option<i64>,
}

struct Sim<'a> {
    inst: &'a Instance,
    policy: Online,
    glue: Glue,
    eta: EtaSettings,
    weights: ScoringWeights,
    now: i64,
    seq: u64,
    events: BinaryHeap<Reverse<(i64, u64, Event)>>,
    nurses: Vec<NurseState>,
    orders: Vec<OrderState>,
    /// The engine's `waiting`: order → when it is due, oldest order first.
    waiting: BTreeMap<usize, i64>,
    /// Earliest pending greedy wake, to avoid flooding the queue.
    next_wake: Option<i64>,
    tally: Tally,
    /// Orders neither served nor given up yet.
    open_orders: usize,
}

/// Runs one online policy over the instance.
pub fn run(inst: &Instance, policy: Online) -> Tally {
    let mut sim = Sim {
        inst,
        policy,
        glue: Glue::engine_defaults(),
        eta: EtaSettings::default(),
        weights: ScoringWeights::default(),
        now: 0,
        seq: 0,
        events: BinaryHeap::new(),
        nurses: inst
            .nurses
            .iter()
            .map(|n| NurseState {
                phase: Phase::Off,
                on_shift: false,
                pos: n.home,
                answered: 0,
                accepted: 0,
                on_since: None,
            })
            .collect(),
        orders: inst
            .orders
            .iter()
            .map(|_| OrderState {
                status: Status::Waiting,
                escalated: false,
                excluded: Vec::new(),
                misses: 0,
                seq: 0,
                accepted_ms: None,
            })
            .collect(),
        waiting: BTreeMap::new(),
        next_wake: None,
        tally: Tally::new(inst.orders.len(), inst.scenario.horizon_ms()),
        open_orders: inst.orders.len(),
    };
    sim.start();
    sim.run();
    sim.tally
}

impl Sim<'_> {
    fn schedule(&mut self, at_ms: i64, e: Event) {
        self.seq += 1;
        self.events.push(Reverse((at_ms, self.seq, e)));
    }

    fn start(&mut self) {
        for d in 1..i64::from(self.inst.scenario.days) {
            self.schedule(d * DAY_MS, Event::Midnight);
        }
        for (n, nurse) in self.inst.nurses.iter().enumerate() {
            for &(a, b) in &nurse.shifts {
                self.seq += 1;
                self.events
                    .push(Reverse((a, self.seq, Event::ShiftStart(n))));
                self.seq += 1;
                self.events.push(Reverse((b, self.seq, Event::ShiftEnd(n))));
            }
        }
        for (o, order) in self.inst.orders.iter().enumerate() {
            self.schedule(order.created_ms, Event::Order(o));
            let patience = self.inst.scenario.patience_min * 60_000;
            self.schedule(order.created_ms + patience, Event::GiveUp(o));
        }
        if self.policy == Online::Batch && !self.inst.orders.is_empty() {
            self.schedule(self.inst.scenario.batch_window_ms, Event::Wake);
        }
    }

    fn run(&mut self) {
        // Runs dry: shifts end at the horizon, windows stop once every order
        // is decided, and the last visits end.
        while let Some(Reverse((t, _, e))) = self.events.pop() {
            self.now = t;
            self.handle(e);
            if self.policy == Online::Greedy {
                self.dispatch_due_greedy();
                self.schedule_next_wake();
            }
        }
        let end = self.now.max(self.inst.scenario.horizon_ms());
        for n in 0..self.nurses.len() {
            if let Some(since) = self.nurses[n].on_since.take() {
                self.tally.on_shift(since, end);
            }
        }
    }

    fn handle(&mut self, e: Event) {
        match e {
            Event::Midnight => {
                for n in &mut self.nurses {
                    n.answered = 0;
                    n.accepted = 0;
                }
            }
            Event::ShiftStart(n) => {
                let home = self.inst.nurses[n].home;
                let nurse = &mut self.nurses[n];
                nurse.on_shift = true;
                if nurse.phase == Phase::Off {
                    nurse.phase = Phase::Idle;
                    nurse.pos = home;
                    nurse.on_since = Some(self.now);
                }
                // The engine wakes every waiting order when a nurse comes on shift.
                let now = self.now;
                for due in self.waiting.values_mut() {
                    *due = (*due).min(now);
                }
            }
            Event::ShiftEnd(n) => {
                let nurse = &mut self.nurses[n];
                nurse.on_shift = false;
                if nurse.phase == Phase::Idle {
                    self.go_off(n);
                }
            }
            Event::Order(o) => {
                self.enqueue(o, self.now);
            }
            Event::Answer { order, seq } => self.on_answer(order, seq),
            Event::Arrive(o) => {
                // Only an accepted order gets here; patience no longer applies.
                let end = self.now + self.inst.orders[o].duration_ms;
                self.schedule(end, Event::ServiceEnd(o));
                self.record(
                    o,
                    Outcome::Served {
                        arrival_ms: self.now,
                    },
                );
            }
            Event::ServiceEnd(o) => {
                if let Status::Assigned { nurse } = self.orders[o].status {
                    self.orders[o].status = Status::Done;
                    let accepted = self.orders[o].accepted_ms.unwrap_or(self.now);
                    self.tally.busy(nurse, accepted, self.now);
                    self.nurses[nurse].pos = self.inst.orders[o].location;
                    if self.nurses[nurse].on_shift {
                        self.nurses[nurse].phase = Phase::Idle;
                    } else {
                        self.go_off(nurse);
                    }
                }
            }
            Event::GiveUp(o) => match self.orders[o].status {
                Status::Waiting => {
                    self.waiting.remove(&o);
                    self.orders[o].status = Status::Cancelled;
                    self.record(o, Outcome::Unserved);
                }
                Status::Offered { nurse, .. } => {
                    // Cancelling closes the live offer; the nurse is free.
                    self.orders[o].status = Status::Cancelled;
                    self.release(nurse);
                    self.record(o, Outcome::Unserved);
                }
                _ => {}
            },
            Event::Wake => {
                if self.policy == Online::Batch {
                    self.dispatch_due_batch();
                    if self.open_orders > 0 {
                        let next = self.now + self.inst.scenario.batch_window_ms;
                        self.schedule(next, Event::Wake);
                    }
                } else if self.next_wake == Some(self.now) {
                    self.next_wake = None;
                }
            }
        }
    }

    fn record(&mut self, o: usize, outcome: Outcome) {
        self.tally
            .record(o, self.inst.orders[o].created_ms, outcome);
        self.open_orders -= 1;
    }

    fn go_off(&mut self, n: usize) {
        self.nurses[n].phase = Phase::Off;
        if let Some(since) = self.nurses[n].on_since.take() {
            self.tally.on_shift(since, self.now);
        }
    }

    /// A nurse holding an offer that closed without a job.
    fn release(&mut self, n: usize) {
        if self.nurses[n].on_shift {
            self.nurses[n].phase = Phase::Idle;
        } else {
            self.go_off(n);
        }
    }

    fn enqueue(&mut self, o: usize, due: i64) {
        let d = self.waiting.entry(o).or_insert(due);
        *d = (*d).min(due);
    }

    /// Greedy: a wake at the earliest retry still waiting (the engine's
    /// loop sleeps until then or until new work arrives).
    fn schedule_next_wake(&mut self) {
        let Some(due) = self.waiting.values().copied().min() else {
            return;
        };
        if self.next_wake.is_none_or(|w| due < w) {
            self.next_wake = Some(due);
            self.schedule(due.max(self.now), Event::Wake);
        }
    }

    fn take_due(&mut self) -> Vec<usize> {
        let now = self.now;
        let due: Vec<usize> = self
            .waiting
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(o, _)| *o)
            .collect();
        for o in &due {
            self.waiting.remove(o);
        }
        due
    }

    /// After a try found nobody (the engine's `Outcome::Retry`).
    fn retry(&mut self, o: usize) {
        let misses = (self.orders[o].misses + 1).min(self.glue.max_misses);
        self.orders[o].misses = misses;
        self.enqueue(o, self.now + self.glue.retry_ms * misses);
    }

    /// Free, qualified candidates of an order, nearest first, as the engine builds them.
    fn candidates(&self, o: usize) -> Vec<Candidate> {
        let order = &self.inst.orders[o];
        let state = &self.orders[o];
        let radius = if state.escalated {
            self.glue.escalated_radius_m
        } else {
            self.glue.search_radius_m
        };
        let mut near: Vec<(f64, usize)> = self
            .nurses
            .iter()
            .enumerate()
            .filter(|(n, s)| {
                s.on_shift
                    && s.phase == Phase::Idle
                    && self.inst.qualified(*n, o)
                    && !state.excluded.contains(n)
            })
            .map(|(n, s)| (s.pos.distance_m(&order.location), n))
            .filter(|(d, _)| *d <= radius)
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        near.truncate(self.glue.candidates);
        near.into_iter()
            .map(|(_, n)| {
                let s = &self.nurses[n];
                let eta = self.eta.eta(&s.pos, &order.location);
                Candidate {
                    nurse_id: nurse_id(n),
                    eta_s: eta.seconds,
                    distance_m: eta.distance_m,
                    jobs_today: s.accepted,
                    offers_answered: s.answered,
                    offers_accepted: s.accepted,
                    free_at: None,
                }
            })
            .collect()
    }

    fn no_candidate(&mut self, o: usize) {
        if self.now - self.inst.orders[o].created_ms >= self.glue.escalate_after_ms {
            self.orders[o].escalated = true;
        }
        self.retry(o);
    }

    fn dispatch_due_greedy(&mut self) {
        let due = self.take_due();
        for o in due {
            if self.orders[o].status != Status::Waiting {
                continue;
            }
            let candidates = self.candidates(o);
            let excluded: HashSet<NurseId> = HashSet::new();
            let best = best_candidate(&candidates, &excluded, at(self.now), &self.weights).cloned();
            match best {
                Some(c) => self.offer(o, &c),
                None => self.no_candidate(o),
            }
        }
    }

    fn dispatch_due_batch(&mut self) {
        let due = self.take_due();
        let mut lists = CandidateLists::new();
        let mut waiting = Vec::new();
        for o in due {
            if self.orders[o].status != Status::Waiting {
                continue;
            }
            let c = self.candidates(o);
            if c.is_empty() {
                self.no_candidate(o);
                continue;
            }
            lists.insert(order_id(o), c);
            waiting.push(o);
        }
        if waiting.is_empty() {
            return;
        }
        let promise = TimeDelta::minutes(PROMISE_MINUTES);
        let wo: Vec<WaitingOrder> = waiting
            .iter()
            .map(|&o| WaitingOrder {
                order_id: order_id(o),
                promised_by: at(self.inst.orders[o].created_ms) + promise,
            })
            .collect();
        let pairs = assign_batch(&wo, &lists, at(self.now));
        for o in waiting {
            let id = order_id(o);
            let chosen = pairs
                .iter()
                .find(|(oid, _)| *oid == id)
                .and_then(|(_, n)| lists.get(&id).iter().find(|c| c.nurse_id == *n))
                .cloned();
            match chosen {
                Some(c) => self.offer(o, &c),
                None => self.retry(o),
            }
        }
    }

    fn offer(&mut self, o: usize, c: &Candidate) {
        let n = (c.nurse_id.0.as_u128() - 1) as usize;
        let promised = self.inst.orders[o].created_ms + PROMISE_MINUTES * 60_000;
        if self.now + c.arrival_in_s(at(self.now)) * 1_000 > promised {
            self.orders[o].escalated = true;
        }
        let state = &mut self.orders[o];
        state.misses = 0;
        state.seq += 1;
        state.status = Status::Offered {
            nurse: n,
            seq: state.seq,
        };
        let seq = state.seq;
        self.nurses[n].phase = Phase::Offered;
        let (_, delay) = self.inst.answer(o, n);
        self.tally.offer();
        self.schedule(self.now + delay, Event::Answer { order: o, seq });
    }

    fn on_answer(&mut self, o: usize, seq: u32) {
        let Status::Offered {
            nurse: n,
            seq: live,
        } = self.orders[o].status
        else {
            return; // cancelled meanwhile
        };
        if live != seq {
            return;
        }
        let (answer, _) = self.inst.answer(o, n);
        self.nurses[n].answered += 1;
        match answer {
            Answer::Accept => {
                self.nurses[n].accepted += 1;
                self.nurses[n].phase = Phase::Busy;
                let order = &self.inst.orders[o];
                let eta = self.eta.eta(&self.nurses[n].pos, &order.location);
                let travel_ms =
                    (f64::from(eta.seconds) * 1_000.0 * self.inst.travel_factor(o, n)).round();
                self.orders[o].status = Status::Assigned { nurse: n };
                self.orders[o].accepted_ms = Some(self.now);
                self.schedule(self.now + travel_ms as i64, Event::Arrive(o));
            }
            Answer::Decline | Answer::Expire => {
                self.orders[o].excluded.push(n);
                self.orders[o].status = Status::Waiting;
                self.release(n);
                self.enqueue(o, self.now);
            }
        }
    }
}
