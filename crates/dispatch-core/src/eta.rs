//! Travel-time estimates from nurses to an order: the `EtaEstimator` port and
//! its estimators.
//!
//! The dispatch shape is many nurses to one order, so the port takes a batch
//! of origins and one destination and answers one entry per origin, in order.
//! An entry is `None` when the estimator knows there is no route (OSRM answers
//! `null` for a point snapped to a disconnected piece of road): that nurse is
//! simply not a candidate for this order. We use `Option` rather than a large
//! sentinel so an unreachable nurse can never sneak into a ranking or an
//! assignment as "very late".
//!
//! - [`StraightLineEta`], the default: haversine distance × detour factor ÷
//!   speed + a fixed overhead, with per-service-area settings. Pure and cheap
//!   (the batch matcher needs tens of thousands per window), so it also has a
//!   sync fast path, [`StraightLineEta::eta`].
//! - [`FallbackEta`]: a primary estimator, falling back to another (typically
//!   straight-line) when the primary fails, so an OSRM outage degrades ETAs
//!   instead of stopping dispatch.
//!
//! The road-network estimator (OSRM over HTTP) lives in the dispatcher,
//! which does the I/O.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use yixin_domain::{AreaId, GeoPoint, ServiceArea};

use crate::settings::InvalidSettings;

/// A predicted trip: door-to-door seconds and road metres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Eta {
    /// Travel time plus the fixed overhead (parking, stairs), in seconds.
    pub seconds: u32,
    /// Distance travelled, in metres.
    pub distance_m: u32,
}

/// Why an estimator could not answer; the dispatcher may fall back to
/// another estimator (see [`FallbackEta`]).
#[derive(Debug, thiserror::Error)]
pub enum EtaError {
    /// The service did not answer within the configured timeout.
    #[error("eta service did not answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    /// Connection refused, reset, DNS failure and the like (the HTTP
    /// client's error, boxed: this crate knows no HTTP client).
    #[error("eta service unreachable: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An HTTP error status without a service error code in the body.
    #[error("eta service answered HTTP {status}")]
    Status { status: u16 },
    /// The service answered with an error code (OSRM: anything but `"Ok"`).
    #[error("eta service refused the request: {code}: {message}")]
    Service { code: String, message: String },
    /// The body is not the expected shape (not JSON, wrong dimensions, negative values).
    #[error("malformed eta response: {0}")]
    Malformed(String),
}

/// Estimates trips from many nurses to one order.
#[async_trait]
pub trait EtaEstimator: Send + Sync {
    /// One entry per `from` position, in the same order; `None` when there is
    /// no route from that position to `to`.
    async fn etas(&self, from: &[GeoPoint], to: GeoPoint) -> Result<Vec<Option<Eta>>, EtaError>;
}

#[async_trait]
impl<T: EtaEstimator + ?Sized> EtaEstimator for Arc<T> {
    async fn etas(&self, from: &[GeoPoint], to: GeoPoint) -> Result<Vec<Option<Eta>>, EtaError> {
        (**self).etas(from, to).await
    }
}

// ---------------------------------------------------------------------------
// Straight line

/// The straight-line model: `overhead + haversine × detour_factor ÷ speed`.
///
/// Defaults suit the Shuangfu demo district (Jiangjin, Chongqing): nurses ride
/// e-scooters, and 25 km/h is the legal top speed of an electric bicycle in
/// China (GB 17761-2018). Hills, lights and traffic make the true average
/// lower, but the detour factor (1.4: roads on a hillside wind well beyond the
/// usual ~1.3 of a flat grid) already stretches the distance, and the fixed
/// 60 s covers parking, finding the building and the stairs. Calibrate per area
/// against the location trail once there is one.
///
/// JSON/TOML: `{"detour_factor": 1.4, "speed_kmh": 25.0, "fixed_overhead_s": 60}`,
/// every field optional (defaults above); deserialising validates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawEtaSettings")]
pub struct EtaSettings {
    /// Road distance ÷ straight-line distance, at least 1.
    pub detour_factor: f64,
    /// Average speed on the road, km/h, greater than 0.
    pub speed_kmh: f64,
    /// Added to every trip: parking, building entrance, stairs.
    pub fixed_overhead_s: u32,
}

