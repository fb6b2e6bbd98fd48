//! Sharded dispatch: instances dispatch only the regions they hold a lease
//! on; a dead instance's regions are taken over when its lease runs out,
//! and nothing is lost or offered twice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use yixin::Role;
use yixin_domain::{GeoPoint, OrderId};
use yixin_e2e::{AppOptions, Backend, StatusCode, TestApp, WsClient, spawn_app_with};
use yixin_platform::Settings;

use crate::dispatch::WAIT;

/// Two corners of the demo area, in two regions at resolution 6 (about
/// 36 km² each).
const WEST: (f64, f64) = (29.37, 106.28);
const EAST: (f64, f64) = (29.42, 106.35);
const RESOLUTION: u8 = 6;
const TTL_S: u64 = 3;

fn region(at: (f64, f64)) -> String {
    yixin_contracts::region_of(GeoPoint::new(at.0, at.1).unwrap(), RESOLUTION).unwrap()
}

async fn spawn(regions: String, configure: impl FnOnce(&mut Settings) + Send + 'static) -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(move |s| {
            s.dispatch.retry_secs = 1;
            // No offer lapses while the test runs: each order is offered once.
            s.dispatch.offer_ttl_secs = 300;
            s.dispatch.regions = regions;
            s.dispatch.region_resolution = RESOLUTION;
            s.dispatch.lease_ttl_s = TTL_S;
            configure(s);
        }),
    })
    .await
}

/// A nurse on shift at `at`, her phone on `app`.
async fn nurse_at(app: &TestApp, at: (f64, f64), i: usize) -> WsClient {
    let coordinator = app.token("coordinator", "coord", "demo").await;
    let phone = format!("1370000{i:04}");
    let id = app
        .qualified_nurse(
            &coordinator,
            &json!({"name": "周护士", "phone": phone, "skills": ["neonatal", "wound_care"]}),
        )
        .await;
    let token = app.token("nurse", &id, "demo").await;
    let mut ws = app.ws("/v1/nurse/ws", &token).await;
    ws.send_json(&json!({"type":"shift","state":"on"})).await;
    ws.expect_type("ack", WAIT).await;
    ws.send_json(&json!({"type":"location","lat":at.0,"lng":at.1,"accuracy_m":5,"ts":Utc::now()}))
        .await;
    ws
}

async fn order_at(app: &TestApp, at: (f64, f64)) -> OrderId {
    let token = app.resident_token().await;
    let reply = app.order_jaundice_test(&token, at).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json["id"]
        .as_str()
        .unwrap()
        .parse()
        .map(OrderId)
        .unwrap()
}

async fn regions(app: &TestApp) -> Value {
    let coordinator = app.token("coordinator", "coord", "demo").await;
    let reply = app.get("/v1/dispatch/regions", Some(&coordinator)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json
}

/// The region's entry in an app's answer.
fn entry<'a>(answer: &'a Value, region: &str) -> Option<&'a Value> {
    answer["regions"]
        .as_array()?
        .iter()
        .find(|r| r["region"] == region)
}

