//! What a run measured: each order's outcome and the fleet's busy and
//! on-shift time, and the figures of the report computed from them.

use serde::Serialize;

use crate::scenario::{DAY_MS, HOUR_MS};

/// How one order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A nurse at the door at `arrival_ms`.
    Served { arrival_ms: i64 },
    /// Nobody on the way within the resident's patience.
    Unserved,
}

/// The raw measurements of one run.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Per order: creation time and outcome (`None` while undecided).
    pub outcomes: Vec<Option<(i64, Outcome)>>,
    /// Nurse-ms on the way or on a visit, by hour of day.
    pub busy_ms: [f64; 24],
    /// Nurse-ms on shift (with overtime to finish a visit), by hour of day.
    pub on_shift_ms: [f64; 24],
    /// Offers made (online policies).
    pub offers: u64,
    /// Measured span; intervals are clipped to it.
    pub horizon_ms: i64,
    /// Every job: (nurse, committed at, visit over at); to check nobody is double-booked.
    pub jobs: Vec<(usize, i64, i64)>,
    /// Per order: the nurse who came (`None`: unserved).
    pub served_by: Vec<Option<usize>>,
    /// Chained offers accepted (a next job queued behind a visit).
    pub chained: u64,
    /// Next jobs taken back because an overrun put their promise at risk.
    pub chain_taken_back: u64,
    /// Suggested moves nurses followed.
    pub reposition_moves: u64,
}

impl Tally {
    pub fn new(orders: usize, horizon_ms: i64) -> Self {
        Self {
            outcomes: vec![None; orders],
            busy_ms: [0.0; 24],
            on_shift_ms: [0.0; 24],
            offers: 0,
            horizon_ms,
            jobs: Vec::new(),
            served_by: vec![None; orders],
            chained: 0,
            chain_taken_back: 0,
            reposition_moves: 0,
        }
    }

    /// Nurse `nurse` came to `order`.
    pub fn served_by(&mut self, order: usize, nurse: usize) {
        if let Some(slot) = self.served_by.get_mut(order) {
            *slot = Some(nurse);
        }
    }

    pub fn record(&mut self, order: usize, created_ms: i64, outcome: Outcome) {
        if let Some(slot) = self.outcomes.get_mut(order) {
            *slot = Some((created_ms, outcome));
        }
    }

    pub fn offer(&mut self) {
        self.offers += 1;
    }

    /// Nurse `nurse` was committed to a job from `from` to `to`.
    pub fn busy(&mut self, nurse: usize, from: i64, to: i64) {
        self.jobs.push((nurse, from, to));
        split_by_hour(&mut self.busy_ms, from, to.min(self.horizon_ms));
    }

    pub fn on_shift(&mut self, from: i64, to: i64) {
        split_by_hour(&mut self.on_shift_ms, from, to.min(self.horizon_ms));
    }
}

/// Adds the interval `[from, to)` to the hour-of-day buckets it spans.
fn split_by_hour(buckets: &mut [f64; 24], from: i64, to: i64) {
    let mut t = from.max(0);
    while t < to {
        let next = (t / HOUR_MS + 1) * HOUR_MS;
        let end = next.min(to);
        let hour = ((t % DAY_MS) / HOUR_MS) as usize;
        buckets[hour] += (end - t) as f64;
        t = end;
    }
}

/// The figures of one hour of day (over every simulated day).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourFigures {
    pub hour: u32,
    pub orders: usize,
    pub within_30_min_share: Option<f64>,
    pub mean_arrival_min: Option<f64>,
    pub p90_arrival_min: Option<f64>,
    pub unserved_share: Option<f64>,
    pub utilization: Option<f64>,
}

/// The figures of one policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyFigures {
    pub orders: usize,
    /// Orders with a nurse at the door by creation + 30 min, over all orders.
    pub within_30_min_share: f64,
    /// Minutes from order to nurse at the door, over served orders.
    pub mean_arrival_min: Option<f64>,
    pub p90_arrival_min: Option<f64>,
    /// Orders nobody was on the way to within the resident's patience.
    pub unserved_share: f64,
    /// Busy (travelling or visiting) ÷ on-shift nurse time.
    pub utilization: f64,
    pub offers: u64,
    /// Served orders of a patient served before (see [`continuity`]).
    pub repeat_visits: usize,
    /// Share of those served by the patient's previous nurse (`None`: none).
    pub continuity_rate: Option<f64>,
    /// Chained offers accepted, next jobs taken back on an overrun, and
    /// suggested moves followed (0 for policies without them).
    pub chained: u64,
    pub chain_taken_back: u64,
    pub reposition_moves: u64,
    pub by_hour: Vec<HourFigures>,
}

