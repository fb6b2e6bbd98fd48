//! The OSRM estimator against a small local server speaking the Table API.
//!
//! The server checks what a real OSRM would: coordinates as `lng,lat`, the
//! `sources`/`destinations` indices and the annotations. The path's profile
//! segment selects a behaviour (`driving` answers, `gaps` has unreachable
//! nurses, `refuse`/`broken`/`garbage`/`short`/`slow` fail in their ways).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;
use yixin_dispatcher::eta::{
    EtaError, EtaEstimator, FallbackEta, OsrmEta, OsrmSettings, StraightLineEta,
};
use yixin_domain::GeoPoint;

/// What the server saw: sources per request.
#[derive(Default)]
struct Seen {
    sources_per_request: Mutex<Vec<usize>>,
}

fn refuse(message: String) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"code": "InvalidQuery", "message": message}))
}

/// The fake road network: 10 m/s along an equirectangular approximation.
fn road_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lng_a, lat_a) = a;
    let (lng_b, lat_b) = b;
    let x = (lng_b - lng_a).to_radians() * ((lat_a + lat_b) / 2.0).to_radians().cos();
    let y = (lat_b - lat_a).to_radians();
    6_371_000.0 * (x * x + y * y).sqrt()
}

async fn table(
    path: web::Path<(String, String)>,
    query: web::Query<HashMap<String, String>>,
    seen: web::Data<Seen>,
) -> HttpResponse {
    let (profile, coords) = path.into_inner();
    // Coordinates: `lng,lat;lng,lat;…`. Every test point is in Chongqing
    // (lng ≈ 106, lat ≈ 29), so swapped axes are caught.
    let mut points = Vec::new();
    for pair in coords.split(';') {
        let Some((lng, lat)) = pair.split_once(',') else {
            return refuse(format!("bad coordinate {pair:?}"));
        };
        let (Ok(lng), Ok(lat)) = (lng.parse::<f64>(), lat.parse::<f64>()) else {
            return refuse(format!("bad number in {pair:?}"));
        };
        if !((100.0..110.0).contains(&lng) && (25.0..35.0).contains(&lat)) {
            return refuse(format!("not lng,lat in Chongqing: {pair:?}"));
        }
        points.push((lng, lat));
    }
    let n = points.len() - 1;
    let expected_sources = (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(";");
    if query.get("sources") != Some(&expected_sources) {
        return refuse(format!("sources {:?}", query.get("sources")));
    }
    if query.get("destinations") != Some(&n.to_string()) {
        return refuse(format!("destinations {:?}", query.get("destinations")));
    }
    if query.get("annotations").map(String::as_str) != Some("duration,distance") {
        return refuse(format!("annotations {:?}", query.get("annotations")));
    }
    seen.sources_per_request.lock().unwrap().push(n);

    let to = points[n];
    let mut durations = Vec::new();
    let mut distances = Vec::new();
    for (i, &from) in points[..n].iter().enumerate() {
        if profile == "gaps" && i % 2 == 1 {
            durations.push(json!([null]));
            distances.push(json!([null]));
        } else {
            let m = road_m(from, to);
            durations.push(json!([m / 10.0]));
            distances.push(json!([m]));
        }
    }
    match profile.as_str() {
        "driving" | "gaps" => HttpResponse::Ok().json(json!({
            "code": "Ok",
            "durations": durations,
            "distances": distances,
            "sources": [], "destinations": [],
        })),
        "refuse" => HttpResponse::BadRequest()
            .json(json!({"code": "TooBig", "message": "Too many table coordinates"})),
        "nosegment" => HttpResponse::Ok()
            .json(json!({"code": "NoSegment", "message": "Could not find a matching segment"})),
        "broken" => HttpResponse::InternalServerError().body("upstream exploded"),
        "garbage" => HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"code\": \"Ok\", \"durations\": [[1"),
        "short" => HttpResponse::Ok().json(json!({
            "code": "Ok",
            "durations": [[1.0]],
            "distances": [[1.0]],
        })),
        "slow" => {
            actix_web::rt::time::sleep(Duration::from_secs(3)).await;
            HttpResponse::Ok().json(json!({
                "code": "Ok", "durations": durations, "distances": distances,
            }))
        }
        other => refuse(format!("unknown profile {other}")),
    }
}

/// Starts the fake OSRM on a free local port; returns its base URL and what it sees.
fn spawn_osrm() -> (String, web::Data<Seen>) {
    let seen = web::Data::new(Seen::default());
    let data = seen.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/table/v1/{profile}/{coords}", web::get().to(table))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    (format!("http://{addr}"), seen)
}

fn osrm(base_url: &str, profile: &str) -> OsrmEta {
    OsrmEta::new(OsrmSettings {
        base_url: base_url.to_owned(),
        profile: profile.to_owned(),
        timeout_ms: 500,
        max_sources_per_request: 99,
        fixed_overhead_s: 60,
    })
    .unwrap()
}

fn p(lat: f64, lng: f64) -> GeoPoint {
    GeoPoint::new(lat, lng).unwrap()
}

