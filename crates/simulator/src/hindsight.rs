//! The hindsight planner: an offline, clairvoyant reference for the online
//! policies on the same instance.
//!
//! It knows every order in advance (time, place, service, how long the
//! visit really takes), every realised travel time and every nurse's answer,
//! and it has none of the online handicaps:
//!
//! - no offers: a nurse it picks is committed at once (no answer delay, and
//!   it never picks one who would decline or let the offer lapse);
//! - **chaining**: a nurse still on a visit is a candidate, from where and
//!   when that visit ends (online, only free nurses are candidates);
//! - **pre-positioning**: a free nurse may set off *before* the order is
//!   placed, timed to be at the door when it is (arrival = max(placed,
//!   departure + travel));
//! - no search radius, no retry back-off, no batch window.
//!
//! Two passes, so that capacity goes to orders that can be served on time:
//!
//! 1. In the order orders are placed, each goes to the qualified nurse (on
//!    shift at departure) with the earliest realised arrival at the end of
//!    her plan — ties to the shorter trip, then the lower index — **if**
//!    that arrival keeps the 30-minute promise; otherwise it is set aside
//!    (serving it late now would spend an hour of a nurse a later order
//!    could have had on time).
//! 2. The orders set aside, in order, are inserted wherever a nurse's plan
//!    has room (before, between or after her jobs, without making any
//!    planned arrival later), at the earliest arrival; one nobody can reach
//!    within the resident's patience is unserved.
//!
//! **Not a proven bound.** Planning in sequence is itself greedy: an
//! optimal clairvoyant plan (a vehicle-routing problem with time windows
//! over the day, NP-hard) may serve more orders on time, e.g. by keeping a
//! nurse back for a later order a colleague could not reach. So the gap to
//! the true optimum is not bounded by this construction, and on some
//! instance an online policy could beat it. Where it provably dominates —
//! one nurse, each visit over before the next order — every order gets an
//! arrival no later than online (the test
//! `hindsight_dominates_one_nurse_on_sparse_demand`); on the default
//! scenario the report checks it rather than assuming it.

use yixin_dispatch_core::EtaSettings;
use yixin_domain::{GeoPoint, PROMISE_MINUTES};

use crate::metrics::{Outcome, Tally};
use crate::scenario::{Answer, Instance};

/// One planned visit.
#[derive(Debug, Clone, Copy)]
struct Job {
    order: usize,
    shift: usize,
    arrive: i64,
    end: i64,
}

/// Where a new job would go: nurse, position in her plan, shift, arrival, travel.
#[derive(Debug, Clone, Copy)]
struct Fit {
    nurse: usize,
    at: usize,
    shift: usize,
    arrive: i64,
    travel: i64,
}

struct Planner<'a> {
    inst: &'a Instance,
    eta: EtaSettings,
    patience_ms: i64,
    plans: Vec<Vec<Job>>,
}

