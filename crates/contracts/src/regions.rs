//! Dispatch regions (sharded dispatch): an order belongs to the coarse H3
//! cell its location falls in, at the configured resolution
//! (`dispatch.region_resolution`). One rule, used by the outbox relay (which
//! region stream an `OrderCreated` goes to) and the dispatcher (which orders
//! a lease holder serves).
//!
//! Why a cell and not the organisation: candidates are found around the
//! order, so a region keeps its work next to its nurses; one large
//! organisation (one hospital for a whole city) would otherwise be one
//! region that cannot be split, and small ones many idle ones.

use h3o::{CellIndex, LatLng, Resolution};
use yixin_domain::GeoPoint;

/// Coarsest and finest resolutions a region may have: 0 (a continent) to 7
/// (about 5 km², the dashboard's cells; finer would split a search radius
/// over many leases).
pub const REGION_RESOLUTIONS: std::ops::RangeInclusive<u8> = 0..=7;

/// The region of `point` at `resolution` (the H3 cell as its hex string);
/// `None` if the resolution is out of [`REGION_RESOLUTIONS`].
pub fn region_of(point: GeoPoint, resolution: u8) -> Option<String> {
    if !REGION_RESOLUTIONS.contains(&resolution) {
        return None;
    }
    let res = Resolution::try_from(resolution).ok()?;
    let ll = LatLng::new(point.lat(), point.lng()).ok()?;
    Some(ll.to_cell(res).to_string())
}

/// Whether `region` names an H3 cell of `resolution` (a configured region list).
pub fn is_region(region: &str, resolution: u8) -> bool {
    region
        .parse::<CellIndex>()
        .is_ok_and(|c| u8::from(c.resolution()) == resolution)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::new(lat, lng).unwrap()
    }

    #[test]
    fn nearby_points_share_a_region_and_distant_ones_do_not() {
        let a = region_of(at(29.39, 106.32), 4).unwrap();
        assert_eq!(region_of(at(29.391, 106.321), 4).unwrap(), a);
        // Chengdu, 270 km away.
        assert_ne!(region_of(at(30.66, 104.06), 4).unwrap(), a);
        assert!(is_region(&a, 4));
        assert!(!is_region(&a, 5));
        assert!(!is_region("nonsense", 4));
    }

    #[test]
    fn a_region_contains_its_points_at_every_resolution() {
        let p = at(29.39, 106.32);
        for res in REGION_RESOLUTIONS {
            let region = region_of(p, res).unwrap();
            let cell: CellIndex = region.parse().unwrap();
            assert_eq!(u8::from(cell.resolution()), res);
            let ll = LatLng::new(p.lat(), p.lng()).unwrap();
            assert_eq!(ll.to_cell(cell.resolution()), cell);
        }
        assert_eq!(region_of(p, 8), None);
    }
}
