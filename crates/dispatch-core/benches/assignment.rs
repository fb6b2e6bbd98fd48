//! Matching speed on synthetic Shuangfu-like scenes.
//!
//! Nurses and orders uniform over a ~20×20 km box; each order's candidates
//! are its 20 nearest nurses (found outside the timed part), with
//! straight-line ETAs, random workloads and acceptance records, and some
//! nurses finishing a job. Target: a 1,000-order × 5,000-nurse batch solve
//! under 100 ms.
//!
//! `cargo bench -p yixin-dispatch-core --bench assignment`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use uuid::Uuid;
use yixin_dispatch_core::eta::StraightLineEta;
use yixin_dispatch_core::matching::{
    CandidateLists, WaitingOrder, assign_batch, assign_greedy, best_candidate,
};
use yixin_dispatch_core::scoring::{Candidate, ScoringWeights, rank};
use yixin_domain::{GeoPoint, NurseId, OrderId};

/// xorshift64*: tiny, seeded, good enough for scenes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0).unwrap()
}

/// A uniform point in a 20×20 km box around Shuangfu
/// (0.18° of latitude; 0.206° of longitude at 29.4° N).
fn point(rng: &mut Rng) -> GeoPoint {
    GeoPoint::new(29.30 + 0.18 * rng.unit(), 106.22 + 0.206 * rng.unit()).unwrap()
}

struct Scene {
    orders: Vec<WaitingOrder>,
    lists: CandidateLists,
}

fn scene(n_orders: usize, n_nurses: usize, per_order: usize, seed: u64) -> Scene {
    let mut rng = Rng(seed);
    let eta = StraightLineEta::default();
    struct Nurse {
        id: NurseId,
        at: GeoPoint,
        jobs_today: u32,
        answered: u32,
        accepted: u32,
        free_at: Option<DateTime<Utc>>,
    }
    let nurses: Vec<Nurse> = (0..n_nurses)
        .map(|i| {
            let answered = rng.below(40);
            Nurse {
                id: NurseId(Uuid::from_u128(i as u128 + 1)),
                at: point(&mut rng),
                jobs_today: rng.below(8),
                answered,
                accepted: if answered == 0 {
                    0
                } else {
                    rng.below(answered + 1)
                },
                // One in five is finishing a job within 15 minutes.
                free_at: (rng.below(5) == 0)
                    .then(|| now() + TimeDelta::seconds(i64::from(rng.below(900)))),
            }
        })
        .collect();
    let mut orders = Vec::with_capacity(n_orders);
    let mut lists = CandidateLists::new();
    for i in 0..n_orders {
        let at = point(&mut rng);
        // Placed up to 25 minutes ago: 5 to 30 minutes left on the promise.
        let order = WaitingOrder {
            order_id: OrderId(Uuid::from_u128(1_000_000 + i as u128)),
            promised_by: now() + TimeDelta::seconds(300 + i64::from(rng.below(1_500))),
            continuity_credit_s: 0,
        };
        let mut by_distance: Vec<(f64, usize)> = nurses
            .iter()
            .enumerate()
            .map(|(k, n)| (n.at.distance_m(&at), k))
            .collect();
        let nth = per_order.min(by_distance.len().saturating_sub(1));
        by_distance.select_nth_unstable_by(nth, |a, b| a.0.total_cmp(&b.0));
        let settings = eta.settings_for(&at);
        let candidates = by_distance[..per_order.min(by_distance.len())]
            .iter()
            .map(|&(_, k)| {
                let n = &nurses[k];
                let e = settings.eta(&n.at, &at);
                Candidate {
                    nurse_id: n.id,
                    eta_s: e.seconds,
                    distance_m: e.distance_m,
                    jobs_today: n.jobs_today,
                    offers_answered: n.answered,
                    offers_accepted: n.accepted,
                    free_at: n.free_at,
                    preferred: false,
                    visit_s: None,
                }
            })
            .collect();
        lists.insert(order.order_id, candidates);
        orders.push(order);
    }
    Scene { orders, lists }
}

/// How many assigned, how many late, mean arrival: printed once per scene.
fn describe(name: &str, s: &Scene) {
    let summary = |pairs: &[(OrderId, NurseId)]| {
        let (mut late, mut total) = (0, 0i64);
        for (o, n) in pairs {
            let order = s.orders.iter().find(|w| w.order_id == *o).unwrap();
            let c = s.lists.get(o).iter().find(|c| c.nurse_id == *n).unwrap();
            let arrival = c.arrival_in_s(now());
            total += arrival;
            if now() + TimeDelta::seconds(arrival) > order.promised_by {
                late += 1;
            }
        }
        let mean = total.checked_div(pairs.len() as i64).unwrap_or(0);
        format!(
            "{} assigned, {late} late, mean arrival {mean} s",
            pairs.len()
        )
    };
    let batch = assign_batch(&s.orders, &s.lists, now());
    let greedy = assign_greedy(&s.orders, &s.lists, now(), &ScoringWeights::default());
    eprintln!(
        "{name}: batch {} | greedy {}",
        summary(&batch),
        summary(&greedy)
    );
}

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    for (name, orders, nurses, seed) in [
        ("1000x5000", 1_000, 5_000, 7),
        ("200x1000", 200, 1_000, 11),
        ("1000x1000_scarce", 1_000, 1_000, 13),
    ] {
        let s = scene(orders, nurses, 20, seed);
        describe(name, &s);
        group.bench_function(name, |b| {
            b.iter(|| assign_batch(black_box(&s.orders), black_box(&s.lists), now()))
        });
    }
    group.finish();
}

fn greedy(c: &mut Criterion) {
    let s = scene(1_000, 5_000, 20, 7);
    let w = ScoringWeights::default();
    let mut group = c.benchmark_group("greedy");
    let first = s.orders[0].order_id;
    let excluded: HashSet<NurseId> = HashSet::new();
    group.bench_function("per_order_20", |b| {
        b.iter(|| best_candidate(black_box(s.lists.get(&first)), &excluded, now(), &w))
    });
    group.bench_function("window_1000x5000", |b| {
        b.iter(|| assign_greedy(black_box(&s.orders), black_box(&s.lists), now(), &w))
    });
    group.finish();
}

fn scoring(c: &mut Criterion) {
    let s = scene(1, 200, 30, 3);
    let candidates = s.lists.get(&s.orders[0].order_id).to_vec();
    assert_eq!(candidates.len(), 30);
    let w = ScoringWeights::default();
    c.bench_function("scoring/rank_30", |b| {
        b.iter_batched_ref(
            || candidates.clone(),
            |cs| rank(black_box(cs), now(), &w),
            BatchSize::SmallInput,
        )
    });
}

fn eta(c: &mut Criterion) {
    let mut rng = Rng(5);
    let from: Vec<GeoPoint> = (0..20).map(|_| point(&mut rng)).collect();
    let to = point(&mut rng);
    let est = StraightLineEta::default();
    c.bench_function("eta/straight_line_20", |b| {
        b.iter(|| est.etas_to(black_box(&from), black_box(&to)))
    });
}

criterion_group!(benches, batch, greedy, scoring, eta);
criterion_main!(benches);
