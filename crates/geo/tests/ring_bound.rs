//! Measures, over the globe, the two H3 figures the ring search's stopping
//! rule relies on, and checks the figures in `geometry.rs` stay below /
//! above them with room to spare. See `src/geometry.rs` for the argument.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use h3o::{CellIndex, LatLng, Resolution};
use yixin_domain::GeoPoint;
use yixin_geo::{haversine_m, ring_geometry};

fn gp(ll: LatLng) -> GeoPoint {
    GeoPoint::new(ll.lat(), ll.lng()).unwrap()
}

fn dist(a: LatLng, b: LatLng) -> f64 {
    haversine_m(&gp(a), &gp(b))
}

struct XorShift(u64);

impl XorShift {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform on the sphere.
    fn anywhere(&mut self) -> LatLng {
        let z = 2.0 * self.next_f64() - 1.0;
        LatLng::new(z.asin().to_degrees(), 360.0 * self.next_f64() - 180.0).unwrap()
    }
}

/// Largest distance from a cell's centre to its boundary vertices.
fn circumradius(cell: CellIndex) -> f64 {
    let c = LatLng::from(cell);
    cell.boundary()
        .iter()
        .map(|v| dist(c, *v))
        .fold(0.0, f64::max)
}

/// Ring indexes worth measuring: every small one, then a spread up to the cap.
fn rings(max: u32) -> impl Iterator<Item = u32> {
    (1..=12)
        .chain([16, 24, 32, 48, 64, 96, 128])
        .filter(move |&m| m <= max)
}

#[test]
fn stopping_rule_figures_hold_over_the_globe() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut report = Vec::new();
    for r in 0..=15u8 {
        let res = Resolution::try_from(r).unwrap();
        let geom = ring_geometry(res);
        let edge = res.edge_length_m();
        // Random origins measured out to the ring cap, plus the
        // neighbourhood of every pentagon (where cells are smallest and most
        // distorted: a 40k-origin run found the minimum step, 1.052 edges,
        // a few rings from one) measured over small rings. Every cell at
        // the coarsest two resolutions.
        let random: Vec<(CellIndex, u32)> = (0..120)
            .map(|_| (rng.anywhere().to_cell(res), geom.max_rings))
            .collect();
        let mut origins = random;
        for pent in res.pentagons() {
            origins.extend(pent.grid_disk::<Vec<_>>(6).into_iter().map(|c| (c, 6)));
        }
        if r <= 1 {
            origins.extend(
                CellIndex::base_cells()
                    .flat_map(|b| b.children(res))
                    .map(|c| (c, 6)),
            );
        }
        let mut min_step = f64::INFINITY;
        let mut max_radius: f64 = 0.0;
        for &(o, max_ring) in &origins {
            let oc = LatLng::from(o);
            max_radius = max_radius.max(circumradius(o));
            for m in rings(geom.max_rings.min(max_ring)) {
                let Some(ring) = o.grid_ring_fast(m).collect::<Option<Vec<_>>>() else {
                    break; // The index falls back to a full scan here too.
                };
                for c in ring {
                    let cc = LatLng::from(c);
                    min_step = min_step.min(dist(oc, cc) / f64::from(m));
                    if m <= 3 {
                        max_radius = max_radius.max(circumradius(c));
                    }
                }
            }
        }
        report.push(format!(
            "res {r:2}: step >= {:.3} edge (rule {:.2}), radius <= {:.3} edge (rule {:.2}), max rings {}",
            min_step / edge,
            geom.step_m / edge,
            max_radius / edge,
            geom.cell_radius_m / edge,
            geom.max_rings,
        ));
        assert!(
            geom.step_m <= 0.9 * min_step || geom.max_rings == 0,
            "{}",
            report.join("\n")
        );
        assert!(
            geom.cell_radius_m >= 1.1 * max_radius,
            "{}",
            report.join("\n")
        );
    }
    println!("{}", report.join("\n"));
}

