//! The ranking rule of greedy offers (`scoring.rs`): a full ranking and the
//! one-pass best, over candidate lists of the sizes dispatch sees (20 is
//! the default `dispatch.candidates`), with busy nurses finishing a job and
//! records of every kind.
//!
//! `cargo bench -p yixin-dispatch-core --bench scoring`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::hint::black_box;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use uuid::Uuid;
use yixin_dispatch_core::matching::best_candidate;
use yixin_dispatch_core::scoring::{Candidate, ScoringWeights, best, rank};
use yixin_domain::NurseId;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0).unwrap()
}

fn candidates(n: usize, rng: &mut Rng) -> Vec<Candidate> {
    (0..n)
        .map(|i| {
            let answered = rng.below(30) as u32;
            Candidate {
                nurse_id: NurseId(Uuid::from_u128(i as u128 + 1)),
                eta_s: 60 + rng.below(1_800) as u32,
                distance_m: 0,
                jobs_today: rng.below(8) as u32,
                offers_answered: answered,
                offers_accepted: rng.below(u64::from(answered) + 1) as u32,
                free_at: (rng.below(4) == 0)
                    .then(|| now() + TimeDelta::seconds(rng.below(900) as i64)),
                preferred: false,
                visit_s: None,
            }
        })
        .collect()
}

fn scoring(c: &mut Criterion) {
    let mut rng = Rng(7);
    let w = ScoringWeights::default();
    let mut g = c.benchmark_group("scoring");
    for n in [5usize, 20, 100] {
        let cs = candidates(n, &mut rng);
        g.bench_with_input(BenchmarkId::new("rank", n), &cs, |b, cs| {
            b.iter_batched_ref(
                || cs.clone(),
                |cs| rank(black_box(cs), now(), &w),
                BatchSize::SmallInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("best", n), &cs, |b, cs| {
            b.iter(|| best(black_box(cs), now(), &w).map(|c| c.nurse_id))
        });
        // After a few declines: the greedy path with exclusions.
        let excluded: HashSet<NurseId> = cs.iter().take(3).map(|c| c.nurse_id).collect();
        g.bench_with_input(BenchmarkId::new("best_excluding_3", n), &cs, |b, cs| {
            b.iter(|| best_candidate(black_box(cs), &excluded, now(), &w).map(|c| c.nurse_id))
        });
    }
    g.finish();
}

criterion_group!(benches, scoring);
criterion_main!(benches);
