//! Great-circle distance, bit-identical to `GeoPoint::distance_m`.

use std::f64::consts::{FRAC_PI_2, PI};

use yixin_domain::GeoPoint;

/// Mean Earth radius used by `geo::Haversine` (GRS80 mean radius), and so by
/// `GeoPoint::distance_m`.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle (haversine) distance in metres.
///
/// The same formula, operation order and radius as `GeoPoint::distance_m`
/// (`geo::Haversine`), so both give the same bits; a property test checks it.
/// The index orders by this value, so callers comparing against either get
/// identical orderings.
#[inline]
pub fn haversine_m(a: &GeoPoint, b: &GeoPoint) -> f64 {
    Origin::new(a).distance_m(b.lat(), b.lng())
}

/// A query point with the per-query parts of the haversine formula hoisted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    lat: f64,
    lng: f64,
    /// `cos(lat)`, computed exactly as geo computes it.
    cos_lat: f64,
    /// `sin(lat)`, for the cheap bounds only.
    sin_lat: f64,
}

impl Origin {
    /// `cos` of the origin's latitude.
    #[inline]
    pub(crate) fn cos_lat(&self) -> f64 {
        self.cos_lat
    }

    pub(crate) fn new(p: &GeoPoint) -> Self {
        let theta = p.lat().to_radians();
        Self {
            lat: p.lat(),
            lng: p.lng(),
            cos_lat: theta.cos(),
            sin_lat: theta.sin(),
        }
    }

    /// Haversine distance from this origin to `(lat, lng)`.
    ///
    /// Mirrors `geo`'s `HaversineMeasure::distance` with origin = `self`
    /// step by step (Rust never fuses or reorders float operations), so the
    /// result is bit-identical to `GeoPoint::distance_m`.
    #[inline]
    pub(crate) fn distance_m(&self, lat: f64, lng: f64) -> f64 {
        let theta2 = lat.to_radians();
        let delta_theta = (lat - self.lat).to_radians();
        let delta_lambda = (lng - self.lng).to_radians();
        let h = (delta_theta / 2.0).sin().powi(2)
            + self.cos_lat * theta2.cos() * (delta_lambda / 2.0).sin().powi(2);
        EARTH_RADIUS_M * (2.0 * h.sqrt().asin())
    }

    /// Lower and upper bounds on the haversine term `h` of
    /// [`Self::distance_m`] (`d = 2R·asin(√h)`, monotone in `h`), without
    /// trigonometry: a few multiplications instead of three transcendental
    /// calls, so the index can rank and discard candidates cheaply and
    /// compute exact distances only for the few that can make the answer.
    ///
    /// Uses `x − x³/6 ≤ sin x ≤ x` on `[0, π/2]`, and for the other point's
    /// cosine `cos(φ₀ + Δ) = cos φ₀·cos Δ − sin φ₀·sin Δ` with
    /// `1 − Δ²/2 ≤ cos Δ ≤ 1 − Δ²/2 + Δ⁴/24` and `sin Δ` between `Δ` and
    /// `Δ − Δ³/6`; plus slack for rounding (absolute 1e-14 on the cosine,
    /// relative 1e-12 on the upper bound). At city scale both are within
    /// ~1e-7 (relative) of `h`. Callers still compare with margins far above
    /// rounding error.
    #[cfg(test)]
    pub(crate) fn h_bounds(&self, lat: f64, lng: f64) -> (f64, f64) {
        let d = self.deltas(lat, lng);
        (d.lower(self.cos_lat), d.upper(self.cos_lat))
    }

    /// The lower bound of [`Self::h_bounds`] alone.
    #[inline]
    pub(crate) fn h_lower_bound(&self, lat: f64, lng: f64) -> f64 {
        self.deltas(lat, lng).lower(self.cos_lat)
    }