/// Continuity over orders in creation order: `(repeat visits, by the same
/// nurse)`. A repeat visit is a served order of a patient with an earlier
/// served order; it counts as continuous when the nurse who came is the one
/// who came to the patient's previous served order. `patients[o]` is order
/// `o`'s patient, `served_by[o]` its nurse.
pub fn continuity(patients: &[usize], served_by: &[Option<usize>]) -> (usize, usize) {
    let mut last: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let (mut repeats, mut same) = (0, 0);
    for (patient, nurse) in patients.iter().zip(served_by) {
        let Some(nurse) = *nurse else { continue };
        if let Some(before) = last.insert(*patient, nurse) {
            repeats += 1;
            if before == nurse {
                same += 1;
            }
        }
    }
    (repeats, same)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn p90(sorted: &[f64]) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    // Nearest rank.
    let rank = ((0.9 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

struct Acc {
    orders: usize,
    within: usize,
    unserved: usize,
    arrivals: Vec<f64>,
}

impl Acc {
    fn new() -> Self {
        Self {
            orders: 0,
            within: 0,
            unserved: 0,
            arrivals: Vec::new(),
        }
    }

    fn add(&mut self, created: i64, outcome: Option<Outcome>) {
        self.orders += 1;
        match outcome {
            Some(Outcome::Served { arrival_ms }) => {
                let min = (arrival_ms - created) as f64 / 60_000.0;
                if arrival_ms - created <= 30 * 60_000 {
                    self.within += 1;
                }
                self.arrivals.push(min);
            }
            // An order left undecided at the end counts as unserved.
            Some(Outcome::Unserved) | None => self.unserved += 1,
        }
    }

    fn share(&self, n: usize) -> Option<f64> {
        (self.orders > 0).then(|| round(n as f64 / self.orders as f64, 4))
    }

    fn mean(&self) -> Option<f64> {
        (!self.arrivals.is_empty()).then(|| {
            round(
                self.arrivals.iter().sum::<f64>() / self.arrivals.len() as f64,
                2,
            )
        })
    }

    fn p90(&mut self) -> Option<f64> {
        self.arrivals.sort_by(f64::total_cmp);
        p90(&self.arrivals).map(|x| round(x, 2))
    }
}

impl PolicyFigures {
    /// The figures of `tally`; `created` gives each order's creation time,
    /// `patients` its patient.
    pub fn of(tally: &Tally, created: &[i64], patients: &[usize]) -> Self {
        let (repeat_visits, same_nurse) = continuity(patients, &tally.served_by);
        let mut all = Acc::new();
        let mut hours: Vec<Acc> = (0..24).map(|_| Acc::new()).collect();
        for (o, &c) in created.iter().enumerate() {
            let outcome = tally.outcomes.get(o).copied().flatten().map(|(_, x)| x);
            all.add(c, outcome);
            hours[((c.rem_euclid(DAY_MS)) / HOUR_MS) as usize].add(c, outcome);
        }
        let busy: f64 = tally.busy_ms.iter().sum();
        let on: f64 = tally.on_shift_ms.iter().sum();
        let by_hour = hours
            .iter_mut()
            .enumerate()
            .map(|(h, a)| HourFigures {
                hour: h as u32,
                orders: a.orders,
                within_30_min_share: a.share(a.within),
                mean_arrival_min: a.mean(),
                p90_arrival_min: a.p90(),
                unserved_share: a.share(a.unserved),
                utilization: (tally.on_shift_ms[h] > 0.0)
                    .then(|| round(tally.busy_ms[h] / tally.on_shift_ms[h], 4)),
            })
            .collect();
        Self {
            orders: all.orders,
            within_30_min_share: all.share(all.within).unwrap_or(0.0),
            mean_arrival_min: all.mean(),
            p90_arrival_min: all.p90(),
            unserved_share: all.share(all.unserved).unwrap_or(0.0),
            utilization: if on > 0.0 { round(busy / on, 4) } else { 0.0 },
            offers: tally.offers,
            repeat_visits,
            continuity_rate: (repeat_visits > 0)
                .then(|| round(same_nurse as f64 / repeat_visits as f64, 4)),
            chained: tally.chained,
            chain_taken_back: tally.chain_taken_back,
            reposition_moves: tally.reposition_moves,
            by_hour,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_split_over_hours_and_days() {
        let mut b = [0.0; 24];
        split_by_hour(&mut b, 23 * HOUR_MS + 30 * 60_000, DAY_MS + HOUR_MS);
        assert_eq!(b[23], 30.0 * 60_000.0);
        assert_eq!(b[0], HOUR_MS as f64);
        assert_eq!(b.iter().sum::<f64>(), 90.0 * 60_000.0);
    }

    #[test]
    fn continuity_counts_repeat_visits_by_the_previous_nurse() {
        // Patient 0: nurses 3, 3, (unserved), 4, 4 → 3 repeat visits, 2 continuous
        // (the unserved order does not break the chain). Patient 1: once.
        // Patient 2: unserved, then nurse 5 → no repeat visit yet.
        let patients = [0, 1, 0, 2, 0, 0, 2, 0];
        let served = [
            Some(3),
            Some(4),
            Some(3),
            None,
            None,
            Some(4),
            Some(5),
            Some(4),
        ];
        assert_eq!(continuity(&patients, &served), (3, 2));
        assert_eq!(continuity(&[], &[]), (0, 0));
        assert_eq!(continuity(&[7, 7], &[Some(1), Some(2)]), (1, 0));
    }

    #[test]
    fn p90_is_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(p90(&v), Some(9.0));
        assert_eq!(p90(&[4.0]), Some(4.0));
        assert_eq!(p90(&[]), None);
    }
}
