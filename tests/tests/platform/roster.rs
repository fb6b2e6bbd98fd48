//! The coordinator's roster: add, list, change skills, deactivate; scoped
//! to the coordinator's organisation.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use yixin_e2e::{StatusCode, spawn_app};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_coordinator_manages_the_roster_of_their_organisation_only() {
    let app = spawn_app().await;
    let coordinator = app.token("coordinator", "coord-1", "demo").await;
    let reply = app
        .post(
            "/v1/dispatch/nurses",
            Some(&coordinator),
            &json!({"name": " 陈护士 ", "phone": "13911112222", "skills": ["wound_care"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["name"], "陈护士");
    assert_eq!(reply.json["shift"], "off");
    let id = reply.json["id"].as_str().unwrap().to_owned();

    for (body, field, code) in [
        (
            json!({"name":"x","phone":"12345","skills":["wound_care"]}),
            "phone",
            None,
        ),
        (
            json!({"name":"x","phone":"13911112222","skills":["flying"]}),
            "skills[0]",
            Some("unknown_skill"),
        ),
        (
            json!({"name":"","phone":"13911112222","skills":["wound_care"]}),
            "name",
            None,
        ),
        (
            json!({"name":"x","phone":"13911112222","skills":[]}),
            "skills",
            None,
        ),
    ] {
        let reply = app
            .post("/v1/dispatch/nurses", Some(&coordinator), &body)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.text
        );
        assert_eq!(reply.json["error"]["field"], field, "{body}");
        if let Some(code) = code {
            assert_eq!(reply.error_code(), code);
        }
    }
    let resident = app.resident_token().await;
    let reply = app
        .post(
            "/v1/dispatch/nurses",
            Some(&resident),
            &json!({"name":"x","phone":"13911112222","skills":["wound_care"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // The nurse streams a fix: the roster shows where they are.
    let nurse = app.token("nurse", &id, "demo").await;
    let mut ws = app.ws("/v1/nurse/ws", &nurse).await;
    ws.send_json(&json!({"type":"shift","state":"on"})).await;
    ws.expect_type("ack", WAIT).await;
    ws.send_json(
        &json!({"type":"location","lat":29.39,"lng":106.32,"accuracy_m":7,"ts":Utc::now()}),
    )
    .await;
    let mut listed = json!(null);
    for _ in 0..50 {
        let reply = app.get("/v1/dispatch/nurses", Some(&coordinator)).await;
        listed = reply
            .json
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap();
        if !listed["position"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed["shift"], "on");
    assert_eq!(listed["position"]["lat"], 29.39);

    // Another organisation's coordinator sees none of it.
    let stranger = app.token("coordinator", "coord-2", "other-hospital").await;
    let theirs = app.get("/v1/dispatch/nurses", Some(&stranger)).await;
    assert!(
        theirs
            .json
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["id"] != id)
    );
    let reply = app
        .send(
            app.http
                .patch(app.url(&format!("/v1/dispatch/nurses/{id}")))
                .bearer_auth(&stranger)
                .json(&json!({"active": false})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // Skills change; then deactivation closes the phone's socket and keeps it out.
    let reply = app
        .send(
            app.http
                .patch(app.url(&format!("/v1/dispatch/nurses/{id}")))
                .bearer_auth(&coordinator)
                .json(&json!({"skills": ["wound_care", "catheter"]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["skills"], json!(["catheter", "wound_care"]));
    let reply = app
        .send(
            app.http
                .patch(app.url(&format!("/v1/dispatch/nurses/{id}")))
                .bearer_auth(&coordinator)
                .json(&json!({"active": false})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["active"], false);
    assert_eq!(ws.close_code(WAIT).await, Some(4003));
    assert_eq!(app.try_ws("/v1/nurse/ws", &nurse).await.err(), Some(403));
    app.stop().await;
}
