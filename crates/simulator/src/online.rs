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
use yixin_dispatch_core::chain::{ChainRules, NextJob, Visit, predicted_end};
use yixin_dispatch_core::forecast::{DemandForecast, ForecastSettings, SkillMix};
use yixin_dispatch_core::reposition::{self, IdleNurse, RepositionSettings};
use yixin_dispatch_core::{
    Candidate, Command, Decisions, EngineConfig, EtaSettings, NurseFacts, OrderFacts, RiskModel,
    eligibility,
};
use yixin_domain::{GeoPoint, NurseId, OrderId, OrderStatus, PROMISE_MINUTES};

use crate::metrics::{Outcome, Tally};
use crate::scenario::{Answer, DAY_MS, Instance};

/// Which online policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Online {
    Greedy,
    Batch,
}

/// The dispatch core's additions an online policy runs with (all off: the
/// plain `greedy` and `batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// Chained offers ([`yixin_dispatch_core::chain`]): a nurse whose visit
    /// is predicted to end within the horizon is a candidate.
    pub chain: bool,
    /// Idle nurses wait where [`reposition::suggest`] tells them (most of
    /// the time: see [`FOLLOW_PROB`]), from a forecast learnt each midnight.
    pub reposition: bool,
    /// Batch only: the risk objective ([`yixin_dispatch_core::matching::risk`])
    /// instead of arrival; and every waiting order is woken when a nurse
    /// comes free (a re-solve on newly free nurses, as on new orders).
    pub risk: bool,
    /// Skill-aware repositioning ([`reposition::suggest_by_kind`]): a nurse
    /// covers only the orders whose skills she holds, the mix of orders
    /// learnt from history ([`SkillMix`]).
    pub skills: bool,
    /// With `risk`: the late reserve ([`yixin_dispatch_core::matching::risk`],
    /// [`LATE_RESERVE`] free nurses held back from hopeless orders).
    pub late_reserve: bool,
}

impl Features {
    pub const NONE: Features = Features {
        chain: false,
        reposition: false,
        risk: false,
        skills: false,
        late_reserve: false,
    };
    /// Every addition but the late reserve (which trades unserved orders
    /// for punctual ones: `batch+reserve` turns it on).
    pub const ALL: Features = Features {
        chain: true,
        reposition: true,
        risk: true,
        skills: true,
        late_reserve: false,
    };
}

/// The chain horizon the simulated engine runs with, s.
pub const CHAIN_HORIZON_S: u32 = 600;
/// The late reserve of `batch+reserve`: a hopeless order is offered only
/// while more than this many free candidates are left for it (1, 2 and 3
/// were tried: see the README's Simulator section).
pub const LATE_RESERVE: u32 = 2;
/// The overrun tolerance of a next job chosen past its promise, s.
pub const CHAIN_OVERRUN_TOLERANCE_S: u32 = 1_800;

/// How often idle nurses get new suggestions (the production worker's minute
/// is finer; 5 minutes of simulated time changes little and runs faster).
pub const REPOSITION_EVERY_MS: i64 = 5 * 60_000;
/// Share of suggestions a nurse follows (she may ignore them). Assumed.
pub const FOLLOW_PROB: f64 = 0.8;
const DRAW_FOLLOW: u64 = 0x464f_4c4c_4f57;

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
    /// Chaining: is nurse's next job (`order`) at risk from her overrun?
    Overrun {
        nurse: usize,
        order: usize,
    },
    /// Repositioning: new suggestions for the idle nurses.
    Reposition,
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
    /// The visit she is on (travelling to or at the door).
    current: Option<usize>,
    /// When she reached the current visit's door.
    arrived_ms: Option<i64>,
    /// Predicted arrival at the current visit (the ETA model's, at set-off).
    eta_at_ms: i64,
    /// Her next job (a chained offer she accepted).
    queued: Option<usize>,
    /// A chained offer she holds while busy.
    chain_offer: Option<usize>,
    /// Moving to a suggested place: (from, to, set off, there at).
    moving: Option<(GeoPoint, GeoPoint, i64, i64)>,
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
    /// Chained: the arrival she was chosen for.
    committed_ms: Option<i64>,
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
    features: Features,
    chain: ChainRules,
    risk: RiskModel,
    reposition: RepositionSettings,
    forecast: Option<DemandForecast>,
    reposition_ticks: usize,
    /// The mix of orders by skill class and hour (skill-aware
    /// repositioning only).
    mix: Option<SkillMix<u64>>,
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
    run_with(inst, policy, Features::NONE)
}

