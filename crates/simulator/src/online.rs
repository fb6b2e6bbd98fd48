//! The online policies, `greedy` and `batch`, as a discrete-event simulation
//! driving the dispatch engine's own state machine ([`Decisions`], from the
//! dispatch core): its waiting queue and retry back-off, the wake of every
//! waiting order when a nurse comes on shift, the search radius and the
//! number of candidates, greedy ranking or the batch assignment, escalation
//! and offer deadlines. Candidates pass the core's candidate rule
//! ([`eligibility`]); trips take the straight-line [`EtaSettings`].
//!
//! What is the simulation's own is the world: nurses' shifts and moves, the
//! answers, travel with noise, today's jobs and offer record for the
//! ranking. A simulated decision is the engine's decision.
//!
//! Events at the same instant run in the order they were scheduled, so a
//! run is a pure function of the instance.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use uuid::Uuid;
use yixin_dispatch_core::{
    Candidate, Command, Decisions, EngineConfig, EtaSettings, NurseFacts, OrderFacts, eligibility,
};
use yixin_domain::{NurseId, OrderId, OrderStatus, PROMISE_MINUTES};

use crate::metrics::{Outcome, Tally};
use crate::scenario::{Answer, DAY_MS, Instance};

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

/// The simulation's milliseconds of an engine instant.
fn ms_of(t: DateTime<Utc>) -> i64 {
    (t - epoch()).num_milliseconds()
}

pub(crate) fn nurse_id(n: usize) -> NurseId {
    NurseId(Uuid::from_u128(n as u128 + 1))
}

fn order_id(o: usize) -> OrderId {
    OrderId(Uuid::from_u128((1u128 << 64) + o as u128))
}

/// The order index of an id made by [`order_id`] (ids grow with the index,
/// so the engine's oldest-first order is the simulation's).
fn order_index(id: OrderId) -> usize {
    (id.0.as_u128() - (1u128 << 64)) as usize
}

fn nurse_index(id: NurseId) -> usize {
    (id.0.as_u128() - 1) as usize
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
    seq: u32,
    accepted_ms: Option<i64>,
}

struct Sim<'a> {
    inst: &'a Instance,
    policy: Online,
    /// The engine's decisions: waiting orders, back-off, escalation, offers.
    decisions: Decisions,
    eta: EtaSettings,
    now: i64,
    seq: u64,
    events: BinaryHeap<Reverse<(i64, u64, Event)>>,
    nurses: Vec<NurseState>,
    orders: Vec<OrderState>,
    /// Earliest pending greedy wake, to avoid flooding the queue.
    next_wake: Option<i64>,
    tally: Tally,
    /// Orders neither served nor given up yet.
    open_orders: usize,
    /// Per patient: the nurse of the latest completed visit (the engine's
    /// "patient's nurse from before", passed to the ranking as `preferred`).
    last_nurse: Vec<Option<usize>>,
}

/// The engine's default configuration with the scenario's continuity credit.
fn engine_config(inst: &Instance) -> EngineConfig {
    let mut config = EngineConfig::default();
    // `validate` (run by `Instance::generate`) refuses a credit out of range;
    // an instance built by hand with one keeps the engine's default.
    if let Ok(weights) = inst.scenario.scoring() {
        config.policy.scoring = weights;
    }
    config
}

