//! The index against a linear scan: same keys, same order, same distances.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use h3o::{CellIndex, LatLng, Resolution};
use proptest::prelude::*;
use uuid::Uuid;
use yixin_domain::{GeoPoint, NurseId};
use yixin_geo::{GeoIndex, IndexConfig, Neighbour};

type Model = HashMap<NurseId, (GeoPoint, u64)>;

fn p(lat: f64, lng: f64) -> GeoPoint {
    GeoPoint::new(lat.clamp(-90.0, 90.0), lng.clamp(-180.0, 180.0)).unwrap()
}

fn nurse(n: u16) -> NurseId {
    // Spread the id bits so key order differs from insertion order.
    NurseId(Uuid::from_u128(
        u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
    ))
}

/// What a linear scan says: filter by pred and radius, order by distance then key.
fn brute(
    model: &Model,
    from: GeoPoint,
    k: usize,
    radius: f64,
    mut pred: impl FnMut(&NurseId, u64) -> bool,
) -> Vec<(NurseId, f64, u64, GeoPoint)> {
    let mut v: Vec<_> = model
        .iter()
        .filter(|(key, (_, tag))| pred(key, *tag))
        .map(|(key, (pt, tag))| (*key, from.distance_m(pt), *tag, *pt))
        .filter(|(_, d, _, _)| *d <= radius)
        .collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    v.truncate(k);
    v
}

fn assert_same(got: &[Neighbour<NurseId>], want: &[(NurseId, f64, u64, GeoPoint)], what: &str) {
    let gk: Vec<_> = got.iter().map(|n| n.key).collect();
    let wk: Vec<_> = want.iter().map(|w| w.0).collect();
    assert_eq!(gk, wk, "{what}: keys differ");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g.distance_m - w.1).abs() <= 1e-9,
            "{what}: {} vs {}",
            g.distance_m,
            w.1
        );
        assert_eq!((g.tag, g.point), (w.2, w.3), "{what}");
    }
}

fn pentagon_centres() -> Vec<(f64, f64)> {
    Resolution::Nine
        .pentagons()
        .map(|c| {
            let ll = LatLng::from(c);
            (ll.lat(), ll.lng())
        })
        .collect()
}

/// City-scale around Jiangjin, tight clusters, exact duplicates, anywhere,
/// near pentagons, the poles and the antimeridian.
fn point() -> impl Strategy<Value = GeoPoint> {
    let pentagons = pentagon_centres();
    let dup = [(29.3, 106.25), (29.31, 106.26), (29.3001, 106.2501)];
    prop_oneof![
        4 => (29.21f64..29.39, 106.15f64..106.35).prop_map(|(a, b)| p(a, b)),
        3 => (0usize..3, -0.002f64..0.002, -0.002f64..0.002)
            .prop_map(move |(i, dy, dx)| p(dup[i].0 + dy, dup[i].1 + dx)),
        2 => (0usize..3).prop_map(move |i| p(dup[i].0, dup[i].1)),
        1 => (-90.0f64..=90.0, -180.0f64..=180.0).prop_map(|(a, b)| p(a, b)),
        1 => (0usize..12, -0.02f64..0.02, -0.02f64..0.02)
            .prop_map(move |(i, dy, dx)| p(pentagons[i].0 + dy, pentagons[i].1 + dx)),
        1 => (89.97f64..=90.0, -180.0f64..=180.0).prop_map(|(a, b)| p(a, b)),
        1 => (-0.01f64..0.01, prop_oneof![179.98f64..=180.0, -180.0f64..-179.98])
            .prop_map(|(a, b)| p(a, b)),
    ]
}

fn radius() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        0.0f64..300.0,
        0.0f64..3_000.0,
        0.0f64..30_000.0,
        1e6f64..2.1e7,
        Just(f64::INFINITY),
    ]
}

fn resolution() -> impl Strategy<Value = Resolution> {
    prop_oneof![
        Just(Resolution::Zero),
        Just(Resolution::Three),
        Just(Resolution::Six),
        Just(Resolution::Seven),
        Just(Resolution::Eight),
        Just(Resolution::Nine),
        Just(Resolution::Nine),
        Just(Resolution::Ten),
        Just(Resolution::Twelve),
        Just(Resolution::Fifteen),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Upsert(u16, GeoPoint, u64),
    Remove(u16),
    SetTag(u16, u64),
    Query {
        from: GeoPoint,
        k: usize,
        radius: f64,
        mask: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0u16..48, point(), 0u64..16).prop_map(|(k, pt, t)| Step::Upsert(k, pt, t)),
        1 => (0u16..48).prop_map(Step::Remove),
        1 => (0u16..48, 0u64..16).prop_map(|(k, t)| Step::SetTag(k, t)),
        2 => (point(), 0usize..25, radius(), prop_oneof![Just(0u64), 0u64..16])
            .prop_map(|(from, k, radius, mask)| Step::Query { from, k, radius, mask }),
    ]
}