    /// The pieces both bounds share.
    #[inline]
    pub(crate) fn deltas(&self, lat: f64, lng: f64) -> Deltas {
        let dphi = (lat - self.lat).to_radians();
        let dlam = (lng - self.lng).to_radians();
        let a = 0.5 * dphi.abs();
        let b = 0.5 * dlam.abs();
        // sin² is symmetric about π/2; |Δλ|/2 can reach π when longitudes wrap.
        let b = if b > FRAC_PI_2 { PI - b } else { b };
        let dphi2 = dphi * dphi;
        // sin Δ lies between Δ and Δ − Δ³/6, whatever Δ's sign.
        let s1 = self.sin_lat * dphi;
        let s2 = self.sin_lat * (dphi - dphi * dphi2 / 6.0);
        Deltas {
            a,
            b,
            dphi2,
            s_max: s1.max(s2),
            s_min: s1.min(s2),
        }
    }
}

/// Half-angle differences and cosine-bound terms between an origin and a point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deltas {
    a: f64,
    b: f64,
    dphi2: f64,
    s_max: f64,
    s_min: f64,
}

impl Deltas {
    /// Lower bound on `h`.
    #[inline]
    pub(crate) fn lower(&self, cos_lat: f64) -> f64 {
        let (a, b) = (self.a, self.b);
        let sa = a - a * a * a / 6.0;
        let sb = b - b * b * b / 6.0;
        let cos_lb = (cos_lat * (1.0 - 0.5 * self.dphi2) - self.s_max - 1e-14).max(0.0);
        sa * sa + cos_lat * cos_lb * (sb * sb)
    }

    /// Upper bound on `h`.
    #[inline]
    pub(crate) fn upper(&self, cos_lat: f64) -> f64 {
        let cos_d_hi = 1.0 - 0.5 * self.dphi2 + self.dphi2 * self.dphi2 / 24.0;
        let cos_ub = (cos_lat * cos_d_hi - self.s_min + 1e-14).min(1.0);
        (self.a * self.a + cos_lat * cos_ub * (self.b * self.b)) * (1.0 + 1e-12)
    }
}

/// The `h` value at which an entry may still be at distance `d_m` or less,
/// padded by a relative margin: an entry whose lower bound on `h` exceeds
/// this is certainly farther than `d_m`.
///
/// The margin (1e-9 relative) dwarfs the ~1e-15 relative rounding in `h`,
/// its bounds and the conversion to metres, while costing nothing in pruning.
#[inline]
pub(crate) fn h_threshold(d_m: f64) -> f64 {
    let x = d_m / (2.0 * EARTH_RADIUS_M);
    if x.is_nan() || x >= FRAC_PI_2 {
        // Half the circumference or more: nothing can be pruned.
        return f64::INFINITY;
    }
    x.sin().powi(2) * (1.0 + 1e-9)
}

/// The `h` value below which an entry is certainly at distance `d_m` or
/// less (the mirror of [`h_threshold`]).
#[inline]
pub(crate) fn h_surely_within(d_m: f64) -> f64 {
    let x = d_m / (2.0 * EARTH_RADIUS_M);
    if x >= FRAC_PI_2 {
        return f64::INFINITY;
    }
    x.sin().powi(2) * (1.0 - 1e-9)
}

/// An upper bound, in metres, on the distance of an entry whose `h` is at
/// most `h`: `asin x ≤ x / √(1 − x²)` avoids the `asin`.
#[inline]
pub(crate) fn distance_upper_m(h: f64) -> f64 {
    if h >= 0.5 {
        return f64::INFINITY; // A quarter circumference or more: not worth bounding.
    }
    2.0 * EARTH_RADIUS_M * (h / (1.0 - h)).sqrt() * (1.0 + 1e-9)
}

