//! What the coordinator dashboard needs beyond the coordinator API: the map's
//! H3 cells with supply and demand, the nurses of an order by ETA for a
//! manual assignment, and the page itself, served by the platform.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use yixin::Role;
use yixin_e2e::{AppOptions, StatusCode, TestApp, spawn_app_with};
use yixin_platform::Settings;

const HOME: (f64, f64) = (29.39, 106.32);

/// The platform with automatic dispatch off: the coordinator assigns.
async fn spawn_with(configure: impl FnOnce(&mut Settings) + Send + 'static) -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(move |s| {
            s.dispatch.auto = false;
            configure(s);
        }),
    })
    .await
}

async fn coordinator(app: &TestApp, org: &str) -> String {
    let sub = format!("coord-{}", uuid::Uuid::new_v4().simple());
    app.token("coordinator", &sub, org).await
}

/// A nurse added through the roster: id and token.
async fn add_nurse(
    app: &TestApp,
    coordinator: &str,
    name: &str,
    skills: &[&str],
) -> (String, String) {
    let id = app
        .qualified_nurse(
            coordinator,
            &json!({"name": name, "phone": "13700001111", "skills": skills}),
        )
        .await;
    let token = app.token("nurse", &id, "demo").await;
    (id, token)
}

/// The nurse goes on shift and reports a fix, over the HTTP equivalents.
async fn on_shift_at(app: &TestApp, token: &str, at: (f64, f64)) {
    let reply = app
        .post("/v1/nurse/shift", Some(token), &json!({"state": "on"}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app
        .post(
            "/v1/nurse/locations",
            Some(token),
            &json!({"fixes": [{"lat": at.0, "lng": at.1, "accuracy_m": 5.0, "ts": Utc::now()}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// A demo resident orders an infant jaundice test (skill `neonatal`) at `at`.
async fn place(app: &TestApp, at: (f64, f64)) -> String {
    let token = app.resident_token().await;
    let reply = app.order_jaundice_test(&token, at).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json["id"].as_str().unwrap().to_owned()
}

/// The resolution-7 cell of a point, as the API names it.
fn cell_of(at: (f64, f64)) -> String {
    h3o::LatLng::new(at.0, at.1)
        .unwrap()
        .to_cell(h3o::Resolution::Seven)
        .to_string()
}

fn cell<'a>(cells: &'a Value, id: &str) -> &'a Value {
    cells["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cell"] == id)
        .unwrap_or_else(|| panic!("cell {id} not listed: {cells}"))
}

/// Counts settle once the positions have been flushed (every 100 ms).
async fn cells_until(app: &TestApp, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let reply = app.get("/v1/dispatch/cells", Some(token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        if done(&reply.json) || tokio::time::Instant::now() > deadline {
            return reply.json;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_map_cells_cover_the_area_and_count_supply_and_demand() {
    let app = spawn_with(|_| {}).await;
    let demo = coordinator(&app, "demo").await;

    let empty = app.get("/v1/dispatch/cells", Some(&demo)).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(empty.json["resolution"], 7);
    assert_eq!(empty.json["truncated"], false);
    let cells = empty.json["cells"].as_array().unwrap();
    // Shuangfu (about 9 × 8 km) needs a dozen or more 5 km² cells.
    assert!(cells.len() >= 12, "{}", cells.len());
    assert!(cells.iter().all(|c| c["in_area"] == true));
    let home = cell(&empty.json, &cell_of(HOME));
    assert_eq!(home["boundary"].as_array().unwrap().len(), 6);
    assert!((home["center"]["lat"].as_f64().unwrap() - HOME.0).abs() < 0.03);
    assert_eq!(
        (
            &home["free_nurses"],
            &home["open_orders"],
            &home["waiting_orders"]
        ),
        (&json!(0), &json!(0), &json!(0))
    );

    let (_, nurse) = add_nurse(&app, &demo, "周护士", &["neonatal"]).await;
    on_shift_at(&app, &nurse, HOME).await;
    place(&app, HOME).await;
    let filled = cells_until(&app, &demo, |c| cell(c, &cell_of(HOME))["free_nurses"] == 1).await;
    let home = cell(&filled, &cell_of(HOME));
    assert_eq!(
        (
            &home["free_nurses"],
            &home["open_orders"],
            &home["waiting_orders"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{home}"
    );

    // Another organisation has no area and no orders: nothing of demo's.
    let other = coordinator(&app, "other-hospital").await;
    let reply = app.get("/v1/dispatch/cells", Some(&other)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["cells"], json!([]));

    // Coordinators only.
    assert_eq!(
        app.get("/v1/dispatch/cells", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let resident = app.resident_token().await;
    let reply = app.get("/v1/dispatch/cells", Some(&resident)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "forbidden");
}

#[tokio::test]
async fn candidates_come_by_eta_and_say_who_can_take_the_order() {
    let app = spawn_with(|_| {}).await;
    let demo = coordinator(&app, "demo").await;
    let (near, near_token) = add_nurse(&app, &demo, "近护士", &["neonatal"]).await;
    let (far, far_token) = add_nurse(&app, &demo, "远护士", &["neonatal", "wound_care"]).await;
    let (unskilled, unskilled_token) = add_nurse(&app, &demo, "口腔护士", &["oral_care"]).await;
    let (off, _) = add_nurse(&app, &demo, "休息护士", &["neonatal"]).await;
    on_shift_at(&app, &far_token, (29.41, 106.34)).await;
    on_shift_at(&app, &near_token, (29.392, 106.322)).await;
    on_shift_at(&app, &unskilled_token, HOME).await;
    let order = place(&app, HOME).await;
    let path = format!("/v1/dispatch/orders/{order}/candidates");

    // Positions reach the board within a flush interval.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let reply = loop {
        let reply = app.get(&path, Some(&demo)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let located = reply.json["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| !c["eta_min"].is_null())
            .count();
        if located == 3 || tokio::time::Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let list = reply.json["candidates"].as_array().unwrap();
    let ids: Vec<&str> = list
        .iter()
        .map(|c| c["nurse_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            near.as_str(),
            far.as_str(),
            unskilled.as_str(),
            off.as_str()
        ],
        "{}",
        reply.text
    );
    let (n, f) = (&list[0], &list[1]);
    assert_eq!(
        (&n["state"], &n["assignable"]),
        (&json!("free"), &json!(true))
    );
    assert!(n["eta_min"].as_u64().unwrap() < f["eta_min"].as_u64().unwrap());
    assert!(n["distance_m"].as_u64().unwrap() < f["distance_m"].as_u64().unwrap());
    assert_eq!(n["in_time"], true);
    assert!(n["arrives_at"].is_string());
    assert_eq!(list[2]["reason"], "missing_skills");
    assert_eq!(list[2]["missing_skills"], json!(["neonatal"]));
    assert_eq!(
        (&list[3]["state"], &list[3]["reason"], &list[3]["eta_min"]),
        (&json!("off_shift"), &json!("off_shift"), &Value::Null)
    );
    assert_eq!(reply.json["order_id"], order.as_str());

    // The first one is taken by hand; the order no longer waits.
    let reply = app
        .post(
            &format!("/v1/dispatch/orders/{order}/assign"),
            Some(&demo),
            &json!({"nurse_id": near}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app.get(&path, Some(&demo)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.error_code(), "not_assignable");

    // The nurse is now busy for the next order.
    let second = place(&app, HOME).await;
    let reply = app
        .get(
            &format!("/v1/dispatch/orders/{second}/candidates"),
            Some(&demo),
        )
        .await;
    let busy = reply.json["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["nurse_id"] == near.as_str())
        .unwrap();
    assert_eq!(
        (&busy["state"], &busy["reason"]),
        (&json!("busy"), &json!("busy"))
    );

    // Not found: a bad id, an unknown one, another organisation's order.
    for bad in ["nope", &uuid::Uuid::new_v4().to_string()] {
        let reply = app
            .get(
                &format!("/v1/dispatch/orders/{bad}/candidates"),
                Some(&demo),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{bad}");
        assert_eq!(reply.error_code(), "not_found");
    }
    let other = coordinator(&app, "other-hospital").await;
    let reply = app
        .get(
            &format!("/v1/dispatch/orders/{second}/candidates"),
            Some(&other),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_platform_serves_the_page_with_its_configuration() {
    let app = spawn_with(|s| {
        s.dashboard.tile_url = "https://tiles.example.org/{z}/{x}/{y}.png".to_owned();
    })
    .await;
    let page = app.get("/dashboard", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let header = |r: &yixin_e2e::Reply, name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header(&page, "content-type").starts_with("text/html"));
    assert!(page.text.contains("/dashboard/app.js"));
    let csp = header(&page, "content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        csp.contains("img-src 'self' data: https://tiles.example.org;"),
        "{csp}"
    );

    let script = app.get("/dashboard/app.js", None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(header(&script, "content-type").starts_with("text/javascript"));

    let config = app.get("/dashboard/config.json", None).await;
    assert_eq!(config.status, StatusCode::OK);
    assert_eq!(
        config.json["tile_url"],
        "https://tiles.example.org/{z}/{x}/{y}.png"
    );
    assert_eq!(config.json["dev_login"], true);
    assert_eq!(config.json["dev_org"], "demo");

    let missing = app.get("/dashboard/secret.txt", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");

    let doc = app.get("/openapi.json", None).await;
    for path in [
        "/v1/dispatch/cells",
        "/v1/dispatch/orders/{id}/candidates",
        "/dashboard",
    ] {
        assert!(
            doc.json["paths"][path]["get"].is_object(),
            "{path} undocumented"
        );
    }
}

#[tokio::test]
async fn the_page_is_not_served_where_the_dispatcher_does_not_run() {
    let app = spawn_app_with(AppOptions {
        role: Role::OrderIntake,
        configure: Box::new(|_| {}),
    })
    .await;
    assert_eq!(
        app.get("/dashboard", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_catalogue_names_every_skill_in_both_languages() {
    let app = spawn_with(|_| {}).await;
    let token = app.resident_token().await;
    let reply = app.get("/v1/catalog", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let named: std::collections::HashMap<&str, &Value> = reply.json["skills"]
        .as_array()
        .expect("the catalogue lists its skills")
        .iter()
        .map(|k| (k["code"].as_str().unwrap(), k))
        .collect();
    let mut required = 0;
    for category in reply.json["categories"].as_array().unwrap() {
        for service in category["services"].as_array().unwrap() {
            for skill in service["required_skills"].as_array().unwrap() {
                let code = skill.as_str().unwrap();
                let name = named
                    .get(code)
                    .unwrap_or_else(|| panic!("{code} has no name"));
                assert!(!name["name_zh"].as_str().unwrap().is_empty(), "{code}");
                assert!(!name["name_en"].as_str().unwrap().is_empty(), "{code}");
                required += 1;
            }
        }
    }
    assert!(required >= 20, "every service requires a skill");
    assert_eq!(named["wound_care"]["name_zh"], "伤口护理");
    assert_eq!(named["wound_care"]["name_en"], "Wound care");
    app.stop().await;
}

/// The organisation's roster.
async fn roster(app: &TestApp, coordinator: &str) -> Vec<Value> {
    let reply = app.get("/v1/dispatch/nurses", Some(coordinator)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json.as_array().unwrap().clone()
}

/// Polls until `done` holds of the roster, or fails after 60 s.
async fn roster_until(
    app: &TestApp,
    coordinator: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let nurses = roster(app, coordinator).await;
        if done(&nurses) {
            return nurses;
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}: {nurses:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn on_shift_count(nurses: &[Value]) -> usize {
    nurses.iter().filter(|n| n["shift"] == "on").count()
}

#[tokio::test]
async fn the_demo_restarts_with_its_own_nurses_and_closes_what_the_last_run_left() {
    // Automatic dispatch on, as `serve --demo` runs.
    let app = spawn_app_with(AppOptions::default()).await;
    let coord = coordinator(&app, "demo").await;
    let addr = app.running().addr;
    let fleet = yixin::DEMO_NURSES;

    // First start: the demo's nurses join the roster and go on shift.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let first = tokio::spawn(yixin::run_demo(addr, stopped));
    roster_until(&app, &coord, "the first run's fleet on shift", |n| {
        n.len() == fleet && on_shift_count(n) == fleet
    })
    .await;
    // The run dies (its phones with it): they stay on shift, as after a
    // crash, and an order comes in that nobody will serve.
    stop.send(true).unwrap();
    first.await.unwrap().unwrap();
    let orphan = place(&app, HOME).await;
    // A simulated nurse of an older, larger fleet, still on shift.
    let (old, old_token) = {
        let id = app.qualified_nurse(&coord, &json!({"name": format!("护士{}", fleet + 6), "phone": format!("137{:08}", fleet + 5), "skills": ["rehab"]})).await;
        let token = app.token("nurse", &id, "demo").await;
        (id, token)
    };
    on_shift_at(&app, &old_token, HOME).await;
    let before: Vec<String> = roster(&app, &coord)
        .await
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();

    // Second start: the same nurses, not a second fleet.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let second = tokio::spawn(yixin::run_demo(addr, stopped));
    let nurses = roster_until(
        &app,
        &coord,
        "the fleet back on shift and the old nurse off",
        |n| {
            on_shift_count(n) == fleet
                && n.iter()
                    .any(|x| x["id"] == old.as_str() && x["shift"] == "off")
        },
    )
    .await;
    assert_eq!(
        nurses.len(),
        fleet + 1,
        "{fleet} demo nurses and the old one, not {}",
        2 * fleet
    );
    let mut ids: Vec<&str> = nurses.iter().map(|n| n["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut kept = before.iter().map(String::as_str).collect::<Vec<_>>();
    kept.sort_unstable();
    assert_eq!(
        ids, kept,
        "every nurse is one the first run had (or the old one)"
    );
    let mut phones: Vec<&str> = nurses
        .iter()
        .map(|n| n["phone"].as_str().unwrap())
        .collect();
    phones.sort_unstable();
    phones.dedup();
    assert_eq!(phones.len(), fleet + 1, "one nurse a phone");
    let retired = nurses.iter().find(|n| n["id"] == old.as_str()).unwrap();
    assert_eq!(
        retired["active"], false,
        "the old fleet's nurse gets no work"
    );

    // The order the dead run left open is closed, with the reason.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let closed = loop {
        let reply = app
            .get(&format!("/v1/dispatch/orders/{orphan}"), Some(&coord))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        if reply.json["status"] == "cancelled" {
            break reply.json;
        }
        assert!(
            std::time::Instant::now() < until,
            "still open: {}",
            reply.json
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(closed["cancel_reason"], yixin::DEMO_TAKEOVER_REASON);

    stop.send(true).unwrap();
    second.await.unwrap().unwrap();
    app.stop().await;
}
