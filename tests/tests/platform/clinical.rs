//! Clinical governance, part 2: intake and red-flag triage, consent,
//! screening (approve / reject) and the visit record with its export.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use yixin::Role;
use yixin_domain::{NurseId, OrderId, OrderStatus};
use yixin_e2e::{
    AppOptions, CONSENT_BY, CONSENT_VERSION, StatusCode, TestApp, jaundice_record, spawn_app,
    spawn_app_with,
};
use yixin_store::OrderTransition;

const WAIT: Duration = Duration::from_secs(8);
const HERE: (f64, f64) = (29.39, 106.32);

/// The platform with automatic dispatch off (the record tests give the job
/// to the nurse themselves).
async fn spawn_manual() -> TestApp {
    spawn_app_with(AppOptions {
        role: Role::All,
        configure: Box::new(|s| s.dispatch.auto = false),
    })
    .await
}

/// A nurse on the demo roster with every skill of the catalogue, and a
/// token for them. (Where credentials gate dispatch, this is the one place
/// to make the nurse qualified.)
async fn ready_nurse(app: &TestApp) -> (NurseId, String) {
    let (nurse, token) = app.stored_qualified_nurse("赵护士", "13900002222").await;
    (nurse.id, token)
}

async fn coordinator(app: &TestApp) -> String {
    app.token("coordinator", "coord-clinical", &app.settings.demo.org_id)
        .await
}

fn order_id(reply: &Value) -> OrderId {
    reply["id"].as_str().unwrap().parse().map(OrderId).unwrap()
}