/// The risk model of the scenario's noise: travel σ as drawn, a visit's
/// end uncertain by the duration noise on the visit's own length (over a
/// mean visit of 43 minutes when the length is unknown), the mean answer
/// delay.
pub fn risk_model(inst: &Instance) -> RiskModel {
    let s = &inst.scenario;
    RiskModel {
        travel_sigma: s.travel_noise_sigma,
        finish_sd_s: s.duration_noise_sigma * 43.0 * 60.0,
        visit_sigma: s.duration_noise_sigma,
        answer_s: (s.answer_delay_s.0 + s.answer_delay_s.1) / 2.0,
        ..RiskModel::default()
    }
}

/// Runs one online policy with the dispatch core's additions in `features`.
pub fn run_with(inst: &Instance, policy: Online, features: Features) -> Tally {
    run_tuned(
        inst,
        policy,
        features,
        &risk_model(inst),
        &RepositionSettings::default(),
    )
}

/// [`run_with`] with the risk objective's model and the repositioning
/// settings given (experiments: see `examples/ablate.rs`).
pub fn run_tuned(
    inst: &Instance,
    policy: Online,
    features: Features,
    risk: &RiskModel,
    reposition: &RepositionSettings,
) -> Tally {
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
                current: None,
                arrived_ms: None,
                eta_at_ms: 0,
                queued: None,
                chain_offer: None,
                moving: None,
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
                committed_ms: None,
            })
            .collect(),
        next_wake: None,
        tally: Tally::new(inst.orders.len(), inst.scenario.horizon_ms()),
        open_orders: inst.orders.len(),
        last_nurse: vec![None; inst.orders.iter().map(|o| o.patient + 1).max().unwrap_or(0)],
        features,
        chain: if features.chain {
            ChainRules::new(CHAIN_HORIZON_S, CHAIN_OVERRUN_TOLERANCE_S).unwrap_or_default()
        } else {
            ChainRules::off()
        },
        risk: RiskModel {
            late_reserve: risk
                .late_reserve
                .or(features.late_reserve.then_some(LATE_RESERVE)),
            ..*risk
        },
        reposition: *reposition,
        forecast: None,
        reposition_ticks: 0,
        mix: None,
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
        if self.features.reposition {
            self.forecast = Some(learn_forecast(self.inst, 0));
            self.schedule(0, Event::Reposition);
        }
        if self.features.skills && self.features.reposition {
            self.mix = Some(learn_mix(self.inst, 0));
        }
    }

    fn plus(&self) -> bool {
        self.features != Features::NONE
    }

    /// Where nurse `n` is now (on her way to a suggested place: pro rata).
    fn here(&self, n: usize) -> GeoPoint {
        let s = &self.nurses[n];
        match s.moving {
            Some((a, b, t0, t1)) if self.now < t1 => {
                let f = (self.now - t0) as f64 / (t1 - t0).max(1) as f64;
                GeoPoint::new(
                    a.lat() + (b.lat() - a.lat()) * f,
                    a.lng() + (b.lng() - a.lng()) * f,
                )
                .unwrap_or(b)
            }
            Some((_, b, _, _)) => b,
            None => s.pos,
        }
    }

    /// Stops a move where the nurse is.
    fn stop(&mut self, n: usize) {
        if self.nurses[n].moving.is_some() {
            self.nurses[n].pos = self.here(n);
            self.nurses[n].moving = None;
        }
    }

    /// The engine's prediction of when nurse `n`'s current visit ends (from
    /// the catalogue's duration, not the realised one).
    fn predicted_free(&self, n: usize) -> Option<DateTime<Utc>> {
        let s = &self.nurses[n];
        let o = s.current?;
        let minutes = self
            .inst
            .service_minutes
            .get(self.inst.orders[o].service)
            .copied()
            .unwrap_or(0);
        let mut v = Visit::new(OrderStatus::EnRoute, minutes);
        match s.arrived_ms {
            Some(a) => {
                v.status = OrderStatus::InService;
                v.arrived_at = Some(at(a));
                v.started_at = Some(at(a));
            }
            None => v.eta = Some(at(s.eta_at_ms)),
        }
        predicted_end(&v, at(self.now))
    }

    /// The catalogue length of nurse `n`'s current visit, s.
    fn visit_s(&self, n: usize) -> Option<u32> {
        let o = self.nurses[n].current?;
        let minutes = self.inst.service_minutes.get(self.inst.orders[o].service)?;
        Some(minutes * 60)
    }

    /// A busy nurse as a chained candidate: her predicted free time, when
    /// within the chain rule's horizon and she has no next job yet.
    fn chain_free_at(&self, n: usize) -> Option<DateTime<Utc>> {
        let s = &self.nurses[n];
        if !self.chain.enabled() || !s.on_shift || s.chain_offer.is_some() {
            return None;
        }
        let end = self.predicted_free(n)?;
        let next_jobs = usize::from(s.queued.is_some());
        if next_jobs >= yixin_dispatch_core::chain::MAX_NEXT_JOBS {
            return None;
        }
        self.chain.within_horizon(end, at(self.now)).then_some(end)
    }

    /// Nurse `n` sets off to order `o` now.
    fn set_off(&mut self, n: usize, o: usize) {
        self.stop(n);
        let from = self.nurses[n].pos;
        let order = &self.inst.orders[o];
        let eta = self.eta.eta(&from, &order.location);
        let travel_ms = (f64::from(eta.seconds) * 1_000.0 * self.inst.travel_factor(o, n)).round();
        let nurse = &mut self.nurses[n];
        nurse.phase = Phase::Busy;
        nurse.current = Some(o);
        nurse.arrived_ms = None;
        nurse.eta_at_ms = self.now + i64::from(eta.seconds) * 1_000;
        self.orders[o].status = Status::Assigned { nurse: n };
        self.orders[o].accepted_ms = Some(self.now);
        self.schedule(self.now + travel_ms as i64, Event::Arrive(o));
    }

    /// The chain rule's deadline of nurse `n`'s next job `o`, and her ETA
    /// to it from her current visit.
    fn next_job(&self, n: usize, o: usize) -> (NextJob, u32) {
        let from = self.nurses[n]
            .current
            .map_or(self.nurses[n].pos, |c| self.inst.orders[c].location);
        let eta = self.eta.eta(&from, &self.inst.orders[o].location).seconds;
        let created = at(self.inst.orders[o].created_ms);
        let next = NextJob {
            promised_by: created + TimeDelta::minutes(PROMISE_MINUTES),
            committed: self.orders[o].committed_ms.map(at),
        };
        (next, eta)
    }

    /// Schedules the overrun check of nurse `n`'s next job `o`: the moment
    /// after which setting off would miss its deadline.
    fn schedule_overrun(&mut self, n: usize, o: usize) {
        let (next, eta) = self.next_job(n, o);
        let latest = ms_of(next.deadline(&self.chain)) - i64::from(eta) * 1_000 + 1_000;
        let when = if latest > self.now {
            latest
        } else {
            self.now + 60_000
        };
        self.schedule(when, Event::Overrun { nurse: n, order: o });
    }

    fn on_overrun(&mut self, n: usize, o: usize) {
        if self.nurses[n].queued != Some(o) {
            return;
        }
        let Some(end) = self.predicted_free(n) else {
            return;
        };
        let (next, eta) = self.next_job(n, o);
        if self.chain.at_risk(&next, end, eta, at(self.now)) {
            self.nurses[n].queued = None;
            let state = &mut self.orders[o];
            state.status = Status::Waiting;
            state.excluded.push(n);
            state.accepted_ms = None;
            state.committed_ms = None;
            self.tally.chain_taken_back += 1;
            self.enqueue(o, self.now);
        } else {
            self.schedule_overrun(n, o);
        }
    }

    /// New suggestions for the idle nurses from the forecast; each follows
    /// hers with probability [`FOLLOW_PROB`].
    fn reposition_tick(&mut self) {
        self.reposition_ticks += 1;
        let Some(forecast) = &self.forecast else {
            return;
        };
        let demand = forecast.hour_ahead(at(self.now));
        // The kinds of orders (one per skill set orders require, with its
        // share of the next hour's orders) and which each nurse can take;
        // without the mix, one kind every nurse takes.
        let kinds = self
            .mix
            .as_ref()
            .map_or_else(|| vec![1.0], |mix| mix.shares(at(self.now)));
        let takes = |n: usize| -> u64 {
            self.mix
                .as_ref()
                .map_or(1, |mix| mix.mask(&self.inst.nurses[n].skills))
        };
        let mut idle = Vec::new();
        let mut others = Vec::new();
        for (n, s) in self.nurses.iter().enumerate() {
            if !s.on_shift {
                continue;
            }
            match s.phase {
                Phase::Off => {}
                Phase::Idle => idle.push((
                    IdleNurse {
                        nurse_id: nurse_id(n),
                        at: self.here(n),
                    },
                    takes(n),
                )),
                Phase::Offered => others.push((self.here(n), takes(n))),
                Phase::Busy => others.push((
                    s.current.map_or(s.pos, |o| self.inst.orders[o].location),
                    takes(n),
                )),
            }
        }
        let suggestions =
            reposition::suggest_by_kind(&idle, &others, &demand, &kinds, &self.reposition);
        for sg in suggestions {
            let n = nurse_index(sg.nurse_id);
            if self.inst.draw(DRAW_FOLLOW, n, self.reposition_ticks) >= FOLLOW_PROB {
                continue;
            }
            let from = self.here(n);
            let eta = self.eta.eta(&from, &sg.to);
            self.nurses[n].pos = from;
            self.nurses[n].moving = Some((
                from,
                sg.to,
                self.now,
                self.now + i64::from(eta.seconds) * 1_000,
            ));
            self.tally.reposition_moves += 1;
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
                if self.features.reposition {
                    self.forecast = Some(learn_forecast(self.inst, self.now));
                }
                if self.mix.is_some() {
                    self.mix = Some(learn_mix(self.inst, self.now));
                }
            }
            Event::ShiftStart(n) => {
                let home = self.inst.nurses[n].home;
                let nurse = &mut self.nurses[n];
                nurse.on_shift = true;
                if nurse.phase == Phase::Off {
                    nurse.phase = Phase::Idle;
                    nurse.pos = home;
                    nurse.moving = None;
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
                    self.nurses[nurse].arrived_ms = Some(self.now);
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
                    self.nurses[nurse].current = None;
                    self.nurses[nurse].arrived_ms = None;
                    if let Some(next) = self.nurses[nurse].queued.take() {
                        self.set_off(nurse, next);
                    } else if self.nurses[nurse].chain_offer.is_some() {
                        // Free, but holding a chained offer: not a candidate
                        // until she answers.
                        self.nurses[nurse].phase = Phase::Offered;
                    } else if self.nurses[nurse].on_shift {
                        self.nurses[nurse].phase = Phase::Idle;
                        if self.plus() {
                            self.decisions.nurse_available(at(self.now));
                        }
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
                    self.release(nurse, o);
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
            Event::Overrun { nurse, order } => self.on_overrun(nurse, order),
            Event::Reposition => {
                self.reposition_tick();
                let next = self.now + REPOSITION_EVERY_MS;
                if next < self.inst.scenario.horizon_ms() {
                    self.schedule(next, Event::Reposition);
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

    /// A nurse holding an offer (of order `o`) that closed without a job.
    fn release(&mut self, n: usize, o: usize) {
        if self.nurses[n].chain_offer == Some(o) {
            self.nurses[n].chain_offer = None;
            if self.nurses[n].phase == Phase::Busy {
                return; // still on her visit
            }
        }
        if self.plus() {
            self.decisions.nurse_available(at(self.now));
        }
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
        let mut near: Vec<(f64, usize, GeoPoint, Option<DateTime<Utc>>)> = self
            .nurses
            .iter()
            .enumerate()
            .filter_map(|(n, s)| {
                if state.excluded.contains(&n) {
                    return None;
                }
                // A busy nurse is a candidate only chained: from her
                // current visit's place, free at its predicted end.
                let chained = if s.phase == Phase::Busy {
                    let free_at = self.chain_free_at(n)?;
                    let place = self.inst.orders[s.current?].location;
                    Some((place, free_at))
                } else {
                    None
                };
                eligibility(&NurseFacts {
                    on_shift: s.on_shift && s.phase != Phase::Off,
                    skilled: self.inst.qualified(n, o),
                    // The simulated roster is verified and meets every
                    // service's credential requirements (the gate itself
                    // is the dispatch core's, tested there).
                    qualified: true,
                    has_job: s.phase == Phase::Busy && chained.is_none(),
                    offered_elsewhere: s.phase == Phase::Offered || s.chain_offer.is_some(),
                    // Simulated phones always report.
                    fresh: true,
                })
                .ok()?;
                let (from, free_at) = match chained {
                    Some((place, free_at)) => (place, Some(free_at)),
                    None => (self.here(n), None),
                };
                let d = from.distance_m(&order.location);
                (d <= search.radius_m).then_some((d, n, from, free_at))
            })
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        // Nobody is engaged behind the simulation's back: keep the nearest.
        near.truncate(search.keep);
        // As the engine: the patient's nurse from before is marked among the
        // candidates kept (a far one is not added).
        let before = self.last_nurse.get(order.patient).copied().flatten();
        let candidates = near
            .into_iter()
            .map(|(_, n, from, free_at)| {
                let s = &self.nurses[n];
                let eta = self.eta.eta(&from, &order.location);
                Candidate {
                    nurse_id: nurse_id(n),
                    eta_s: eta.seconds,
                    distance_m: eta.distance_m,
                    jobs_today: s.accepted,
                    offers_answered: s.answered,
                    offers_accepted: s.accepted,
                    free_at,
                    preferred: before == Some(n),
                    visit_s: free_at.and_then(|_| self.visit_s(n)),
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
        let due = self.take_due();
        if due.is_empty() {
            return;
        }
        let facts: Vec<OrderFacts> = due.into_iter().map(|o| self.facts(o)).collect();
        let commands = if self.features.risk {
            self.decisions.batch_risk(&facts, at(self.now), &self.risk)
        } else {
            self.decisions.batch(&facts, at(self.now))
        };
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
        self.stop(n);
        if self.nurses[n].phase == Phase::Busy {
            self.nurses[n].chain_offer = Some(o);
        } else {
            self.nurses[n].phase = Phase::Offered;
        }
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
                let chained = self.nurses[n].chain_offer == Some(o);
                self.nurses[n].chain_offer = None;
                if chained && self.nurses[n].current.is_some() {
                    // Her next job: she sets off when the visit ends.
                    self.nurses[n].queued = Some(o);
                    self.orders[o].status = Status::Assigned { nurse: n };
                    let (_, eta) = self.next_job(n, o);
                    let free = self.predicted_free(n).map_or(self.now, ms_of);
                    self.orders[o].committed_ms = Some(free.max(self.now) + i64::from(eta) * 1_000);
                    self.tally.chained += 1;
                    self.schedule_overrun(n, o);
                } else {
                    self.set_off(n, o);
                }
            }
            Answer::Decline | Answer::Expire => {
                self.orders[o].excluded.push(n);
                self.orders[o].status = Status::Waiting;
                self.release(n, o);
                self.enqueue(o, self.now);
            }
        }
    }
}

/// The mix of orders by kind (the skill mask they require) and local hour
/// the engine would know at `now_ms`: learnt from the organisation's history
/// and the simulated days before, as the forecast (each midnight), with the
/// core's [`SkillMix`], for skill-aware repositioning.
pub fn learn_mix(inst: &Instance, now_ms: i64) -> SkillMix<u64> {
    let past = inst
        .history
        .iter()
        .zip(&inst.history_required)
        .map(|((_, t), &required)| (at(*t), required))
        .chain(
            inst.orders
                .iter()
                .filter(|o| o.created_ms < now_ms)
                .map(|o| (at(o.created_ms), o.required)),
        );
    SkillMix::fit(ForecastSettings::default().tz, past, at(now_ms))
}

/// The demand forecast the engine would hold at `now_ms`: learnt from the
/// organisation's history before day 0 and the simulated orders placed
/// before `now_ms` (only complete days count).
pub fn learn_forecast(inst: &Instance, now_ms: i64) -> DemandForecast {
    let history: Vec<(GeoPoint, DateTime<Utc>)> = inst
        .history
        .iter()
        .map(|(p, t)| (*p, at(*t)))
        .chain(
            inst.orders
                .iter()
                .filter(|o| o.created_ms < now_ms)
                .map(|o| (o.location, at(o.created_ms))),
        )
        .collect();
    DemandForecast::fit(ForecastSettings::default(), &history, at(now_ms))
}

/// The simulation's instant `ms` as the engine's clock.
pub fn instant(ms: i64) -> DateTime<Utc> {
    at(ms)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::scenario::HOUR_MS;
    use yixin_domain::Catalog;

    #[test]
    fn the_mix_learns_the_history_then_the_simulated_days() {
        let inst = Instance::generate(&crate::Scenario::shuangfu(), &Catalog::seed()).unwrap();
        let mix = learn_mix(&inst, 0);
        let shares = mix.shares(at(9 * HOUR_MS));
        assert_eq!(shares.len(), mix.kinds().len());
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // By hand: the history's orders of the next hour (10–11) of the
        // first kind.
        let hour = |t: i64| t.rem_euclid(DAY_MS) / HOUR_MS;
        let (mut mine, mut total) = (0.0, 0.0);
        for ((_, t), &m) in inst.history.iter().zip(&inst.history_required) {
            if hour(*t) == 10 {
                total += 1.0;
                if m == mix.kinds()[0] {
                    mine += 1.0;
                }
            }
        }
        assert!(total > 0.0);
        assert!((shares[0] - mine / total).abs() < 1e-12);
        // A nurse takes the kinds within her skills.
        let skills = inst.nurses[0].skills;
        let mask = mix.mask(&skills);
        for (c, &k) in mix.kinds().iter().enumerate() {
            assert_eq!(mask >> c & 1 == 1, skills & k == k);
        }
        // Learnt again later, the simulated days count too.
        let later = learn_mix(&inst, 3 * DAY_MS);
        let before = inst
            .orders
            .iter()
            .filter(|o| o.created_ms < 3 * DAY_MS)
            .count();
        assert_eq!(later.orders_learnt() as usize, inst.history.len() + before);
    }
}