/// The order (Shuangfu) and `n` nurses spread around it.
fn scene(n: usize) -> (GeoPoint, Vec<GeoPoint>) {
    let to = p(29.39, 106.32);
    let from = (0..n)
        .map(|i| {
            let f = i as f64;
            p(29.36 + (f * 0.37) % 0.07, 106.27 + (f * 0.53) % 0.09)
        })
        .collect();
    (to, from)
}

fn expected_m(from: &GeoPoint, to: &GeoPoint) -> f64 {
    // The server sees 6-decimal coordinates.
    let r = |x: f64| (x * 1e6).round() / 1e6;
    road_m((r(from.lng()), r(from.lat())), (r(to.lng()), r(to.lat())))
}

#[actix_web::test]
async fn answers_in_order_with_overhead() {
    let (base, seen) = spawn_osrm();
    let (to, from) = scene(5);
    let etas = osrm(&base, "driving").etas(&from, to).await.unwrap();
    assert_eq!(etas.len(), 5);
    for (f, eta) in from.iter().zip(&etas) {
        let eta = eta.expect("reachable");
        let m = expected_m(f, &to);
        assert_eq!(eta.distance_m, m.round() as u32);
        assert_eq!(eta.seconds, (m / 10.0).ceil() as u32 + 60);
    }
    assert_eq!(*seen.sources_per_request.lock().unwrap(), vec![5]);
}

#[actix_web::test]
async fn no_nurses_no_request() {
    let (base, seen) = spawn_osrm();
    let (to, _) = scene(0);
    assert!(
        osrm(&base, "driving")
            .etas(&[], to)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(seen.sources_per_request.lock().unwrap().is_empty());
}

#[actix_web::test]
async fn large_batches_are_chunked_and_kept_in_order() {
    let (base, seen) = spawn_osrm();
    let (to, from) = scene(250);
    let etas = osrm(&base, "driving").etas(&from, to).await.unwrap();
    assert_eq!(etas.len(), 250);
    for (f, eta) in from.iter().zip(&etas) {
        assert_eq!(eta.unwrap().distance_m, expected_m(f, &to).round() as u32);
    }
    assert_eq!(*seen.sources_per_request.lock().unwrap(), vec![99, 99, 52]);
}

#[actix_web::test]
async fn null_entries_are_unreachable_nurses() {
    let (base, _) = spawn_osrm();
    let (to, from) = scene(4);
    let etas = osrm(&base, "gaps").etas(&from, to).await.unwrap();
    assert!(etas[0].is_some() && etas[2].is_some());
    assert_eq!((etas[1], etas[3]), (None, None));
}

#[actix_web::test]
async fn service_error_codes() {
    let (base, _) = spawn_osrm();
    let (to, from) = scene(3);
    match osrm(&base, "refuse").etas(&from, to).await {
        Err(EtaError::Service { code, message }) => {
            assert_eq!(code, "TooBig");
            assert!(message.contains("Too many"), "{message}");
        }
        other => panic!("expected a service error, got {other:?}"),
    }
    // A non-Ok code is an error even with HTTP 200.
    assert!(matches!(
        osrm(&base, "nosegment").etas(&from, to).await,
        Err(EtaError::Service { code, .. }) if code == "NoSegment"
    ));
}

#[actix_web::test]
async fn http_500() {
    let (base, _) = spawn_osrm();
    let (to, from) = scene(3);
    assert!(matches!(
        osrm(&base, "broken").etas(&from, to).await,
        Err(EtaError::Status { status: 500 })
    ));
}

#[actix_web::test]
async fn malformed_bodies() {
    let (base, _) = spawn_osrm();
    let (to, from) = scene(3);
    for profile in ["garbage", "short"] {
        let got = osrm(&base, profile).etas(&from, to).await;
        assert!(
            matches!(got, Err(EtaError::Malformed(_))),
            "{profile}: {got:?}"
        );
    }
}

#[actix_web::test]
async fn slow_server_hits_the_timeout() {
    let (base, _) = spawn_osrm();
    let (to, from) = scene(3);
    let started = Instant::now();
    let got = osrm(&base, "slow").etas(&from, to).await;
    assert!(
        matches!(got, Err(EtaError::Timeout { timeout_ms: 500 })),
        "{got:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[actix_web::test]
async fn nobody_listening() {
    // A port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (to, from) = scene(2);
    let got = osrm(&format!("http://127.0.0.1:{port}"), "driving")
        .etas(&from, to)
        .await;
    assert!(matches!(got, Err(EtaError::Transport(_))), "{got:?}");
    // Positions (the resident's home among them) stay out of error messages.
    let text = format!("{:?} {}", got, got.as_ref().unwrap_err());
    assert!(!text.contains("106.3"), "{text}");
}

#[actix_web::test]
async fn falls_back_to_straight_line_when_osrm_fails() {
    let (base, _) = spawn_osrm();
    let (to, from) = scene(3);
    let line = StraightLineEta::default();
    let est = FallbackEta::new(osrm(&base, "broken"), line.clone());
    let got = est.etas(&from, to).await.unwrap();
    let want: Vec<_> = line.etas_to(&from, &to).into_iter().map(Some).collect();
    assert_eq!(got, want);
    // Working OSRM: its answer, not the fallback's.
    let est = FallbackEta::new(osrm(&base, "gaps"), line);
    assert_eq!(est.etas(&from, to).await.unwrap()[1], None);
}