#[tokio::test]
async fn every_red_flag_is_sent_to_120_not_queued() {
    let app = spawn_app().await;
    for flag in [
        "chest_pain",
        "stroke_signs",
        "breathing_difficulty",
        "heavy_bleeding",
        "unconscious",
    ] {
        // A resident each: refused orders count against the rate limit too.
        let resident = app.resident_token().await;
        let reply = app
            .order_service(
                &resident,
                "infant_jaundice_test",
                HERE,
                json!({"answers": {flag: true}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{flag}");
        assert_eq!(reply.error_code(), "emergency_call_120", "{flag}");
        assert_eq!(reply.json["error"]["field"], format!("answers.{flag}"));
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("120") && message.contains("拨打"),
            "{message}"
        );
        // Even without consent, the emergency answer comes first.
        let no_consent = app
            .order_service(
                &resident,
                "wound_care",
                HERE,
                json!({"answers": {flag: true}, "consent_version": null}),
            )
            .await;
        assert_eq!(no_consent.error_code(), "emergency_call_120");
    }
    // "No" to every red flag is an ordinary order.
    let resident = app.resident_token().await;
    let reply = app
        .order_service(
            &resident,
            "infant_jaundice_test",
            HERE,
            json!({"answers": {"chest_pain": false, "unconscious": false}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["status"], "pending");
    app.stop().await;
}

#[tokio::test]
async fn consent_answers_and_doctors_orders_are_checked() {
    let app = spawn_app().await;
    let resident = app.resident_token().await;
    let cases = [
        (
            "infant_jaundice_test",
            json!({"consent_version": null}),
            "consent_required",
            "consent_version",
        ),
        (
            "infant_jaundice_test",
            json!({"consent_version": "2020-01-01"}),
            "consent_outdated",
            "consent_version",
        ),
        (
            "infant_jaundice_test",
            json!({"answers": {"favourite_colour": "blue"}}),
            "unknown_field",
            "answers.favourite_colour",
        ),
        (
            "infant_jaundice_test",
            json!({"answers": {"bedridden": "yes"}}),
            "invalid_value",
            "answers.bedridden",
        ),
        (
            "infant_jaundice_test",
            json!({"answers": {"allergies": "青霉\u{0}素"}}),
            "control_character",
            "answers.allergies",
        ),
        (
            "urinary_catheter_replacement",
            json!({}),
            "doctor_order_required",
            "doctor_order_ref",
        ),
    ];
    for (service, extra, code, field) in cases {
        let reply = app
            .order_service(&resident, service, HERE, extra.clone())
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{extra}");
        assert_eq!(reply.error_code(), code, "{extra}");
        assert_eq!(reply.json["error"]["field"], field, "{extra}");
    }
    // The catalogue tells a client all of it.
    let catalog = app.get("/v1/catalog", Some(&resident)).await;
    let services: Vec<&Value> = catalog.json["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["services"].as_array().unwrap())
        .collect();
    let catheter = services
        .iter()
        .find(|s| s["code"] == "urinary_catheter_replacement")
        .unwrap();
    assert_eq!(catheter["requires_doctor_order"], true);
    assert_eq!(catheter["requires_review"], true);
    assert_eq!(catheter["consent"]["version"], CONSENT_VERSION);
    let spo2 = catheter["record_template"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "spo2")
        .unwrap();
    assert_eq!(
        (spo2["min"].as_f64(), spo2["max"].as_f64()),
        (Some(50.0), Some(100.0))
    );
    assert!(
        catheter["intake"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["code"] == "chest_pain" && q["red_flag"] == true)
    );
    // With its doctor's order, the catheter replacement waits for screening.
    let reply = app
        .order_service(
            &resident,
            "urinary_catheter_replacement",
            HERE,
            json!({"doctor_order_ref": "RX-2026-1130-7"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["status"], "awaiting_review");
    app.stop().await;
}

#[tokio::test]
async fn screening_holds_dispatch_until_approval_and_the_promise_restarts() {
    let app = spawn_app().await;
    let (nurse, nurse_token) = ready_nurse(&app).await;
    let mut ws = app.ws("/v1/nurse/ws", &nurse_token).await;
    ws.send_json(&json!({"type": "shift", "state": "on"})).await;
    ws.expect_type("ack", WAIT).await;
    ws.send_json(&json!({"type": "location", "lat": 29.391, "lng": 106.321, "accuracy_m": 8.0, "ts": Utc::now()}))
        .await;
    let resident = app.resident_token().await;
    let coordinator = coordinator(&app).await;

    // A risk answer sends even a jaundice test to screening.
    let placed = app
        .order_service(
            &resident,
            "infant_jaundice_test",
            HERE,
            json!({"answers": {"anticoagulants": true, "bedridden": false}}),
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    assert_eq!(placed.json["status"], "awaiting_review");
    assert_eq!(placed.json["flags"], json!(["anticoagulants"]));
    assert_eq!(placed.json["notice"]["code"], "awaiting_review");
    assert!(
        placed.json["notice"]["text_zh"]
            .as_str()
            .unwrap()
            .contains("审核通过时起算")
    );
    let order = order_id(&placed.json);
    let first_promise: DateTime<Utc> = placed.json["promised_by"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Not offered while it waits: the nurse's phone stays quiet.
    let early = ws.next_json(Duration::from_secs(3)).await;
    assert!(
        early.as_ref().is_none_or(|f| f["type"] != "offer"),
        "offered before approval: {early:?}"
    );
    let queue = app.get("/v1/dispatch/reviews", Some(&coordinator)).await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.text);
    let item = queue
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["order"]["id"] == order.to_string())
        .expect("the order is in the review queue");
    assert!(item["waiting_min"].as_i64().unwrap() >= 0);
    assert_eq!(
        item["order"]["clinical"]["flags"],
        json!(["anticoagulants"])
    );
    // Nobody can assign it by hand before screening either.
    let assign = app
        .post(
            &format!("/v1/dispatch/orders/{order}/assign"),
            Some(&coordinator),
            &json!({"nurse_id": nurse.to_string()}),
        )
        .await;
    assert_eq!(assign.status, StatusCode::CONFLICT, "{}", assign.text);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let approved = app
        .post(
            &format!("/v1/dispatch/orders/{order}/approve"),
            Some(&coordinator),
            &json!({}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    assert_eq!(approved.json["clinical"]["reviewed_by"], "coord-clinical");
    let promise: DateTime<Utc> = approved.json["promised_by"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(promise > first_promise, "the clock restarts at approval");
    // Approved once only.
    let again = app
        .post(
            &format!("/v1/dispatch/orders/{order}/approve"),
            Some(&coordinator),
            &json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "not_awaiting_review");

    // Now dispatch starts: the offer carries the flags, never the address.
    let offer = ws.expect_type("offer", WAIT).await;
    assert_eq!(offer["order_id"], order.to_string());
    assert_eq!(offer["flags"], json!(["anticoagulants"]));
    assert!(offer.get("address").is_none() && offer.get("contact").is_none());
    let seen = app
        .get(&format!("/v1/orders/{order}"), Some(&resident))
        .await;
    assert!(seen.json["notice"].is_null());
    let timeline: Vec<&str> = seen.json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(&timeline[..2], ["awaiting_review", "pending"]);
    app.stop().await;
}

#[tokio::test]
async fn screening_rejection_tells_the_resident_why() {
    let app = spawn_app().await;
    let resident = app.resident_token().await;
    let coordinator = coordinator(&app).await;
    // Pressure ulcer care is always screened.
    let placed = app
        .order_service(&resident, "pressure_ulcer_care", HERE, json!({}))
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    assert_eq!(placed.json["status"], "awaiting_review");
    let order = order_id(&placed.json);

    for (reason, field) in [(json!(" "), "reason"), (json!("x".repeat(501)), "reason")] {
        let reply = app
            .post(
                &format!("/v1/dispatch/orders/{order}/reject"),
                Some(&coordinator),
                &json!({"reason": reason}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
        assert_eq!(reply.json["error"]["field"], field);
    }
    let other_org = app.token("coordinator", "c2", "other-org").await;
    let reply = app
        .post(
            &format!("/v1/dispatch/orders/{order}/reject"),
            Some(&other_org),
            &json!({"reason": "no"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reason = "四期压疮需先到医院清创，请就医后再预约";
    let rejected = app
        .post(
            &format!("/v1/dispatch/orders/{order}/reject"),
            Some(&coordinator),
            &json!({"reason": reason}),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.text);
    assert_eq!(rejected.json["status"], "rejected");
    let seen = app
        .get(&format!("/v1/orders/{order}"), Some(&resident))
        .await;
    assert_eq!(seen.json["status"], "rejected");
    assert_eq!(seen.json["review_reason"], reason);
    assert_eq!(seen.json["notice"]["code"], "rejected");
    assert!(
        seen.json["notice"]["text_zh"]
            .as_str()
            .unwrap()
            .contains(reason)
    );
    // Over: neither approvable nor cancellable, and out of the queue.
    let approve = app
        .post(
            &format!("/v1/dispatch/orders/{order}/approve"),
            Some(&coordinator),
            &json!({}),
        )
        .await;
    assert_eq!(approve.status, StatusCode::CONFLICT);
    let queue = app.get("/v1/dispatch/reviews", Some(&coordinator)).await;
    assert!(
        !queue
            .json
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["order"]["id"] == order.to_string())
    );
    let status = app
        .running()
        .backends
        .store
        .get_order(order)
        .await
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(status, OrderStatus::Rejected);
    app.stop().await;
}

/// A jaundice test order given straight to the nurse (as an accepted offer
/// would), then `en_route` and `arrived`.
async fn job_at_the_door(app: &TestApp, nurse: NurseId, token: &str) -> (OrderId, String) {
    let resident = app.resident_token().await;
    let placed = app.order_jaundice_test(&resident, HERE).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
    let order = order_id(&placed.json);
    app.running()
        .backends
        .store
        .transition_order(OrderTransition {
            nurse_id: Some(Some(nurse)),
            ..OrderTransition::new(
                order,
                vec![OrderStatus::Pending],
                OrderStatus::Assigned,
                Utc::now(),
            )
        })
        .await
        .unwrap();
    for step in ["en_route", "arrived"] {
        // At the door: the arrival check measures the phone's position.
        let reply = app
            .post(
                &format!("/v1/nurse/orders/{order}/progress"),
                Some(token),
                &json!({"step": step, "location": {"lat": HERE.0, "lng": HERE.1}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{step}: {}", reply.text);
    }
    (order, resident)
}

#[tokio::test]
async fn consent_on_site_and_a_record_before_completion() {
    let app = spawn_manual().await;
    let (nurse, token) = ready_nurse(&app).await;
    let (order, resident) = job_at_the_door(&app, nurse, &token).await;
    let progress = format!("/v1/nurse/orders/{order}/progress");
    let record = format!("/v1/nurse/orders/{order}/record");

    // No record before the visit starts.
    let early = app.post(&record, Some(&token), &jaundice_record()).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.text);

    for body in [
        json!({"step": "started"}),
        json!({"step": "started", "consent_by": "  "}),
    ] {
        let reply = app.post(&progress, Some(&token), &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.text
        );
        assert_eq!(reply.error_code(), "consent_required");
        assert_eq!(reply.json["error"]["field"], "consent_by");
    }
    let started = app
        .post(
            &progress,
            Some(&token),
            &json!({"step": "started", "consent_by": CONSENT_BY}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);

    // Completion without a record is refused, naming what is missing.
    let refused = app
        .post(&progress, Some(&token), &json!({"step": "completed"}))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert_eq!(refused.error_code(), "record_required");
    let message = refused.json["error"]["message"].as_str().unwrap();
    for f in [
        "values.temperature_c",
        "values.pulse",
        "values.spo2",
        "values.bilirubin_mg_dl",
    ] {
        assert!(message.contains(f), "{message}");
    }

    // Bad records: 422 naming the field.
    let good = jaundice_record();
    let with = |path: &str, value: Value| {
        let mut body = good.clone();
        if path == "notes" {
            body["notes"] = value;
        } else {
            body["values"][path] = value;
        }
        body
    };
    let without_pulse = {
        let mut body = good.clone();
        body["values"].as_object_mut().unwrap().remove("pulse");
        body
    };
    let cases = [
        (
            with("temperature_c", json!(45.5)),
            "out_of_range",
            "values.temperature_c",
        ),
        (with("spo2", json!(30)), "out_of_range", "values.spo2"),
        (
            with("bp_systolic", json!(400)),
            "out_of_range",
            "values.bp_systolic",
        ),
        (
            with("pulse", json!("fast")),
            "invalid_value",
            "values.pulse",
        ),
        (with("mood", json!("happy")), "unknown_field", "values.mood"),
        (
            with("materials_used", json!("棉签\u{0}")),
            "control_character",
            "values.materials_used",
        ),
        (
            with("notes", json!("ok\u{0}")),
            "control_character",
            "notes",
        ),
        (
            with("notes", json!("长".repeat(2001))),
            "invalid_value",
            "notes",
        ),
        (without_pulse, "required", "values.pulse"),
    ];
    for (body, code, field) in cases {
        let reply = app.post(&record, Some(&token), &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), code, "{field}");
        assert_eq!(reply.json["error"]["field"], field);
    }
    // Another nurse cannot write this record.
    let (_, other) = ready_nurse(&app).await;
    let reply = app.post(&record, Some(&other), &good).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let first = app.post(&record, Some(&token), &good).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.json["version"], 1);
    // The summary waits for completion.
    let summary = format!("/v1/orders/{order}/record");
    assert_eq!(
        app.get(&summary, Some(&resident)).await.status,
        StatusCode::NOT_FOUND
    );
    let done = app
        .post(&progress, Some(&token), &json!({"step": "completed"}))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.json["status"], "completed");

    let seen = app.get(&summary, Some(&resident)).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
    assert_eq!(seen.json["version"], 1);
    assert_eq!(seen.json["consent_by"], CONSENT_BY);
    let spo2 = seen.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["code"] == "spo2")
        .unwrap();
    assert_eq!(
        (spo2["value"].as_i64(), spo2["unit"].as_str()),
        (Some(98), Some("%"))
    );
    // Someone else's order's record is not found.
    let stranger = app.resident_token().await;
    assert_eq!(
        app.get(&summary, Some(&stranger)).await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

#[tokio::test]
async fn a_submitted_record_is_never_changed_amendments_are_versions() {
    let app = spawn_manual().await;
    let (nurse, token) = ready_nurse(&app).await;
    let (order, resident) = job_at_the_door(&app, nurse, &token).await;
    let coordinator = coordinator(&app).await;
    let started = app
        .post(
            &format!("/v1/nurse/orders/{order}/progress"),
            Some(&token),
            &json!({"step": "started", "consent_by": CONSENT_BY}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let since = Utc::now() - chrono::TimeDelta::minutes(1);
    let first = app.submit_jaundice_record(&token, &order.to_string()).await;
    assert_eq!(first.json["version"], 1);
    let done = app
        .post(
            &format!("/v1/nurse/orders/{order}/progress"),
            Some(&token),
            &json!({"step": "completed"}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    // An amendment after completion: a new version; the first stays as it was.
    let mut amended = jaundice_record();
    amended["values"]["bilirubin_mg_dl"] = json!(11.4);
    amended["notes"] = json!("复核读数后更正");
    let second = app
        .post(
            &format!("/v1/nurse/orders/{order}/record"),
            Some(&token),
            &amended,
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    assert_eq!(second.json["version"], 2);
    let summary = app
        .get(&format!("/v1/orders/{order}/record"), Some(&resident))
        .await;
    assert_eq!(summary.json["version"], 2);
    assert_eq!(summary.json["notes"], "复核读数后更正");

    let from = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let json_export = app
        .get(
            &format!("/v1/dispatch/records?from={from}&format=json"),
            Some(&coordinator),
        )
        .await;
    assert_eq!(json_export.status, StatusCode::OK, "{}", json_export.text);
    let versions: Vec<&Value> = json_export
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["order_id"] == order.to_string())
        .collect();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(
        versions[0]["values"]["bilirubin_mg_dl"], 9.2,
        "version 1 unchanged"
    );
    assert_eq!(versions[1]["values"]["bilirubin_mg_dl"], 11.4);

    let csv = app
        .get(
            &format!("/v1/dispatch/records?from={from}&format=csv"),
            Some(&coordinator),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{:?}",
        csv.headers
    );
    let mut lines = csv.text.lines();
    assert_eq!(
        lines.next(),
        Some("order_id,version,submitted_at,service_code,nurse_id,field,value")
    );
    assert!(csv.text.contains(&format!("{order},2,")));
    assert!(csv.text.contains(",bilirubin_mg_dl,11.4"));
    // Another organisation sees none of it; a bad format or period is 400.
    let other = app.token("coordinator", "c2", "other-org").await;
    let theirs = app
        .get(&format!("/v1/dispatch/records?from={from}"), Some(&other))
        .await;
    assert_eq!(theirs.json, json!([]));
    let bad = app
        .get("/v1/dispatch/records?format=xml", Some(&coordinator))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json["error"]["field"], "format");
    let reversed = app
        .get(
            "/v1/dispatch/records?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            Some(&coordinator),
        )
        .await;
    assert_eq!(reversed.status, StatusCode::BAD_REQUEST);
    app.stop().await;
}