/// Waits until `app` serves `region`; returns how long that took.
async fn until_served(app: &TestApp, region: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let answer = regions(app).await;
        if entry(&answer, region).is_some_and(|r| r["served_here"] == true && r["live"] == true) {
            assert_eq!(
                entry(&answer, region).unwrap()["holder"],
                answer["instance"]
            );
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{region} not served within {within:?}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Offers made per order, waiting until each has at least one (or failing).
async fn offered_once(app: &TestApp, orders: &[OrderId], within: Duration) {
    let store = app.running().backends.store.clone();
    let start = Instant::now();
    loop {
        let mut counts = HashMap::new();
        for o in orders {
            counts.insert(*o, store.offers_for_order(*o).await.unwrap().len());
        }
        assert!(
            counts.values().all(|n| *n <= 1),
            "an order offered twice: {counts:?}"
        );
        if counts.values().all(|n| *n == 1) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "orders not offered within {within:?}: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_sharded_dispatchers_split_the_regions_and_one_takes_over_a_dead_ones() {
    let (west, east) = (region(WEST), region(EAST));
    assert_ne!(west, east);
    let mut first = spawn(west.clone(), |_| {}).await;
    if first.backend != Backend::Postgres {
        eprintln!("skipped on the embedded backend: needs a shared database and Redis");
        return;
    }
    let shared = first.settings.clone();
    let second = spawn(east.clone(), move |s| {
        s.database.url = shared.database.url.clone();
        s.redis.key_prefix = shared.redis.key_prefix.clone();
        s.auth.jwt_secret = shared.auth.jwt_secret.clone();
    })
    .await;
    let ttl = Duration::from_secs(TTL_S);
    until_served(&first, &west, ttl).await;
    until_served(&second, &east, ttl).await;
    let ready = second.get("/readyz", None).await.json["checks"]["dispatch.regions"].clone();
    assert_eq!(ready, format!("ok: 1 held ({east})"));

    // Every phone on the instance that survives; both fleets hear of them.
    let mut phones = Vec::new();
    for i in 0..4 {
        phones.push(nurse_at(&second, WEST, i).await);
    }
    for i in 4..6 {
        phones.push(nurse_at(&second, EAST, i).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = vec![
        order_at(&first, WEST).await,
        order_at(&second, WEST).await,
        order_at(&first, EAST).await,
        order_at(&second, EAST).await,
    ];
    offered_once(&second, &before, Duration::from_secs(10)).await;
    // Each region's orders were offered by its holder, wherever placed.
    let (a, b) = (regions(&first).await, regions(&second).await);
    assert_eq!(entry(&a, &west).unwrap()["offers_here"], 2, "{a}");
    assert_eq!(
        entry(&a, &east).map_or(0, |r| r["offers_here"].as_u64().unwrap()),
        0,
        "{a}"
    );
    assert_eq!(entry(&b, &east).unwrap()["offers_here"], 2, "{b}");
    assert_eq!(
        entry(&b, &west).map_or(0, |r| r["offers_here"].as_u64().unwrap()),
        0,
        "{b}"
    );

    // The west's holder dies; orders keep coming in the west meanwhile.
    first.kill_platform().await;
    let killed = Instant::now();
    let after = vec![order_at(&second, WEST).await, order_at(&second, WEST).await];
    // Taken over once the lease ran out: within a lease and a renewal
    // period (and a little scheduling).
    until_served(&second, &west, ttl + ttl / 3 + Duration::from_secs(2)).await;
    let takeover = killed.elapsed();
    eprintln!("takeover after {takeover:?} (lease {ttl:?})");
    let mut all = before.clone();
    all.extend(&after);
    offered_once(&second, &all, Duration::from_secs(10)).await;
    let b = regions(&second).await;
    assert_eq!(entry(&b, &west).unwrap()["offers_here"], 2, "{b}");
    assert!(
        entry(&b, &west).unwrap()["token"].as_i64().unwrap() >= 2,
        "{b}"
    );
    drop(phones);
    second.stop().await;
    first.stop().await;
}

/// One instance with `auto` owns every region (the embedded mode too, on
/// its in-process queue): an order in a region nobody knew is offered.
#[tokio::test]
async fn one_auto_sharded_instance_takes_every_region() {
    let app = spawn("auto".to_owned(), |_| {}).await;
    let phone = nurse_at(&app, EAST, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let order = order_at(&app, EAST).await;
    offered_once(&app, &[order], Duration::from_secs(10)).await;
    let answer = regions(&app).await;
    assert_eq!(answer["sharded"], true);
    let east = entry(&answer, &region(EAST)).unwrap();
    assert_eq!(east["served_here"], true, "{answer}");
    assert_eq!(east["offers_here"], 1, "{answer}");
    drop(phone);
    app.stop().await;
}
