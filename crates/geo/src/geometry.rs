//! Conservative H3 geometry figures behind the ring search's stopping rule.
//!
//! For a query point `q` in cell `c0` (centre `o`, `d0 = |q o|`), every point
//! `p` in a cell at grid distance ≥ n satisfies
//!
//! ```text
//! |q p| ≥ n·step − d0 − radius
//! ```
//!
//! Why: the shortest path from `q` to `p` starts in `c0` and ends at distance
//! ≥ n; consecutive cells along it share a boundary, so they are neighbours
//! and the grid distance changes by at most one per crossing. The path
//! therefore enters some cell `c` at distance exactly n, at a point `x`, and
//! `|q p| ≥ |q x| ≥ |o c̄| − d0 − |c̄ x| ≥ n·step − d0 − radius`, where `c̄` is
//! `c`'s centre, `step` bounds from below `|o c̄| / n` for cells n rings apart
//! and `radius` bounds from above the distance from a cell's centre to any
//! point of it (its farthest vertex: cells are convex).
//!
//! Both figures are scaled from [`h3o::Resolution::edge_length_m`] (the mean
//! hexagon edge). Measured over the globe (every cell at resolutions 2–3;
//! 40k random origins and the 12-ring neighbourhood of every pentagon at
//! resolutions 4, 5, 8, 9, 10; rings 1–6), `|o c̄| / n` never dropped below
//! 1.052 × edge (near pentagons, at odd resolutions) and the centre-to-vertex
//! distance never exceeded 1.102 × edge. We use 0.90 and 1.25: 14 % and 12 %
//! of headroom. `tests/ring_bound.rs` re-measures a lighter sample on every
//! run, all 16 resolutions, rings out to the cap, and checks the bound end
//! to end against cell vertices. The rule is applied only while
//! n × edge ≤ [`MAX_RING_SPAN_M`] (and n ≤ [`MAX_RINGS`]), so the sphere's
//! curvature stays a sub-percent effect; beyond that the index scans every
//! bucket instead. Pentagons need no figure of their own: a ring walk that
//! meets one fails, and the search then scans every bucket.
//!
//! The coarse walk (rings of grandparents, two resolutions up) uses the same
//! rule at the coarse resolution with `n − 1`: a bucket whose grandparent is
//! n coarse rings out lies within the 1-ring of that grandparent (H3
//! children overhang their parent, but by far less than a cell), so its
//! points are in coarse cells at least n − 1 rings out. Whole grandparents
//! are pruned with [`GRANDCHILD_RADIUS_FACTOR`]. `tests/ring_bound.rs`
//! checks both premises at resolutions 2–15 (zero exceptions in 20k random
//! cells per resolution plus pentagon neighbourhoods).

use h3o::Resolution;

/// Lower bound on centre distance per ring step, in mean edge lengths.
pub const STEP_FACTOR: f64 = 0.90;
/// Upper bound on centre-to-any-point distance within a cell, in mean edge lengths.
pub const RADIUS_FACTOR: f64 = 1.25;
/// Upper bound on the distance from a cell's centre to any point of any of
/// its grandchildren (H3 children overhang their parent slightly), in the
/// cell's mean edge lengths. Measured: 1.135; see `tests/ring_bound.rs`.
pub const GRANDCHILD_RADIUS_FACTOR: f64 = 1.30;
/// Ring walks stop (falling back to a full scan) past this distance in mean edges × rings.
pub const MAX_RING_SPAN_M: f64 = 1_000_000.0;
/// Hard cap on ring index, matching what `tests/ring_bound.rs` measures.
pub const MAX_RINGS: u32 = 128;

/// The per-resolution figures used by the stopping rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RingGeometry {
    /// Lower bound on `|o c̄| / n` for cells n ≥ 1 rings apart, metres.
    pub step_m: f64,
    /// Upper bound on the distance from a cell's centre to any of its points, metres.
    pub cell_radius_m: f64,
    /// Largest ring index the rule is trusted for at this resolution.
    pub max_rings: u32,
    /// Upper bound on the distance from a cell's centre to any point of any
    /// of its grandchildren, metres.
    pub grandchild_radius_m: f64,
}

/// The stopping-rule figures for `res`.
pub fn ring_geometry(res: Resolution) -> RingGeometry {
    let edge = res.edge_length_m();
    // Truncation is intended: a whole number of rings within the span.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let by_span = (MAX_RING_SPAN_M / edge) as u32;
    RingGeometry {
        step_m: STEP_FACTOR * edge,
        cell_radius_m: RADIUS_FACTOR * edge,
        max_rings: by_span.min(MAX_RINGS),
        grandchild_radius_m: GRANDCHILD_RADIUS_FACTOR * edge,
    }
}

impl RingGeometry {
    /// Lower bound on the distance from the query to any point of any cell at
    /// grid distance ≥ `n` from the query's cell, given `d0`, the query's
    /// distance to its cell's centre. Meaningful for `n ≥ 1`; may be negative.
    #[inline]
    pub fn beyond_ring_m(&self, n: u32, d0: f64) -> f64 {
        f64::from(n) * self.step_m - d0 - self.cell_radius_m
    }
}