impl Default for EtaSettings {
    fn default() -> Self {
        Self {
            detour_factor: 1.4,
            speed_kmh: 25.0,
            fixed_overhead_s: 60,
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawEtaSettings {
    detour_factor: f64,
    speed_kmh: f64,
    fixed_overhead_s: u32,
}

impl Default for RawEtaSettings {
    fn default() -> Self {
        let d = EtaSettings::default();
        Self {
            detour_factor: d.detour_factor,
            speed_kmh: d.speed_kmh,
            fixed_overhead_s: d.fixed_overhead_s,
        }
    }
}

impl TryFrom<RawEtaSettings> for EtaSettings {
    type Error = InvalidSettings;

    fn try_from(r: RawEtaSettings) -> Result<Self, Self::Error> {
        EtaSettings::new(r.detour_factor, r.speed_kmh, r.fixed_overhead_s)
    }
}

/// Fastest plausible average speed; beyond this a value is a unit mistake (m/s, mph…).
const MAX_SPEED_KMH: f64 = 200.0;

impl EtaSettings {
    /// Checks: `detour_factor` finite and ≥ 1; `speed_kmh` finite, > 0 and at
    /// most 200 (a larger value is a unit mistake).
    pub fn new(
        detour_factor: f64,
        speed_kmh: f64,
        fixed_overhead_s: u32,
    ) -> Result<Self, InvalidSettings> {
        // Written so that NaN fails too.
        if !(detour_factor.is_finite() && detour_factor >= 1.0) {
            return Err(InvalidSettings::new(
                "detour_factor",
                format!("must be a finite number ≥ 1, got {detour_factor}"),
            ));
        }
        if !(speed_kmh > 0.0 && speed_kmh <= MAX_SPEED_KMH) {
            return Err(InvalidSettings::new(
                "speed_kmh",
                format!("must be > 0 and ≤ {MAX_SPEED_KMH}, got {speed_kmh}"),
            ));
        }
        Ok(Self {
            detour_factor,
            speed_kmh,
            fixed_overhead_s,
        })
    }

    /// The trip from `from` to `to` under these settings.
    pub fn eta(&self, from: &GeoPoint, to: &GeoPoint) -> Eta {
        let road_m = from.distance_m(to) * self.detour_factor;
        let travel_s = road_m / (self.speed_kmh / 3.6);
        // `as` saturates (and maps NaN to 0), so absurd inputs cannot wrap.
        Eta {
            seconds: (travel_s.ceil() as u32).saturating_add(self.fixed_overhead_s),
            distance_m: road_m.round() as u32,
        }
    }
}

/// Per-area ETA settings as configured: the area by id, resolved against the
/// service areas when the estimator is built ([`StraightLineEta::from_config`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaEtaSettings {
    pub area_id: AreaId,
    pub settings: EtaSettings,
}

/// The straight-line estimator as configured: default settings and per-area overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StraightLineConfig {
    pub default: EtaSettings,
    /// First match wins when areas overlap.
    pub areas: Vec<AreaEtaSettings>,
}

/// The default estimator: straight-line distance, stretched and timed by the
/// [`EtaSettings`] of the service area containing the destination (the
/// order), or the default settings outside every overriding area.
#[derive(Debug, Clone, Default)]
pub struct StraightLineEta {
    default: EtaSettings,
    overrides: Vec<(ServiceArea, EtaSettings)>,
}

impl StraightLineEta {
    /// One set of settings everywhere.
    pub fn new(settings: EtaSettings) -> Self {
        Self {
            default: settings,
            overrides: Vec::new(),
        }
    }

    /// `default`, except for destinations inside one of the areas; the first
    /// area containing the destination wins (boundary counts as inside).
    pub fn with_area_overrides(
        default: EtaSettings,
        overrides: impl IntoIterator<Item = (ServiceArea, EtaSettings)>,
    ) -> Self {
        Self {
            default,
            overrides: overrides.into_iter().collect(),
        }
    }

    /// Builds from configuration; an area id in the configuration that is not
    /// among `areas` is refused (field `areas`), as it is surely a typo.
    pub fn from_config(
        config: &StraightLineConfig,
        areas: &[ServiceArea],
    ) -> Result<Self, InvalidSettings> {
        let mut overrides = Vec::with_capacity(config.areas.len());
        for o in &config.areas {
            let area = areas.iter().find(|a| a.id == o.area_id).ok_or_else(|| {
                InvalidSettings::new("areas", format!("unknown service area {}", o.area_id))
            })?;
            overrides.push((area.clone(), o.settings));
        }
        Ok(Self::with_area_overrides(config.default, overrides))
    }

    /// The settings that apply to trips ending at `to`.
    pub fn settings_for(&self, to: &GeoPoint) -> &EtaSettings {
        self.overrides
            .iter()
            .find(|(area, _)| area.contains(to))
            .map_or(&self.default, |(_, s)| s)
    }

