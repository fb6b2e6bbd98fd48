//! Road-network travel times: [`OsrmEta`], the OSRM Table API over HTTP.
//! The port, the straight-line model, the fallback and their settings are
//! the dispatch core's ([`yixin_dispatch_core::eta`]), re-exported here.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use yixin_domain::GeoPoint;

use crate::settings::InvalidSettings;
pub use yixin_dispatch_core::eta::*;

// ---------------------------------------------------------------------------
// OSRM

/// Settings of the OSRM estimator.
///
/// JSON/TOML: `{"base_url": "http://osrm:5000", "profile": "bike", ...}`, every
/// field optional; checked by [`OsrmEta::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OsrmSettings {
    /// Where the OSRM (or compatible) server listens, e.g. `http://osrm:5000`.
    pub base_url: String,
    /// The routing profile in the URL (`driving`, `bike`, …); `[A-Za-z0-9_-]+`.
    pub profile: String,
    /// Per request, connection included; a request past it fails with [`EtaError::Timeout`].
    pub timeout_ms: u64,
    /// Most nurses per Table request; larger batches are split. OSRM's
    /// `--max-table-size` (default 100) counts sources plus the destination,
    /// hence 99.
    pub max_sources_per_request: usize,
    /// Added to every road duration, as in [`EtaSettings::fixed_overhead_s`]:
    /// OSRM times the road, not parking and stairs.
    pub fixed_overhead_s: u32,
}

impl Default for OsrmSettings {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:5000".to_owned(),
            profile: "driving".to_owned(),
            timeout_ms: 1_500,
            max_sources_per_request: 99,
            fixed_overhead_s: 60,
        }
    }
}

/// Road-network ETAs from an OSRM-compatible server, through its Table API:
///
/// `GET {base}/table/v1/{profile}/{lng,lat;…;lng,lat}?sources=0;…;n-1&destinations=n&annotations=duration,distance`
///
/// with the nurses as sources `0..n` and the order last. `null` cells (no
/// route) become `None`. Chunks of at most
/// [`OsrmSettings::max_sources_per_request`] nurses are requested one after
/// the other: a dispatch asks for tens of nurses, i.e. one request, and
/// sequential chunks keep the load on OSRM bounded.
#[derive(Debug, Clone)]
pub struct OsrmEta {
    client: reqwest::Client,
    /// `{base}/table/v1/{profile}/`, ready for the coordinates.
    table_url: String,
    settings: OsrmSettings,
}