/// Runs one online policy over the instance.
pub fn run(inst: &Instance, policy: Online) -> Tally {
    let mut sim = Sim {
        inst,
        policy,
        decisions: Decisions::new(engine_config(inst)),
        eta: EtaSettings::default(),
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
                seq: 0,
                accepted_ms: None,
            })
            .collect(),
        next_wake: None,
        tally: Tally::new(inst.orders.len(), inst.scenario.horizon_ms()),
        open_orders: inst.orders.len(),
        last_nurse: vec![None; inst.orders.iter().map(|o| o.patient + 1).max().unwrap_or(0)],
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
                self.decisions.nurse_available(at(self.now));
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
                if let Status::Assigned { nurse } = self.orders[o].status {
                    self.tally.served_by(o, nurse);
                }
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
                    let patient = self.inst.orders[o].patient;
                    if let Some(last) = self.last_nurse.get_mut(patient) {
                        *last = Some(nurse);
                    }
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
                    self.decisions.forget(order_id(o));
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
        self.decisions.order_waiting(order_id(o), at(due));
    }

    /// Greedy: a wake at the earliest retry still waiting (the engine's
    /// loop sleeps until then or until new work arrives).
    fn schedule_next_wake(&mut self) {
        let Some(due) = self.decisions.next_due().map(ms_of) else {
            return;
        };
        if self.next_wake.is_none_or(|w| due < w) {
            self.next_wake = Some(due);
            self.schedule(due.max(self.now), Event::Wake);
        }
    }

    /// Due orders still waiting here; the rest no longer need the engine
    /// (its `needing_nurse` finds none).
    fn take_due(&mut self) -> Vec<usize> {
        let due = self.decisions.take_due(at(self.now));
        let mut out = Vec::with_capacity(due.len());
        for id in due {
            let o = order_index(id);
            if self.orders[o].status == Status::Waiting {
                out.push(o);
            } else {
                self.decisions.done(id);
            }
        }
        out
    }

    /// What the engine would read for a waiting order: its status, the
    /// nurses it must not go to again, and the free candidates the state
    /// machine's search finds, nearest first.
    fn facts(&self, o: usize) -> OrderFacts {
        let order = &self.inst.orders[o];
        let state = &self.orders[o];
        let status = if state.escalated {
            OrderStatus::Escalated
        } else {
            OrderStatus::Pending
        };
        let search = self.decisions.search(status);
        let mut near: Vec<(f64, usize)> = self
            .nurses
            .iter()
            .enumerate()
            .filter(|(n, s)| {
                !state.excluded.contains(n)
                    && eligibility(&NurseFacts {
                        on_shift: s.on_shift && s.phase != Phase::Off,
                        skilled: self.inst.qualified(*n, o),
                        // The simulated roster is verified and meets every
                        // service's credential requirements (the gate itself
                        // is the dispatch core's, tested there).
                        qualified: true,
                        has_job: s.phase == Phase::Busy,
                        offered_elsewhere: s.phase == Phase::Offered,
                        // Simulated phones always report.
                        fresh: true,
                    })
                    .is_ok()
            })
            .map(|(n, s)| (s.pos.distance_m(&order.location), n))
            .filter(|(d, _)| *d <= search.radius_m)
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        // Nobody is engaged behind the simulation's back: keep the nearest.
        near.truncate(search.keep);
        // As the engine: the patient's nurse from before is marked among the
        // candidates kept (a far one is not added).
        let before = self.last_nurse.get(order.patient).copied().flatten();
        let candidates = near
            .into_iter()
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
                    preferred: before == Some(n),
                }
            })
            .collect();
        let created = at(order.created_ms);
        OrderFacts {
            order: order_id(o),
            status,
            created_at: created,
            promised_by: created + TimeDelta::minutes(PROMISE_MINUTES),
            excluded: state.excluded.iter().map(|&n| nurse_id(n)).collect(),
            candidates,
        }
    }

    fn dispatch_due_greedy(&mut self) {
        for o in self.take_due() {
            let facts = self.facts(o);
            let commands = self.decisions.greedy(&facts, at(self.now));
            self.execute(commands);
        }
    }

    fn dispatch_due_batch(&mut self) {
        let facts: Vec<OrderFacts> = self.take_due().into_iter().map(|o| self.facts(o)).collect();
        if facts.is_empty() {
            return;
        }
        let commands = self.decisions.batch(&facts, at(self.now));
        self.execute(commands);
    }

    /// Carries out the state machine's commands, as the engine does; an
    /// offer always lands here (nobody else dispatches).
    fn execute(&mut self, commands: Vec<Command>) {
        for command in commands {
            match command {
                Command::Escalate { order, .. } => {
                    self.orders[order_index(order)].escalated = true;
                }
                Command::Offer { order, nurse, .. } => {
                    self.decisions.done(order);
                    self.offer(order_index(order), nurse_index(nurse));
                }
                // The state machine holds the retry; the greedy wake follows it.
                Command::RetryAt { .. } | Command::Expire { .. } => {}
            }
        }
    }

    fn offer(&mut self, o: usize, n: usize) {
        let state = &mut self.orders[o];
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