    /// One trip. When estimating many trips to the same order, prefer
    /// [`StraightLineEta::etas_to`] (or [`StraightLineEta::settings_for`] once
    /// and then [`EtaSettings::eta`]): the area lookup is done once.
    pub fn eta(&self, from: &GeoPoint, to: &GeoPoint) -> Eta {
        self.settings_for(to).eta(from, to)
    }

    /// Trips from each of `from` to `to`, in order.
    pub fn etas_to(&self, from: &[GeoPoint], to: &GeoPoint) -> Vec<Eta> {
        let settings = self.settings_for(to);
        from.iter().map(|f| settings.eta(f, to)).collect()
    }
}

#[async_trait]
impl EtaEstimator for StraightLineEta {
    async fn etas(&self, from: &[GeoPoint], to: GeoPoint) -> Result<Vec<Option<Eta>>, EtaError> {
        let settings = self.settings_for(&to);
        Ok(from.iter().map(|f| Some(settings.eta(f, &to))).collect())
    }
}

// ---------------------------------------------------------------------------
// Fallback

/// Asks `primary`; when it fails, logs a warning and asks `fallback`
/// (typically OSRM then straight-line). A `None` (no route) from the primary
/// is an answer, not a failure, and is kept.
#[derive(Debug, Clone)]
pub struct FallbackEta<P, F> {
    pub primary: P,
    pub fallback: F,
}

impl<P, F> FallbackEta<P, F> {
    pub fn new(primary: P, fallback: F) -> Self {
        Self { primary, fallback }
    }
}

#[async_trait]
impl<P: EtaEstimator, F: EtaEstimator> EtaEstimator for FallbackEta<P, F> {
    async fn etas(&self, from: &[GeoPoint], to: GeoPoint) -> Result<Vec<Option<Eta>>, EtaError> {
        match self.primary.etas(from, to).await {
            Ok(etas) => Ok(etas),
            Err(error) => {
                tracing::warn!(%error, nurses = from.len(), "eta estimator failed, using the fallback");
                self.fallback.etas(from, to).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yixin_domain::{GeoJsonPolygon, OrgId};

    fn p(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::new(lat, lng).unwrap()
    }

    #[test]
    fn straight_line_formula() {
        let s = EtaSettings::default();
        let a = p(29.39, 106.32);
        // Due north 0.045° ≈ 5.004 km.
        let b = p(29.435, 106.32);
        let d = a.distance_m(&b);
        let eta = s.eta(&a, &b);
        let road = d * 1.4;
        assert_eq!(eta.distance_m, road.round() as u32);
        let expected = (road / (25.0 / 3.6)).ceil() as u32 + 60;
        assert_eq!(eta.seconds, expected);
        // ~7 km of road at 25 km/h ≈ 16.8 min, plus a minute.
        assert!((1_050..1_080).contains(&eta.seconds), "{}", eta.seconds);
        // Same place: just the overhead.
        assert_eq!(
            s.eta(&a, &a),
            Eta {
                seconds: 60,
                distance_m: 0
            }
        );
    }

    #[test]
    fn settings_validate() {
        assert!(EtaSettings::new(1.0, 0.1, 0).is_ok());
        for (f, v, field) in [
            (0.99, 25.0, "detour_factor"),
            (f64::NAN, 25.0, "detour_factor"),
            (f64::INFINITY, 25.0, "detour_factor"),
            (1.4, 0.0, "speed_kmh"),
            (1.4, -3.0, "speed_kmh"),
            (1.4, f64::NAN, "speed_kmh"),
            (1.4, 900.0, "speed_kmh"),
        ] {
            assert_eq!(EtaSettings::new(f, v, 60).unwrap_err().field, field);
        }
    }

    #[test]
    fn settings_deserialise_with_defaults_and_validation() {
        let s: EtaSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, EtaSettings::default());
        let s: EtaSettings = serde_json::from_str(r#"{"speed_kmh": 18}"#).unwrap();
        assert_eq!((s.speed_kmh, s.detour_factor), (18.0, 1.4));
        let e = serde_json::from_str::<EtaSettings>(r#"{"detour_factor": 0.5}"#).unwrap_err();
        assert!(e.to_string().contains("detour_factor"), "{e}");
        assert!(serde_json::from_str::<EtaSettings>(r#"{"speed_kmh": 0}"#).is_err());
        assert!(serde_json::from_str::<EtaSettings>(r#"{"speed": 20}"#).is_err());
        let round: EtaSettings = serde_json::from_value(serde_json::to_value(s).unwrap()).unwrap();
        assert_eq!(round, s);
    }

    fn square_area(lat0: f64, lng0: f64, side: f64) -> ServiceArea {
        ServiceArea::new(
            AreaId::new(),
            OrgId::from("demo"),
            "square".into(),
            GeoJsonPolygon::new(vec![
                [lng0, lat0],
                [lng0 + side, lat0],
                [lng0 + side, lat0 + side],
                [lng0, lat0 + side],
                [lng0, lat0],
            ]),
        )
        .unwrap()
    }

    #[test]
    fn area_override_follows_the_destination() {
        let shuangfu = ServiceArea::shuangfu_demo(OrgId::from("demo"));
        let slow = EtaSettings::new(1.6, 12.0, 120).unwrap();
        let est = StraightLineEta::with_area_overrides(
            EtaSettings::default(),
            vec![(shuangfu.clone(), slow)],
        );
        let inside = p(29.39, 106.32);
        let outside = p(29.29, 106.25);
        assert_eq!(est.settings_for(&inside), &slow);
        assert_eq!(est.settings_for(&outside), &EtaSettings::default());
        // It is the destination that counts, not the origin.
        assert_eq!(est.eta(&outside, &inside), slow.eta(&outside, &inside));
        assert_eq!(
            est.eta(&inside, &outside),
            EtaSettings::default().eta(&inside, &outside)
        );
        assert_eq!(
            est.etas_to(&[outside, inside], &inside),
            vec![slow.eta(&outside, &inside), slow.eta(&inside, &inside)]
        );
    }

    #[test]
    fn first_overlapping_area_wins() {
        let big = square_area(0.0, 0.0, 2.0);
        let small = square_area(0.5, 0.5, 0.5);
        let a = EtaSettings::new(1.1, 10.0, 0).unwrap();
        let b = EtaSettings::new(1.2, 20.0, 0).unwrap();
        let est = StraightLineEta::with_area_overrides(
            EtaSettings::default(),
            vec![(small.clone(), a), (big.clone(), b)],
        );
        assert_eq!(est.settings_for(&p(0.7, 0.7)), &a);
        assert_eq!(est.settings_for(&p(1.5, 1.5)), &b);
        assert_eq!(est.settings_for(&p(3.0, 3.0)), &EtaSettings::default());
    }

    #[test]
    fn from_config_resolves_area_ids() {
        let area = square_area(0.0, 0.0, 1.0);
        let json = serde_json::json!({
            "default": {"speed_kmh": 20},
            "areas": [{"area_id": area.id, "settings": {"detour_factor": 1.8}}],
        });
        let config: StraightLineConfig = serde_json::from_value(json).unwrap();
        let est = StraightLineEta::from_config(&config, std::slice::from_ref(&area)).unwrap();
        assert_eq!(est.settings_for(&p(0.5, 0.5)).detour_factor, 1.8);
        assert_eq!(est.settings_for(&p(5.0, 5.0)).speed_kmh, 20.0);

        let e = StraightLineEta::from_config(&config, &[]).unwrap_err();
        assert_eq!(e.field, "areas");
        let empty: StraightLineConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, StraightLineConfig::default());
    }

    #[tokio::test]
    async fn straight_line_through_the_port() {
        let est = StraightLineEta::default();
        let to = p(29.39, 106.32);
        let from = [p(29.40, 106.33), p(29.38, 106.30)];
        let got = est.etas(&from, to).await.unwrap();
        let want: Vec<_> = est.etas_to(&from, &to).into_iter().map(Some).collect();
        assert_eq!(got, want);
        assert!(est.etas(&[], to).await.unwrap().is_empty());
    }

    struct Failing;

    #[async_trait]
    impl EtaEstimator for Failing {
        async fn etas(&self, _: &[GeoPoint], _: GeoPoint) -> Result<Vec<Option<Eta>>, EtaError> {
            Err(EtaError::Status { status: 503 })
        }
    }

    struct Unreachable;

    #[async_trait]
    impl EtaEstimator for Unreachable {
        async fn etas(&self, from: &[GeoPoint], _: GeoPoint) -> Result<Vec<Option<Eta>>, EtaError> {
            Ok(vec![None; from.len()])
        }
    }

    #[tokio::test]
    async fn fallback_only_on_failure() {
        let to = p(29.39, 106.32);
        let from = [p(29.40, 106.33)];
        let line = StraightLineEta::default();
        let fb = FallbackEta::new(Failing, line.clone());
        assert_eq!(
            fb.etas(&from, to).await.unwrap(),
            vec![Some(line.eta(&from[0], &to))]
        );
        let kept = FallbackEta::new(Unreachable, line);
        assert_eq!(kept.etas(&from, to).await.unwrap(), vec![None]);
        let both = FallbackEta::new(Failing, Arc::new(Failing));
        assert!(both.etas(&from, to).await.is_err());
    }
}