fn check_state(idx: &GeoIndex<NurseId>, model: &Model) {
    assert_eq!(idx.len(), model.len());
    for (key, v) in model {
        assert_eq!(idx.get(key), Some(*v));
        let (pt, _) = v;
        let cell = LatLng::new(pt.lat(), pt.lng())
            .unwrap()
            .to_cell(idx.resolution());
        assert_eq!(idx.cell_of(key), Some(cell));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn matches_a_linear_scan(res in resolution(), steps in prop::collection::vec(step(), 1..160)) {
        let mut idx = GeoIndex::new(IndexConfig { resolution: res });
        let mut model = Model::new();
        for s in steps {
            match s {
                Step::Upsert(k, pt, t) => {
                    idx.upsert(nurse(k), pt, t);
                    model.insert(nurse(k), (pt, t));
                }
                Step::Remove(k) => {
                    prop_assert_eq!(idx.remove(&nurse(k)), model.remove(&nurse(k)).map(|v| v.0));
                }
                Step::SetTag(k, t) => {
                    let present = model.get_mut(&nurse(k)).map(|v| v.1 = t).is_some();
                    prop_assert_eq!(idx.set_tag(&nurse(k), t), present);
                }
                Step::Query { from, k, radius, mask } => {
                    let pred = |_: &NurseId, tag: u64| tag & mask == mask;
                    let got = idx.nearest(from, k, radius, pred);
                    assert_same(&got, &brute(&model, from, k, radius, pred), "nearest");
                    let got = idx.within(from, radius, pred);
                    assert_same(&got, &brute(&model, from, usize::MAX, radius, pred), "within");
                }
            }
        }
        check_state(&idx, &model);
        let coarse = Resolution::Four;
        let mut want: HashMap<CellIndex, usize> = HashMap::new();
        for (pt, tag) in model.values() {
            if tag & 1 == 1 {
                // H3 parents are not exact geometric containers: the index
                // aggregates by parent of the entry's cell, as H3 roll-ups do.
                let cell = LatLng::new(pt.lat(), pt.lng()).unwrap().to_cell(res);
                let parent = cell.parent(coarse).unwrap_or_else(|| {
                    LatLng::new(pt.lat(), pt.lng()).unwrap().to_cell(coarse)
                });
                *want.entry(parent).or_default() += 1;
            }
        }
        let mut want: Vec<_> = want.into_iter().collect();
        want.sort_unstable();
        prop_assert_eq!(idx.counts_by_cell(coarse, |_, t| t & 1 == 1), want);
    }
}

/// Tiny deterministic generator for the larger fixed-seed scenarios.
struct XorShift(u64);

impl XorShift {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn city_point(&mut self) -> GeoPoint {
        // ~20 km x 20 km around Jiangjin.
        p(
            29.21 + 0.18 * self.next_f64(),
            106.147 + 0.206 * self.next_f64(),
        )
    }
}

/// City-sized fleets at the resolutions worth using, with moves and removals,
/// queried like the dispatcher does.
#[test]
fn city_fleet_matches_a_linear_scan() {
    for res in [Resolution::Eight, Resolution::Nine, Resolution::Ten] {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d ^ u64::from(u8::from(res)));
        let mut idx = GeoIndex::new(IndexConfig { resolution: res });
        let mut model = Model::new();
        for n in 0..8000u16 {
            let pt = rng.city_point();
            let tag = (rng.next_f64() * 1024.0) as u64;
            idx.upsert(nurse(n), pt, tag);
            model.insert(nurse(n), (pt, tag));
        }
        for n in 0..2000u16 {
            let key = nurse((rng.next_f64() * 8000.0) as u16);
            if n % 5 == 0 {
                assert_eq!(idx.remove(&key), model.remove(&key).map(|v| v.0));
            } else {
                // A short drive, sometimes across a cell edge.
                let (lat, lng) = model
                    .get(&key)
                    .map_or((29.3, 106.25), |v| (v.0.lat(), v.0.lng()));
                let pt = p(
                    lat + (rng.next_f64() - 0.5) * 0.01,
                    lng + (rng.next_f64() - 0.5) * 0.01,
                );
                let tag = u64::from(n) * 7;
                idx.upsert(key, pt, tag);
                model.insert(key, (pt, tag));
            }
        }
        check_state(&idx, &model);
        for _ in 0..200 {
            let q = rng.city_point();
            let all = |_: &NurseId, _| true;
            let one_in_four = |_: &NurseId, t: u64| t & 3 == 0;
            // Rare enough that the search switches to rings of grandparents.
            let rare = |_: &NurseId, t: u64| t & 255 == 7;
            for k in [1, 10, 50] {
                assert_same(
                    &idx.nearest(q, k, f64::INFINITY, rare),
                    &brute(&model, q, k, f64::INFINITY, rare),
                    "k rare",
                );
                assert_same(
                    &idx.nearest(q, k, 20_000.0, all),
                    &brute(&model, q, k, 20_000.0, all),
                    "k",
                );
                assert_same(
                    &idx.nearest(q, k, 1_500.0, one_in_four),
                    &brute(&model, q, k, 1_500.0, one_in_four),
                    "k 1/4",
                );
            }
            assert_same(
                &idx.within(q, 800.0, all),
                &brute(&model, q, usize::MAX, 800.0, all),
                "within",
            );
        }
    }
}

/// The budget: at most 128 bytes per nurse at 100k nurses (16-byte keys).
#[test]
fn memory_at_100k_nurses() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let pts: Vec<GeoPoint> = (0..100_000).map(|_| rng.city_point()).collect();
    for presized in [false, true] {
        let config = IndexConfig::default();
        let mut idx = if presized {
            GeoIndex::with_capacity(config, pts.len())
        } else {
            GeoIndex::new(config)
        };
        for (i, pt) in (0u128..).zip(&pts) {
            idx.upsert(NurseId(Uuid::from_u128(i)), *pt, 0);
        }
        let per = idx.memory_bytes() as f64 / pts.len() as f64;
        assert!(
            per <= 128.0,
            "presized={presized}: {per:.1} bytes per nurse"
        );
    }
}