impl Planner<'_> {
    /// Realised travel of nurse `n` from `from` to order `o`, ms.
    fn travel(&self, from: &GeoPoint, o: usize, n: usize) -> i64 {
        let order = &self.inst.orders[o];
        (f64::from(self.eta.eta(from, &order.location).seconds)
            * 1_000.0
            * self.inst.travel_factor(o, n))
        .round() as i64
    }

    /// The earliest arrival at order `o` if nurse `n` takes it as job `at`
    /// of her plan, keeping every other planned arrival; `None` if it does
    /// not fit or comes after the resident's patience.
    fn fit(&self, n: usize, o: usize, at: usize) -> Option<Fit> {
        let nurse = &self.inst.nurses[n];
        let order = &self.inst.orders[o];
        let jobs = &self.plans[n];
        let prev = at.checked_sub(1).map(|k| jobs[k]);
        let next = jobs.get(at).copied();
        let latest = order.created_ms + self.patience_ms;
        for (s, &(start, end)) in nurse.shifts.iter().enumerate() {
            if prev.is_some_and(|p| s < p.shift) {
                continue;
            }
            if next.is_some_and(|x| s > x.shift) || start > latest {
                return None;
            }
            // A shift starts from home; within one, from the last visit.
            let (from, free) = match prev {
                Some(p) if p.shift == s => (self.inst.orders[p.order].location, p.end),
                _ => (nurse.home, start),
            };
            if free >= end {
                continue;
            }
            let travel = self.travel(&from, o, n);
            let depart = free.max(order.created_ms - travel);
            if depart >= end {
                continue;
            }
            let arrive = (depart + travel).max(order.created_ms);
            if arrive > latest {
                return None;
            }
            let finish = arrive + order.duration_ms;
            if let Some(x) = next {
                let ok = if x.shift == s {
                    finish + self.travel(&order.location, x.order, n) <= x.arrive
                } else {
                    finish <= nurse.shifts[x.shift].0
                };
                if !ok {
                    return None;
                }
            }
            return Some(Fit {
                nurse: n,
                at,
                shift: s,
                arrive,
                travel,
            });
        }
        None
    }

    fn candidates(&self, o: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.inst.nurses.len()).filter(move |&n| {
            self.inst.qualified(n, o) && self.inst.answer(o, n).0 == Answer::Accept
        })
    }

    fn better(a: &Fit, b: Option<&Fit>) -> bool {
        b.is_none_or(|b| (a.arrive, a.travel, a.nurse) < (b.arrive, b.travel, b.nurse))
    }

    fn commit(&mut self, o: usize, f: Fit) {
        let end = f.arrive + self.inst.orders[o].duration_ms;
        self.plans[f.nurse].insert(
            f.at,
            Job {
                order: o,
                shift: f.shift,
                arrive: f.arrive,
                end,
            },
        );
    }
}

/// Runs the hindsight planner over the instance.
pub fn run(inst: &Instance) -> Tally {
    let mut p = Planner {
        inst,
        eta: EtaSettings::default(),
        patience_ms: inst.scenario.patience_min * 60_000,
        plans: vec![Vec::new(); inst.nurses.len()],
    };
    let promise_ms = PROMISE_MINUTES * 60_000;
    let mut set_aside = Vec::new();
    for (o, order) in inst.orders.iter().enumerate() {
        let mut best: Option<Fit> = None;
        for n in p.candidates(o) {
            if let Some(f) = p.fit(n, o, p.plans[n].len())
                && Planner::better(&f, best.as_ref())
            {
                best = Some(f);
            }
        }
        match best {
            Some(f) if f.arrive <= order.created_ms + promise_ms => p.commit(o, f),
            _ => set_aside.push(o),
        }
    }
    for o in set_aside {
        let mut best: Option<Fit> = None;
        for n in p.candidates(o) {
            for at in 0..=p.plans[n].len() {
                if let Some(f) = p.fit(n, o, at)
                    && Planner::better(&f, best.as_ref())
                {
                    best = Some(f);
                }
            }
        }
        if let Some(f) = best {
            p.commit(o, f);
        }
    }

    let mut tally = Tally::new(inst.orders.len(), inst.scenario.horizon_ms());
    for (o, order) in inst.orders.iter().enumerate() {
        tally.record(o, order.created_ms, Outcome::Unserved);
    }
    for (n, jobs) in p.plans.iter().enumerate() {
        let nurse = &inst.nurses[n];
        for (k, job) in jobs.iter().enumerate() {
            let from = match k.checked_sub(1).map(|i| jobs[i]) {
                Some(prev) if prev.shift == job.shift => inst.orders[prev.order].location,
                _ => nurse.home,
            };
            let travel = p.travel(&from, job.order, n);
            tally.busy(n, job.arrive - travel, job.end);
            // Overtime past the shift counts as time on shift.
            let shift_end = nurse.shifts[job.shift].1;
            let last_of_shift = jobs.get(k + 1).is_none_or(|x| x.shift != job.shift);
            if last_of_shift && job.end > shift_end {
                tally.on_shift(shift_end, job.end);
            }
            let created = inst.orders[job.order].created_ms;
            tally.served_by(job.order, n);
            tally.record(
                job.order,
                created,
                Outcome::Served {
                    arrival_ms: job.arrive,
                },
            );
        }
        for &(a, b) in &nurse.shifts {
            tally.on_shift(a, b);
        }
    }
    tally
}
