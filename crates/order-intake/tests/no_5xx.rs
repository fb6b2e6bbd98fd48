//! Arbitrary JSON thrown at `POST /v1/orders` never makes a 5xx.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use actix_web::{App, test, web};
use proptest::{
    prelude::*,
    strategy::ValueTree,
    test_runner::{Config, TestRunner},
};
use serde_json::{Value, json};
use utoipa_actix_web::AppExt;
use yixin_auth::{Authenticator, Role};
use yixin_domain::{OrgId, ServiceArea};
use yixin_order_intake::{OrderIntake, OrderIntakeConfig};
use yixin_queue::{MemoryQueue, QueueConfig};

fn valid_body() -> Value {
    json!({
        "service_code": "infant_jaundice_test",
        "location": {"lat": 29.39, "lng": 106.32},
        "address": {"text": "福城大道 88 号", "detail": "1102"},
        "contact": {"name": "王", "phone": "13812345678"},
        "notes": "n",
        "scheduled_for": null,
        "consent_version": "2026-11-30",
        "answers": {"bedridden": false, "allergies": ""},
    })
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "[0-9T:+-Z]{0,30}".prop_map(Value::String),
        Just(json!("13812345678")),
        Just(json!("2099-01-01T00:00:00Z")),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z_]{1,12}",
                    Just("lat".to_owned()),
                    Just("lng".to_owned()),
                    Just("phone".to_owned()),
                    Just("text".to_owned()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const PATHS: &[&[&str]] = &[
    &["service_code"],
    &["location"],
    &["location", "lat"],
    &["location", "lng"],
    &["address"],
    &["address", "text"],
    &["address", "detail"],
    &["contact"],
    &["contact", "name"],
    &["contact", "phone"],
    &["notes"],
    &["scheduled_for"],
    &["consent_version"],
    &["answers"],
    &["answers", "bedridden"],
    &["answers", "allergies"],
    &["doctor_order_ref"],
];

/// A valid body with one field replaced (or removed when `value` is None).
fn mutate(path: &[&str], value: Option<Value>) -> Value {
    let mut body = valid_body();
    let (last, parents) = path.split_last().unwrap();
    let mut node = &mut body;
    for p in parents {
        node = &mut node[*p];
    }
    let obj = node.as_object_mut().unwrap();
    match value {
        Some(v) => {
            obj.insert((*last).to_owned(), v);
        }
        None => {
            obj.remove(*last);
        }
    }
    body
}

fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        arb_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (
            prop::sample::select(PATHS),
            prop::option::weighted(0.9, arb_json())
        )
            .prop_map(|(path, v)| serde_json::to_vec(&mutate(path, v)).unwrap()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

#[actix_web::test]
async fn arbitrary_bodies_never_cause_a_5xx() {
    let store = yixin_store::testing::fresh_sqlite().await;
    let org = OrgId::from("demo");
    store.ensure_organization(&org, "Demo").await.unwrap();
    store
        .upsert_service_area(&ServiceArea::shuangfu_demo(org))
        .await
        .unwrap();
    let auth = Authenticator::hs256(
        b"0123456789abcdef0123456789abcdef-test-secret",
        Duration::from_secs(3600),
        Duration::from_secs(5),
    )
    .unwrap();
    let token = auth.mint(Role::Resident, "r-1", "demo").unwrap();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let config = OrderIntakeConfig {
        orders_per_minute: u32::MAX,
        ..OrderIntakeConfig::default()
    };
    let intake = OrderIntake::new(
        store,
        Arc::new(MemoryQueue::new(QueueConfig::default())),
        config,
        shutdown,
    );
    let mount = intake.mount();
    let app = test::init_service(
        App::new()
            .into_utoipa_app()
            .app_data(web::Data::new(auth))
            .configure(move |cfg| mount(cfg))
            .split_for_parts()
            .0,
    )
    .await;

    // The valid body itself is created.
    let req = test::TestRequest::post()
        .uri("/v1/orders")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Idempotency-Key", "valid"))
        .insert_header(("Content-Type", "application/json"))
        .set_payload(serde_json::to_vec(&valid_body()).unwrap())
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status().as_u16(), 201);

    let mut runner = TestRunner::new(Config::with_cases(300));
    let strategy = arb_body();
    let mut tally = std::collections::BTreeMap::<u16, u32>::new();
    for case in 0..300 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        let req = test::TestRequest::post()
            .uri("/v1/orders")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Idempotency-Key", format!("case-{case}")))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body.clone())
            .to_request();
        let resp = test::call_service(&app, req).await;
        let status = resp.status();
        assert!(
            !status.is_server_error(),
            "{status} for body {}",
            String::from_utf8_lossy(&body)
        );
        assert!(status.is_success() || status.is_client_error(), "{status}");
        *tally.entry(status.as_u16()).or_default() += 1;
    }
    // The inputs reach validation, not just the JSON parser.
    assert!(tally.get(&422).copied().unwrap_or(0) > 20, "{tally:?}");
    assert!(tally.get(&400).copied().unwrap_or(0) > 0, "{tally:?}");
    assert!(tally.get(&201).copied().unwrap_or(0) > 0, "{tally:?}");
}