/// A lower bound, in metres, on the distance of an entry whose `h` is at
/// least `h`: `asin x ≥ x`.
#[inline]
pub(crate) fn distance_lower_m(h: f64) -> f64 {
    2.0 * EARTH_RADIUS_M * h.sqrt() * (1.0 - 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn point(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::new(lat, lng).unwrap()
    }

    #[test]
    fn known_distances() {
        let a = point(29.39, 106.32);
        let b = point(29.29, 106.25);
        assert_eq!(haversine_m(&a, &b), a.distance_m(&b));
        assert_eq!(haversine_m(&a, &a), 0.0);
        // A quarter meridian.
        let q = haversine_m(&point(0.0, 0.0), &point(90.0, 0.0));
        assert!((q - EARTH_RADIUS_M * FRAC_PI_2).abs() < 1e-6, "{q}");
    }

    #[test]
    fn threshold_edges() {
        assert_eq!(h_threshold(0.0), 0.0);
        assert_eq!(h_threshold(f64::INFINITY), f64::INFINITY);
        assert_eq!(h_threshold(30_000_000.0), f64::INFINITY);
    }

    fn near(base: (f64, f64), spread: f64) -> impl Strategy<Value = GeoPoint> {
        (-spread..=spread, -spread..=spread).prop_map(move |(dy, dx)| {
            point(
                (base.0 + dy).clamp(-90.0, 90.0),
                (base.1 + dx).clamp(-180.0, 180.0),
            )
        })
    }

    fn anywhere() -> impl Strategy<Value = GeoPoint> {
        prop_oneof![
            (-90.0f64..=90.0, -180.0f64..=180.0).prop_map(|(a, b)| point(a, b)),
            near((29.3, 106.3), 0.2),
            near((89.99, 0.0), 0.02),
            near((-89.99, 179.99), 0.02),
            near((0.0, 179.999), 0.01),
            Just(point(90.0, 0.0)),
            Just(point(-90.0, 180.0)),
        ]
    }

    proptest! {
        #[test]
        fn bit_identical_to_domain(a in anywhere(), b in anywhere()) {
            use geo::Distance;
            let d = haversine_m(&a, &b);
            prop_assert_eq!(d.to_bits(), a.distance_m(&b).to_bits());
            let reference = geo::Haversine.distance(a.to_point(), b.to_point());
            prop_assert_eq!(d.to_bits(), reference.to_bits());
            prop_assert_eq!(d.to_bits(), haversine_m(&b, &a).to_bits());
        }

        #[test]
        fn h_bound_never_prunes_a_closer_point(a in anywhere(), b in anywhere(), c in anywhere()) {
            // Using |ab| as the threshold, a point at |ac| <= |ab| must not be pruned.
            let o = Origin::new(&a);
            let d_ab = haversine_m(&a, &b);
            let d_ac = haversine_m(&a, &c);
            if d_ac <= d_ab {
                prop_assert!(o.h_lower_bound(c.lat(), c.lng()) <= h_threshold(d_ab));
            }
            prop_assert!(o.h_lower_bound(b.lat(), b.lng()) <= h_threshold(d_ab));
        }

        #[test]
        fn bounds_bracket_the_exact_distance(a in anywhere(), b in anywhere()) {
            let o = Origin::new(&a);
            let (lb, ub) = o.h_bounds(b.lat(), b.lng());
            let d = haversine_m(&a, &b);
            prop_assert!(lb <= ub);
            prop_assert!(distance_lower_m(lb) <= d, "{} > {d}", distance_lower_m(lb));
            prop_assert!(distance_upper_m(ub) >= d, "{} < {d}", distance_upper_m(ub));
            // An entry whose upper bound is "surely within" some distance is within it.
            for r in [d, d * (1.0 + 1e-6), d + 1.0, 2.0 * d] {
                if ub <= h_surely_within(r) {
                    prop_assert!(d <= r);
                }
                if lb > h_threshold(r) {
                    prop_assert!(d > r);
                }
            }
        }

        #[test]
        fn bounds_are_tight_at_city_scale(a in near((29.3, 106.25), 0.1), b in near((29.3, 106.25), 0.1)) {
            let o = Origin::new(&a);
            let (lb, ub) = o.h_bounds(b.lat(), b.lng());
            let d = haversine_m(&a, &b);
            // Within a few centimetres over 20 km (mostly the asin bounds).
            prop_assert!(d - distance_lower_m(lb) <= 1e-3 + 1e-5 * d, "{}", d - distance_lower_m(lb));
            prop_assert!(distance_upper_m(ub) - d <= 1e-3 + 1e-5 * d, "{}", distance_upper_m(ub) - d);
            // And h itself within 1e-6 relative.
            let h = (d / (2.0 * EARTH_RADIUS_M)).sin().powi(2);
            prop_assert!(lb >= h * (1.0 - 1e-6) - 1e-300 && ub <= h * (1.0 + 1e-6) + 1e-300, "{lb} {h} {ub}");
        }
    }
}