/// The bound itself, end to end: from random query points, no vertex of any
/// cell n rings out is closer than `beyond_ring_m(n, d0)`.
#[test]
fn no_cell_beyond_ring_n_is_closer_than_the_bound() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for res in [
        Resolution::Seven,
        Resolution::Eight,
        Resolution::Nine,
        Resolution::Ten,
    ] {
        let geom = ring_geometry(res);
        for i in 0..300 {
            let q = if i % 2 == 0 {
                rng.anywhere()
            } else {
                // Jiangjin.
                LatLng::new(29.21 + 0.18 * rng.next_f64(), 106.15 + 0.2 * rng.next_f64()).unwrap()
            };
            let c0 = q.to_cell(res);
            let d0 = dist(q, LatLng::from(c0));
            for n in 1..=6 {
                let Some(ring) = c0.grid_ring_fast(n).collect::<Option<Vec<_>>>() else {
                    break;
                };
                let bound = geom.beyond_ring_m(n, d0);
                for c in ring {
                    for v in c.boundary().iter() {
                        assert!(dist(q, *v) >= bound, "{res} n={n}");
                    }
                }
            }
        }
    }
}

/// The coarse walk's premises: every point of a cell lies in its H3
/// grandparent or one of the grandparent's neighbours (H3 parents do not
/// exactly cover their children, but the overhang is far less than a cell),
/// and within `grandchild_radius_m` of the grandparent's centre.
#[test]
fn descendants_stay_within_the_grandparents_one_ring() {
    let mut rng = XorShift(0x5851_f42d_4c95_7f2d);
    let samples: usize = std::env::var("RING_BOUND_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let mut failures = 0;
    let mut worst_overhang: f64 = 0.0;
    for r in 2..=15u8 {
        let res = Resolution::try_from(r).unwrap();
        let coarse = Resolution::try_from(r - 2).unwrap();
        let mut cells: Vec<CellIndex> = (0..samples).map(|_| rng.anywhere().to_cell(res)).collect();
        for pent in res.pentagons() {
            cells.extend(pent.grid_disk::<Vec<_>>(3));
        }
        // Cells along the edges of coarse cells are where overhang happens.
        for _ in 0..samples / 10 {
            let parent = rng.anywhere().to_cell(coarse);
            cells.extend(parent.children(res).filter(|_| rng.next_f64() < 0.3));
        }
        for cell in cells {
            let grandparent = cell.parent(coarse).unwrap();
            let allowed: Vec<CellIndex> = grandparent.grid_disk(1);
            let c = LatLng::from(cell);
            let gc = LatLng::from(grandparent);
            for v in cell.boundary().iter() {
                worst_overhang = worst_overhang.max(dist(gc, *v) / coarse.edge_length_m());
            }
            let mut probes = vec![c];
            for v in cell.boundary().iter() {
                probes.push(*v);
                // Just inside the vertex, and halfway.
                // (Skipped across the antimeridian, where averaging degrees misleads.)
                if (v.lng() - c.lng()).abs() < 180.0 {
                    for t in [0.5, 0.99] {
                        let lat = c.lat() + t * (v.lat() - c.lat());
                        let lng = c.lng() + t * (v.lng() - c.lng());
                        probes.push(LatLng::new(lat, lng).unwrap());
                    }
                }
            }
            for p in probes {
                let holder = p.to_cell(coarse);
                if !allowed.contains(&holder) {
                    failures += 1;
                    println!(
                        "res {r}: {cell}'s point {p:?} is in {holder}, grandparent {grandparent}"
                    );
                }
            }
        }
    }
    assert_eq!(failures, 0);
    // And the grandchild radius the coarse walk prunes with.
    println!("grandchildren reach {worst_overhang:.3} edges from the grandparent's centre");
    let factor =
        ring_geometry(Resolution::Nine).grandchild_radius_m / Resolution::Nine.edge_length_m();
    assert!(factor >= 1.1 * worst_overhang, "{worst_overhang}");
}
