//! Webhooks: endpoints per organisation, capture once per endpoint and
//! event, claims with a lease, retry, dead, replay, pruning, and the
//! residents' notifications.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde_json::json;
use yixin_contracts::webhooks::{NOTIFICATION_SMS, OFFER_MADE, ORDER_ASSIGNED, WebhookEvent};
use yixin_domain::webhooks::DeliveryStatus;
use yixin_domain::{
    Address, Contact, GeoPoint, NewOrder, Nurse, Order, OrgId, PhoneNumber, ResidentId, Skill,
};

use crate::{
    NewOutboxMessage, NewWebhookEndpoint, NotificationTemplates, Replay, Store,
    WebhookEndpointChange,
};

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn demo() -> OrgId {
    OrgId::from("demo")
}

fn other() -> OrgId {
    OrgId::from("other")
}

async fn orgs(store: &Store) {
    store.ensure_organization(&demo(), "Demo").await.unwrap();
    store.ensure_organization(&other(), "Other").await.unwrap();
}

fn endpoint(org: OrgId, events: &[&str]) -> NewWebhookEndpoint {
    NewWebhookEndpoint {
        org_id: org,
        url: "https://hooks.example.org/in".to_owned(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        description: Some("ops".to_owned()),
        secret: "whsec_test".to_owned(),
        created_by: "c1".to_owned(),
    }
}

async fn order(store: &Store) -> Order {
    let o = Order::place(
        NewOrder {
            org_id: demo(),
            resident_id: ResidentId::from("r1"),
            service_code: "wound_care".to_owned(),
            location: GeoPoint::new(29.39, 106.32).unwrap(),
            address: Address::new("福城大道 1 号", None).unwrap(),
            contact: Contact::new("王芳", "13800138000").unwrap(),
            notes: None,
            scheduled_for: None,
        },
        now(),
    );
    let msg = NewOutboxMessage {
        topic: "orders".to_owned(),
        payload: vec![1],
    };
    store.create_order(&o, msg, None).await.unwrap();
    o
}

fn assigned(order: &Order, nurse: Option<&Nurse>, at: DateTime<Utc>) -> WebhookEvent {
    WebhookEvent {
        event_id: format!("ev-{}", order.id),
        event_type: ORDER_ASSIGNED,
        org_id: Some(order.org_id.as_str().to_owned()),
        order_id: Some(order.id.to_string()),
        occurred_at: at,
        data: json!({
            "order_id": order.id.to_string(),
            "from": "offered",
            "to": "assigned",
            "nurse_id": nurse.map(|n| n.id.to_string()),
            "eta": (at + TimeDelta::seconds(12 * 60 + 5)).to_rfc3339(),
        }),
    }
}

pub async fn endpoints_are_scoped_to_their_organisation(store: Store) {
    orgs(&store).await;
    let at = now();
    let e = store
        .create_webhook_endpoint(&endpoint(demo(), &[ORDER_ASSIGNED]), at)
        .await
        .unwrap();
    assert_eq!(e.events, [ORDER_ASSIGNED]);
    assert!(e.enabled);
    assert_eq!(
        store.webhook_endpoints(&demo()).await.unwrap(),
        std::slice::from_ref(&e)
    );
    assert!(store.webhook_endpoints(&other()).await.unwrap().is_empty());
    assert!(
        store
            .webhook_endpoint(&other(), e.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.count_webhook_endpoints(&demo()).await.unwrap(), 1);
    // Another organisation can neither change, rotate nor delete it.
    let off = WebhookEndpointChange {
        enabled: Some(false),
        ..Default::default()
    };
    assert!(
        store
            .update_webhook_endpoint(&other(), e.id, &off, at)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .rotate_webhook_secret(&other(), e.id, "x", at)
            .await
            .unwrap()
    );
    assert!(!store.delete_webhook_endpoint(&other(), e.id).await.unwrap());
    let changed = store
        .update_webhook_endpoint(
            &demo(),
            e.id,
            &WebhookEndpointChange {
                enabled: Some(false),
                events: Some(vec![OFFER_MADE.to_owned()]),
                description: Some(None),
                url: None,
            },
            at,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!changed.enabled);
    assert_eq!(changed.events, [OFFER_MADE]);
    assert_eq!(changed.description, None);
    assert!(
        store
            .rotate_webhook_secret(&demo(), e.id, "whsec_new", at)
            .await
            .unwrap()
    );
    assert!(store.delete_webhook_endpoint(&demo(), e.id).await.unwrap());
    assert!(store.webhook_endpoints(&demo()).await.unwrap().is_empty());
}

pub async fn events_are_captured_once_per_subscribed_endpoint(store: Store) {
    orgs(&store).await;
    let at = now();
    let mine = store
        .create_webhook_endpoint(&endpoint(demo(), &[ORDER_ASSIGNED, OFFER_MADE]), at)
        .await
        .unwrap();
    let uninterested = store
        .create_webhook_endpoint(&endpoint(demo(), &["order.completed"]), at)
        .await
        .unwrap();
    let theirs = store
        .create_webhook_endpoint(&endpoint(other(), &[ORDER_ASSIGNED, OFFER_MADE]), at)
        .await
        .unwrap();
    let o = order(&store).await;
    // An offer names no organisation: it is its order's.
    let offer = WebhookEvent {
        event_id: "offer-ev".to_owned(),
        event_type: OFFER_MADE,
        org_id: None,
        order_id: Some(o.id.to_string()),
        occurred_at: at,
        data: json!({"order_id": o.id.to_string()}),
    };
    let events = [assigned(&o, None, at), offer];
    let t = NotificationTemplates::default();
    assert_eq!(
        store.enqueue_webhook_events(&events, &t, at).await.unwrap(),
        2
    );
    // Handed over again (a relay that died before marking): nothing new.
    assert_eq!(
        store.enqueue_webhook_events(&events, &t, at).await.unwrap(),
        0
    );
    let log = store
        .webhook_deliveries(&demo(), mine.id, None, 50)
        .await
        .unwrap();
    let mut types: Vec<_> = log.iter().map(|d| d.event_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, [OFFER_MADE, ORDER_ASSIGNED]);
    assert!(
        log.iter()
            .all(|d| d.status == DeliveryStatus::Pending && d.org_id == "demo")
    );
    for ep in [uninterested.id, theirs.id] {
        let org = if ep == theirs.id { other() } else { demo() };
        assert!(
            store
                .webhook_deliveries(&org, ep, None, 50)
                .await
                .unwrap()
                .is_empty()
        );
    }
    // The other organisation does not see this one's log.
    assert!(
        store
            .webhook_deliveries(&other(), mine.id, None, 50)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .webhook_delivery(&other(), log[0].id)
            .await
            .unwrap()
            .is_none()
    );
    // A disabled endpoint gets nothing new.
    store
        .update_webhook_endpoint(
            &demo(),
            mine.id,
            &WebhookEndpointChange {
                enabled: Some(false),
                ..Default::default()
            },
            at,
        )
        .await
        .unwrap();
    let mut later = assigned(&o, None, at);
    later.event_id = "another".to_owned();
    assert_eq!(
        store
            .enqueue_webhook_events(&[later], &t, at)
            .await
            .unwrap(),
        0
    );
}

pub async fn deliveries_are_claimed_retried_dead_and_replayed(store: Store) {
    orgs(&store).await;
    let at = now();
    let ep = store
        .create_webhook_endpoint(&endpoint(demo(), &[ORDER_ASSIGNED]), at)
        .await
        .unwrap();
    let o = order(&store).await;
    let t = NotificationTemplates::default();
    store
        .enqueue_webhook_events(&[assigned(&o, None, at)], &t, at)
        .await
        .unwrap();
    assert_eq!(store.webhook_queue_depth().await.unwrap(), 1);
    let lease = TimeDelta::seconds(30);
    let claimed = store.claim_webhook_deliveries(at, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].url, ep.url);
    assert_eq!(claimed[0].secret, "whsec_test");
    let id = claimed[0].delivery.id;
    // Held by its lease: nobody else takes it meanwhile…
    assert!(
        store
            .claim_webhook_deliveries(at, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // …and it comes back when the lease runs out (the worker died).
    let after_lease = at + lease + TimeDelta::seconds(1);
    let again = store
        .claim_webhook_deliveries(after_lease, lease, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    // A failure with a retry: due again at that time, not before.
    let retry_at = after_lease + TimeDelta::seconds(5);
    store
        .record_webhook_failed(
            id,
            1,
            Some(500),
            "answered 500",
            Some(retry_at),
            after_lease,
        )
        .await
        .unwrap();
    let d = store.webhook_delivery(&demo(), id).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.attempts, d.last_status_code),
        (DeliveryStatus::Pending, 1, Some(500))
    );
    assert_eq!(d.next_attempt_at, Some(retry_at));
    assert!(
        store
            .claim_webhook_deliveries(after_lease, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim_webhook_deliveries(retry_at, lease, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // Out of attempts: dead, never claimed again.
    store
        .record_webhook_failed(id, 2, None, "could not connect", None, retry_at)
        .await
        .unwrap();
    let d = store.webhook_delivery(&demo(), id).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at),
        (DeliveryStatus::Dead, 2, None)
    );
    assert_eq!(d.last_error.as_deref(), Some("could not connect"));
    let far = retry_at + TimeDelta::days(1);
    assert!(
        store
            .claim_webhook_deliveries(far, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.webhook_queue_depth().await.unwrap(), 0);
    // Another organisation cannot replay it; its own can, from zero.
    assert_eq!(
        store
            .replay_webhook_delivery(&other(), id, far)
            .await
            .unwrap(),
        Replay::NotFound
    );
    let Replay::Queued(d) = store
        .replay_webhook_delivery(&demo(), id, far)
        .await
        .unwrap()
    else {
        panic!("not queued");
    };
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(
        store
            .replay_webhook_delivery(&demo(), id, far)
            .await
            .unwrap(),
        Replay::StillPending
    );
    let claimed = store
        .claim_webhook_deliveries(far, lease, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    store
        .record_webhook_delivered(id, 1, 204, far)
        .await
        .unwrap();
    let d = store.webhook_delivery(&demo(), id).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.attempts, d.last_status_code),
        (DeliveryStatus::Delivered, 1, Some(204))
    );
    assert_eq!(d.delivered_at, Some(far));
    assert_eq!(d.last_error, None);
    // Deliveries of a disabled endpoint wait.
    store
        .enqueue_webhook_ping(&demo(), ep.id, far)
        .await
        .unwrap()
        .unwrap();
    store
        .update_webhook_endpoint(
            &demo(),
            ep.id,
            &WebhookEndpointChange {
                enabled: Some(false),
                ..Default::default()
            },
            far,
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_webhook_deliveries(far, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Retention: delivered ones older than the cut go; pending ones stay.
    let cut = Utc::now() + TimeDelta::days(1);
    assert_eq!(store.prune_webhook_deliveries(cut, 100).await.unwrap(), 1);
    assert!(store.webhook_delivery(&demo(), id).await.unwrap().is_none());
    assert_eq!(store.webhook_queue_depth().await.unwrap(), 1);
}

pub async fn notifications_carry_the_template_phone_and_masked_nurse(store: Store) {
    orgs(&store).await;
    let at = now();
    let ep = store
        .create_webhook_endpoint(&endpoint(demo(), &[NOTIFICATION_SMS]), at)
        .await
        .unwrap();
    let nurse = Nurse::new(
        demo(),
        "赵小燕",
        PhoneNumber::new("13900139000").unwrap(),
        vec![Skill::new("wound_care").unwrap()],
        at,
    )
    .unwrap();
    store.insert_nurse(&nurse).await.unwrap();
    let o = order(&store).await;
    let mut t = NotificationTemplates::default();
    t.sms.insert("assigned".into(), "SMS_1".into());
    t.wechat.insert("assigned".into(), "WX_1".into());
    // Only the subscribed channel: SMS, not WeChat nor the status event itself.
    assert_eq!(
        store
            .enqueue_webhook_events(&[assigned(&o, Some(&nurse), at)], &t, at)
            .await
            .unwrap(),
        1
    );
    let log = store
        .webhook_deliveries(&demo(), ep.id, None, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].event_type, NOTIFICATION_SMS);
    let data: serde_json::Value = serde_json::from_str(&log[0].payload).unwrap();
    assert_eq!(data["template_id"], "SMS_1");
    assert_eq!(data["step"], "assigned");
    assert_eq!(data["phone"], "13800138000");
    assert_eq!(data["params"]["nurse_name"], "赵护士");
    assert_eq!(data["params"]["nurse_phone"], "139****9000");
    assert_eq!(data["params"]["eta_min"], 13);
    assert!(!log[0].payload.contains("赵小燕"));
    // No template for a step: nothing on that channel.
    let none = NotificationTemplates::default();
    let mut again = assigned(&o, Some(&nurse), at);
    again.event_id = "ev-2".into();
    assert_eq!(
        store
            .enqueue_webhook_events(&[again], &none, at)
            .await
            .unwrap(),
        0
    );
}