/// Envelope shared by OSRM's success and error bodies.
#[derive(Deserialize)]
struct OsrmEnvelope {
    code: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct OsrmTable {
    durations: Option<Vec<Vec<Option<f64>>>>,
    distances: Option<Vec<Vec<Option<f64>>>>,
}

impl OsrmEta {
    /// Checks the settings (URL with an http(s) scheme, profile characters,
    /// timeout > 0, 1 ≤ chunk ≤ 10 000) and builds the HTTP client.
    pub fn new(settings: OsrmSettings) -> Result<Self, InvalidSettings> {
        let base = settings.base_url.trim_end_matches('/');
        match reqwest::Url::parse(base) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.query().is_none() => {}
            _ => {
                return Err(InvalidSettings::new(
                    "base_url",
                    format!("must be an http(s) URL without query, got {base:?}"),
                ));
            }
        }
        let profile_ok = !settings.profile.is_empty()
            && settings
                .profile
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !profile_ok {
            return Err(InvalidSettings::new(
                "profile",
                format!("must match [A-Za-z0-9_-]+, got {:?}", settings.profile),
            ));
        }
        if settings.timeout_ms == 0 {
            return Err(InvalidSettings::new("timeout_ms", "must be > 0"));
        }
        if !(1..=10_000).contains(&settings.max_sources_per_request) {
            return Err(InvalidSettings::new(
                "max_sources_per_request",
                "must be between 1 and 10000",
            ));
        }
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| InvalidSettings::new("base_url", format!("http client: {e}")))?;
        Ok(Self {
            client,
            table_url: format!("{base}/table/v1/{}/", settings.profile),
            settings,
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &OsrmSettings {
        &self.settings
    }

    /// The Table request for `from` (sources `0..n`) to `to` (destination `n`).
    fn request_url(&self, from: &[GeoPoint], to: &GeoPoint) -> String {
        use std::fmt::Write as _;
        let mut url = self.table_url.clone();
        // 6 decimals is ~0.1 m, and keeps a 100-nurse URL near 2 KB.
        for p in from.iter().chain(std::iter::once(to)) {
            let _ = write!(url, "{:.6},{:.6};", p.lng(), p.lat());
        }
        url.pop(); // the last ';'
        url.push_str("?sources=");
        for i in 0..from.len() {
            let _ = write!(url, "{i};");
        }
        url.pop();
        let _ = write!(
            url,
            "&destinations={}&annotations=duration,distance",
            from.len()
        );
        url
    }

    fn transport_error(&self, e: reqwest::Error) -> EtaError {
        if e.is_timeout() {
            EtaError::Timeout {
                timeout_ms: self.settings.timeout_ms,
            }
        } else {
            // The URL holds the nurses' and the resident's positions: keep it out of logs.
            EtaError::Transport(Box::new(e.without_url()))
        }
    }

    async fn table(&self, from: &[GeoPoint], to: &GeoPoint) -> Result<Vec<Option<Eta>>, EtaError> {
        let url = self.request_url(from, to);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        parse_table(
            status.as_u16(),
            &body,
            from.len(),
            self.settings.fixed_overhead_s,
        )
    }
}

/// Reads one Table answer for `n` sources and one destination.
fn parse_table(
    status: u16,
    body: &[u8],
    n: usize,
    overhead_s: u32,
) -> Result<Vec<Option<Eta>>, EtaError> {
    // OSRM reports refusals (InvalidQuery, NoTable, TooBig…) with a 4xx and a
    // JSON code: prefer the code, it says more than the status.
    let envelope = serde_json::from_slice::<OsrmEnvelope>(body);
    if let Ok(env) = &envelope
        && env.code != "Ok"
    {
        return Err(EtaError::Service {
            code: env.code.chars().take(64).collect(),
            message: env
                .message
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect(),
        });
    }
    if !(200..300).contains(&status) {
        return Err(EtaError::Status { status });
    }
    if let Err(e) = envelope {
        return Err(EtaError::Malformed(format!("envelope: {e}")));
    }
    let table: OsrmTable =
        serde_json::from_slice(body).map_err(|e| EtaError::Malformed(e.to_string()))?;
    let (Some(durations), Some(distances)) = (table.durations, table.distances) else {
        return Err(EtaError::Malformed(
            "durations or distances missing".to_owned(),
        ));
    };
    if durations.len() != n || distances.len() != n {
        return Err(EtaError::Malformed(format!(
            "expected {n} rows, got {} durations and {} distances",
            durations.len(),
            distances.len()
        )));
    }
    durations
        .iter()
        .zip(&distances)
        .enumerate()
        .map(|(i, (d_row, m_row))| {
            let (&[d], &[m]) = (d_row.as_slice(), m_row.as_slice()) else {
                return Err(EtaError::Malformed(format!(
                    "row {i}: expected 1 column, got {} and {}",
                    d_row.len(),
                    m_row.len()
                )));
            };
            match (d, m) {
                (Some(d), Some(m)) if d >= 0.0 && m >= 0.0 => Ok(Some(Eta {
                    seconds: (d.ceil() as u32).saturating_add(overhead_s),
                    distance_m: m.round() as u32,
                })),
                (Some(_), Some(_)) => Err(EtaError::Malformed(format!(
                    "row {i}: negative duration or distance"
                ))),
                // No route either way: the nurse cannot be routed to this order.
                _ => Ok(None),
            }
        })
        .collect()
}

#[async_trait]
impl EtaEstimator for OsrmEta {
    async fn etas(&self, from: &[GeoPoint], to: GeoPoint) -> Result<Vec<Option<Eta>>, EtaError> {
        let mut out = Vec::with_capacity(from.len());
        for chunk in from.chunks(self.settings.max_sources_per_request) {
            out.extend(self.table(chunk, &to).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::new(lat, lng).unwrap()
    }

    #[test]
    fn osrm_settings_are_checked() {
        assert!(OsrmEta::new(OsrmSettings::default()).is_ok());
        let bad = |f: fn(&mut OsrmSettings)| {
            let mut s = OsrmSettings::default();
            f(&mut s);
            OsrmEta::new(s).unwrap_err().field
        };
        assert_eq!(bad(|s| s.base_url = "osrm:5000".into()), "base_url");
        assert_eq!(bad(|s| s.base_url = "ftp://osrm".into()), "base_url");
        assert_eq!(bad(|s| s.base_url = "http://osrm/?x=1".into()), "base_url");
        assert_eq!(bad(|s| s.profile = "car/../x".into()), "profile");
        assert_eq!(bad(|s| s.profile = String::new()), "profile");
        assert_eq!(bad(|s| s.timeout_ms = 0), "timeout_ms");
        assert_eq!(
            bad(|s| s.max_sources_per_request = 0),
            "max_sources_per_request"
        );
    }

    #[test]
    fn osrm_url_shape() {
        let est = OsrmEta::new(OsrmSettings {
            base_url: "http://osrm:5000/".into(),
            profile: "bike".into(),
            ..OsrmSettings::default()
        })
        .unwrap();
        let url = est.request_url(&[p(29.4, 106.3), p(29.41, 106.31)], &p(29.39, 106.32));
        assert_eq!(
            url,
            "http://osrm:5000/table/v1/bike/106.300000,29.400000;106.310000,29.410000;\
             106.320000,29.390000?sources=0;1&destinations=2&annotations=duration,distance"
        );
    }

    #[test]
    fn osrm_body_parsing() {
        let ok =
            br#"{"code":"Ok","durations":[[100.2],[null],[0]],"distances":[[1500.4],[null],[0]]}"#;
        assert_eq!(
            parse_table(200, ok, 3, 60).unwrap(),
            vec![
                Some(Eta {
                    seconds: 161,
                    distance_m: 1500
                }),
                None,
                Some(Eta {
                    seconds: 60,
                    distance_m: 0
                }),
            ]
        );
        let refused = br#"{"code":"InvalidQuery","message":"Query string malformed"}"#;
        assert!(matches!(
            parse_table(400, refused, 1, 0),
            Err(EtaError::Service { code, .. }) if code == "InvalidQuery"
        ));
        assert!(matches!(
            parse_table(502, b"<html>bad gateway</html>", 1, 0),
            Err(EtaError::Status { status: 502 })
        ));
        for body in [
            &b"not json"[..],
            br#"{"code":"Ok"}"#,
            br#"{"code":"Ok","durations":[[1]],"distances":[[1],[2]]}"#,
            br#"{"code":"Ok","durations":[[1,2]],"distances":[[1,2]]}"#,
            br#"{"code":"Ok","durations":[[-1]],"distances":[[1]]}"#,
            br#"{"code":"Ok","durations":[["x"]],"distances":[[1]]}"#,
        ] {
            assert!(
                matches!(parse_table(200, body, 1, 0), Err(EtaError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
