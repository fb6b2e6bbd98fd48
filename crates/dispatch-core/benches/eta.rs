//! Travel-time estimates: the straight-line model the dispatcher and the
//! simulator use, per trip and per candidate list, with and without a
//! per-area override (the area lookup is a point-in-polygon test).
//!
//! `cargo bench -p yixin-dispatch-core --bench eta`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use yixin_dispatch_core::eta::{EtaSettings, StraightLineEta};
use yixin_domain::{GeoPoint, OrgId, ServiceArea};

/// xorshift: tiny, seeded.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A point in the Shuangfu demo area.
fn point(rng: &mut Rng) -> GeoPoint {
    GeoPoint::new(29.37 + 0.05 * rng.unit(), 106.29 + 0.05 * rng.unit()).unwrap()
}

fn eta(c: &mut Criterion) {
    let mut rng = Rng(11);
    let to = point(&mut rng);
    let plain = StraightLineEta::new(EtaSettings::default());
    let area = ServiceArea::shuangfu_demo(OrgId::new("demo"));
    let slow = EtaSettings::new(1.5, 18.0, 90).unwrap();
    let per_area = StraightLineEta::with_area_overrides(EtaSettings::default(), [(area, slow)]);
    let settings = EtaSettings::default();
    let one = point(&mut rng);
    c.bench_function("eta/one_trip", |b| {
        b.iter(|| settings.eta(black_box(&one), black_box(&to)))
    });
    let mut g = c.benchmark_group("eta/candidates");
    for n in [20usize, 1_000] {
        let from: Vec<GeoPoint> = (0..n).map(|_| point(&mut rng)).collect();
        g.bench_with_input(BenchmarkId::new("default", n), &from, |b, from| {
            b.iter(|| plain.etas_to(black_box(from), black_box(&to)))
        });
        g.bench_with_input(BenchmarkId::new("area_override", n), &from, |b, from| {
            b.iter(|| per_area.etas_to(black_box(from), black_box(&to)))
        });
    }
    g.finish();
}

criterion_group!(benches, eta);
criterion_main!(benches);
