//! WGS-84 positions.

use ::geo::{Distance, Haversine, Point};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// A WGS-84 position, always valid: latitude in [-90, 90], longitude in
/// [-180, 180], both finite.
///
/// JSON: `{"lat": 29.39, "lng": 106.32}`; deserialising validates. serde_json's
/// default float parser may land one ULP away from the written value (about
/// 1e-14 degrees, nanometres): compare positions with [`GeoPoint::approx_eq`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawGeoPoint")]
pub struct GeoPoint {
    lat: f64,
    lng: f64,
}

/// The unchecked wire shape of a [`GeoPoint`].
#[derive(Deserialize)]
struct RawGeoPoint {
    lat: f64,
    lng: f64,
}

impl TryFrom<RawGeoPoint> for GeoPoint {
    type Error = DomainError;

    fn try_from(raw: RawGeoPoint) -> Result<Self, Self::Error> {
        GeoPoint::new(raw.lat, raw.lng)
    }
}

impl GeoPoint {
    /// Checks and builds a position; refuses NaN, infinities and out-of-range values.
    pub fn new(lat: f64, lng: f64) -> Result<Self, DomainError> {
        check("lat", lat, 90.0)?;
        check("lng", lng, 180.0)?;
        Ok(Self { lat, lng })
    }

    /// Latitude in degrees.
    pub fn lat(&self) -> f64 {
        self.lat
    }

    /// Longitude in degrees.
    pub fn lng(&self) -> f64 {
        self.lng
    }

    /// Great-circle (haversine) distance in metres.
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        Haversine.distance(self.to_point(), other.to_point())
    }

    /// Same position within 1e-9 degrees (about 0.1 mm), for values that went through text.
    pub fn approx_eq(&self, other: &GeoPoint) -> bool {
        (self.lat - other.lat).abs() <= 1e-9 && (self.lng - other.lng).abs() <= 1e-9
    }

    /// The position as a `geo` point (x = longitude, y = latitude).
    pub fn to_point(&self) -> Point<f64> {
        Point::new(self.lng, self.lat)
    }
}

fn check(field: &'static str, value: f64, bound: f64) -> Result<(), DomainError> {
    // `contains` is false for NaN, and the bounds are finite, so this also refuses ±inf.
    if (-bound..=bound).contains(&value) {
        Ok(())
    } else {
        Err(DomainError::InvalidCoordinate {
            field,
            value,
            min: -bound,
            max: bound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_distance() {
        // Shuangfu to Jiangjin old town: about 12.6 km as the crow flies.
        let a = GeoPoint::new(29.39, 106.32).unwrap();
        let b = GeoPoint::new(29.29, 106.25).unwrap();
        let d = a.distance_m(&b);
        assert!((12_000.0..13_500.0).contains(&d), "{d}");
        assert_eq!(a.distance_m(&a), 0.0);
    }

    #[test]
    fn refuses_bad_values_naming_the_field() {
        for (lat, lng, field) in [
            (f64::NAN, 0.0, "lat"),
            (0.0, f64::NAN, "lng"),
            (f64::INFINITY, 0.0, "lat"),
            (0.0, f64::NEG_INFINITY, "lng"),
            (90.000_001, 0.0, "lat"),
            (0.0, -180.000_001, "lng"),
        ] {
            let e = GeoPoint::new(lat, lng).unwrap_err();
            assert_eq!(e.code(), "invalid_coordinate");
            assert_eq!(e.field(), Some(field));
        }
        assert!(GeoPoint::new(90.0, 180.0).is_ok());
        assert!(GeoPoint::new(-90.0, -180.0).is_ok());
    }

    #[test]
    fn json_shape_and_validation() {
        let p = GeoPoint::new(29.39, 106.32).unwrap();
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            serde_json::json!({"lat": 29.39, "lng": 106.32})
        );
        assert!(serde_json::from_str::<GeoPoint>(r#"{"lat":91,"lng":0}"#).is_err());
        assert!(serde_json::from_str::<GeoPoint>(r#"{"lat":1}"#).is_err());
    }

    /// Any f64 (NaN and infinities included) half the time, values near the bounds the other half.
    fn any_or_near() -> impl Strategy<Value = f64> {
        prop_oneof![
            prop::num::f64::ANY,
            -200.0f64..200.0,
            prop_oneof![Just(90.0), Just(-90.0), Just(180.0), Just(-180.0)],
        ]
    }

    proptest! {
        #[test]
        fn accepts_exactly_the_valid_ranges(lat in any_or_near(), lng in any_or_near()) {
            let valid = lat.is_finite() && lng.is_finite()
                && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng);
            prop_assert_eq!(GeoPoint::new(lat, lng).is_ok(), valid);
        }

        #[test]
        fn accepts_everything_in_range(lat in -90.0f64..=90.0, lng in -180.0f64..=180.0) {
            let p = GeoPoint::new(lat, lng).unwrap();
            prop_assert_eq!((p.lat(), p.lng()), (lat, lng));
        }

        #[test]
        fn serde_round_trip(lat in -90.0f64..=90.0, lng in -180.0f64..=180.0) {
            let p = GeoPoint::new(lat, lng).unwrap();
            let back: GeoPoint = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            prop_assert!(back.approx_eq(&p), "{back:?} != {p:?}");
        }

        #[test]
        fn distance_is_symmetric_and_non_negative(
            a in (-90.0f64..=90.0, -180.0f64..=180.0),
            b in (-90.0f64..=90.0, -180.0f64..=180.0),
        ) {
            let a = GeoPoint::new(a.0, a.1).unwrap();
            let b = GeoPoint::new(b.0, b.1).unwrap();
            let d = a.distance_m(&b);
            prop_assert!(d >= 0.0);
            prop_assert!((d - b.distance_m(&a)).abs() < 1e-6);
            // Never more than half the circumference.
            prop_assert!(d <= 20_100_000.0);
        }
    }
}
