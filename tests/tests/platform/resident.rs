//! The resident's side added for the app: the household (addresses and
//! family members, each resident's own), an order naming the patient, the
//! quote before ordering (from the dispatcher's live fleet and rules), and
//! the en-route nurse's position and per-fix ETA.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use yixin_e2e::{StatusCode, TestApp, spawn_app};

const WAIT: Duration = Duration::from_secs(5);
const HOME: (f64, f64) = (29.39, 106.32);

async fn patch(app: &TestApp, path: &str, token: &str, body: &Value) -> yixin_e2e::Reply {
    app.send(app.http.patch(app.url(path)).bearer_auth(token).json(body))
        .await
}

async fn delete(app: &TestApp, path: &str, token: &str) -> yixin_e2e::Reply {
    app.send(app.http.delete(app.url(path)).bearer_auth(token))
        .await
}

#[tokio::test]
async fn a_household_is_its_residents_own_and_an_order_names_the_patient() {
    let app = spawn_app().await;
    let me = app.resident_token().await;
    let other = app.resident_token().await;

    let added = app
        .post(
            "/v1/me/addresses",
            Some(&me),
            &json!({"label": "家", "text": "福城大道 88 号", "detail": "3 栋 1102",
                    "location": {"lat": HOME.0, "lng": HOME.1}}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let address = added.json["id"].as_str().unwrap().to_owned();
    let bad = app
        .post(
            "/v1/me/addresses",
            Some(&me),
            &json!({"label": "家", "text": " ", "location": {"lat": HOME.0, "lng": HOME.1}}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json["error"]["field"], "text");

    let person = app
        .post(
            "/v1/me/patients",
            Some(&me),
            &json!({"name": "王秀英", "sex": "female", "birth_year": 1948, "relation": "母亲",
                    "allergies": "青霉素"}),
        )
        .await;
    assert_eq!(person.status, StatusCode::CREATED, "{}", person.text);
    let patient = person.json["id"].as_str().unwrap().to_owned();
    let bad = app
        .post(
            "/v1/me/patients",
            Some(&me),
            &json!({"name": "x", "sex": "other", "birth_year": 1948, "relation": "母亲"}),
        )
        .await;
    assert_eq!(bad.json["error"]["field"], "sex", "{}", bad.text);

    let changed = patch(
        &app,
        &format!("/v1/me/patients/{patient}"),
        &me,
        &json!({"conditions": "高血压"}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.json["conditions"], "高血压");
    assert_eq!(changed.json["allergies"], "青霉素");

    // Someone else's: invisible and untouchable.
    let theirs = app.get("/v1/me/patients", Some(&other)).await;
    assert_eq!(theirs.json["patients"], json!([]));
    let reply = patch(
        &app,
        &format!("/v1/me/addresses/{address}"),
        &other,
        &json!({"label": "x"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = delete(&app, &format!("/v1/me/patients/{patient}"), &other).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // An order for the patient; another resident cannot name her.
    let order = |token: &str, patient: &str| {
        let request = app
            .http
            .post(app.url("/v1/orders"))
            .bearer_auth(token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&json!({
                "service_code": "infant_jaundice_test",
                "location": {"lat": HOME.0, "lng": HOME.1},
                "address": {"text": "福城大道 88 号"},
                "contact": {"name": "王女士", "phone": "13812345678"},
                "consent_version": yixin_e2e::CONSENT_VERSION,
                "patient_id": patient,
            }));
        app.send(request)
    };
    let refused = order(&other, &patient).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.json["error"]["field"], "patient_id");
    let placed = order(&me, &patient).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    assert_eq!(placed.json["patient"]["name"], "王秀英");
    let id = placed.json["id"].as_str().unwrap();
    let seen = app.get(&format!("/v1/orders/{id}"), Some(&me)).await;
    assert_eq!(seen.json["patient"]["id"], patient.as_str());

    let listed = app.get("/v1/me/addresses", Some(&me)).await;
    assert_eq!(listed.json["addresses"][0]["detail"], "3 栋 1102");
    assert_eq!(
        delete(&app, &format!("/v1/me/addresses/{address}"), &me)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/v1/me/addresses", Some(&me)).await.json["addresses"],
        json!([])
    );
    app.stop().await;
}

/// A nurse of the demo roster with every skill, on shift at `at` (HTTP, as a
/// weak-connection phone would); her id and token.
async fn nurse_at(app: &TestApp, at: (f64, f64)) -> (String, String) {
    let coordinator = app.token("coordinator", "coord-1", "demo").await;
    let catalog = app.get("/v1/catalog", Some(&coordinator)).await;
    let skills: Vec<Value> = catalog.json["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].clone())
        .collect();
    let id = app
        .qualified_nurse(
            &coordinator,
            &json!({"name": "周护士", "phone": "13700002222", "skills": skills}),
        )
        .await;
    let token = app.token("nurse", &id, "demo").await;
    let shift = app
        .post("/v1/nurse/shift", Some(&token), &json!({"state": "on"}))
        .await;
    assert!(shift.status.is_success(), "{}", shift.text);
    locate(app, &token, at).await;
    (id, token)
}

async fn locate(app: &TestApp, token: &str, at: (f64, f64)) {
    let reply = app
        .post(
            "/v1/nurse/locations",
            Some(token),
            &json!({"fixes": [{"lat": at.0, "lng": at.1, "accuracy_m": 5.0, "ts": Utc::now()}]}),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.text);
}

async fn quote(app: &TestApp, token: &str, body: Value) -> yixin_e2e::Reply {
    app.post("/v1/quotes", Some(token), &body).await
}

#[tokio::test]
async fn a_quote_comes_from_the_live_fleet_before_ordering() {
    let app = spawn_app().await;
    let me = app.resident_token().await;
    let here = json!({"lat": HOME.0, "lng": HOME.1});

    // Nobody on shift: no promise now; the next bookable time instead.
    let q = quote(
        &app,
        &me,
        json!({"service_code": "infant_jaundice_test", "location": here}),
    )
    .await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.text);
    assert_eq!(q.json["within_promise"], false);
    assert_eq!(q.json["reason"], "no_nurse_free");
    assert!(q.json.get("predicted_arrival_min").is_none());
    let earliest: DateTime<Utc> = q.json["earliest_at"].as_str().unwrap().parse().unwrap();
    assert!(earliest > Utc::now() + TimeDelta::minutes(59));
    assert!(q.json["price_cents"].as_u64().unwrap() > 0);

    // A nurse about 1.5 km away: a few minutes, the promise holds.
    nurse_at(&app, (29.4, 106.33)).await;
    let mut predicted = None;
    for _ in 0..100 {
        let q = quote(
            &app,
            &me,
            json!({"service_code": "infant_jaundice_test", "location": here}),
        )
        .await;
        if let Some(n) = q.json["predicted_arrival_min"].as_u64() {
            assert_eq!(q.json["within_promise"], true, "{}", q.text);
            assert!(q.json.get("reason").is_none(), "{}", q.text);
            predicted = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n = predicted.expect("the fleet feed brought the nurse to the dispatcher");
    // 1.4 km straight × 1.4 detour at 25 km/h + 60 s: about 6 minutes.
    assert!((3..=10).contains(&n), "{n} minutes");

    // A booked time is quoted for its time.
    let at = Utc::now() + TimeDelta::hours(3);
    let q = quote(
        &app,
        &me,
        json!({"service_code": "infant_jaundice_test", "location": here, "scheduled_for": at}),
    )
    .await;
    assert_eq!(q.json["reason"], "scheduled", "{}", q.text);

    for (body, field) in [
        (
            json!({"service_code": "nope", "location": here}),
            "service_code",
        ),
        (
            json!({"service_code": "infant_jaundice_test", "location": {"lat": 39.9, "lng": 116.4}}),
            "location",
        ),
    ] {
        let q = quote(&app, &me, body).await;
        assert_eq!(q.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", q.text);
        assert_eq!(q.json["error"]["field"], field);
    }
    // Residents only.
    let nurse = app.token("nurse", "n-1", "demo").await;
    let q = quote(
        &app,
        &nurse,
        json!({"service_code": "infant_jaundice_test", "location": here}),
    )
    .await;
    assert_eq!(q.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn the_en_route_nurse_is_on_the_order_and_each_fix_brings_a_new_eta() {
    let app = spawn_app().await;
    let me = app.resident_token().await;
    let (_, nurse) = nurse_at(&app, (29.41, 106.34)).await;
    let placed = app.order_jaundice_test(&me, HOME).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    let order = placed.json["id"].as_str().unwrap().to_owned();

    // The engine offers it to her; she accepts and sets off.
    let mut offer_id = None;
    for _ in 0..100 {
        let offers = app.get("/v1/nurse/offers", Some(&nurse)).await;
        if let Some(o) = offers.json.as_array().and_then(|a| a.first()) {
            offer_id = o["offer_id"]
                .as_str()
                .or(o["id"].as_str())
                .map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let offer_id = offer_id.expect("an offer");
    let accepted = app
        .post(
            &format!("/v1/nurse/offers/{offer_id}/accept"),
            Some(&nurse),
            &json!({}),
        )
        .await;
    assert!(accepted.status.is_success(), "{}", accepted.text);
    let mut live = app.ws(&format!("/v1/orders/{order}/live"), &me).await;
    live.expect_type("order", WAIT).await;
    let step = app
        .post(
            &format!("/v1/nurse/orders/{order}/progress"),
            Some(&nurse),
            &json!({"step": "en_route"}),
        )
        .await;
    assert!(step.status.is_success(), "{}", step.text);

    // Far, then near: the ETA of the frames falls with the distance.
    let mut etas = Vec::new();
    for at in [(29.41, 106.34), (29.392, 106.322)] {
        locate(&app, &nurse, at).await;
        let frame = loop {
            let frame = live
                .expect_type("nurse_location", Duration::from_secs(8))
                .await;
            if (frame["location"]["lat"].as_f64().unwrap() - at.0).abs() < 1e-9 {
                break frame;
            }
        };
        let eta: DateTime<Utc> = frame["eta"].as_str().unwrap().parse().unwrap();
        etas.push(eta);
        // The order view shows where she is while en route.
        let seen = app.get(&format!("/v1/orders/{order}"), Some(&me)).await;
        assert_eq!(seen.json["status"], "en_route");
        let lat = seen.json["nurse"]["location"]["lat"].as_f64().unwrap();
        assert!((lat - at.0).abs() < 1e-9, "{}", seen.text);
        // Positions reach the feed at most every 2 s per nurse.
        tokio::time::sleep(Duration::from_millis(2_100)).await;
    }
    assert!(
        etas[1] < etas[0] - TimeDelta::minutes(3),
        "the ETA did not follow the nurse: {etas:?}"
    );
    app.stop().await;
}
