//! The order history the demand forecast learns from.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use yixin_domain::{Address, Contact, GeoPoint, NewOrder, Order, OrgId, ResidentId, Skill};

use crate::{NewOutboxMessage, Store};

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

async fn order_at(store: &Store, org: &OrgId, at: DateTime<Utc>, lat: f64, lng: f64) -> Order {
    order_of(store, org, "wound_care", at, lat, lng).await
}

async fn order_of(
    store: &Store,
    org: &OrgId,
    service: &str,
    at: DateTime<Utc>,
    lat: f64,
    lng: f64,
) -> Order {
    let o = Order::place(
        NewOrder {
            org_id: org.clone(),
            resident_id: ResidentId::from("r1"),
            service_code: service.to_owned(),
            location: GeoPoint::new(lat, lng).unwrap(),
            address: Address::new("双福街道 福城大道 88 号", None).unwrap(),
            contact: Contact::new("王芳", "13800138000").unwrap(),
            notes: None,
            scheduled_for: None,
        },
        at,
    );
    store
        .create_order(
            &o,
            NewOutboxMessage {
                topic: "orders".to_owned(),
                payload: vec![],
            },
            None,
        )
        .await
        .unwrap();
    o
}

/// Only the organisation's orders since the cut-off, newest first, bounded,
/// each with its point, its time and its service's required skills; a
/// cancelled order counts as demand.
pub async fn order_history_is_scoped_windowed_newest_first_and_bounded(store: Store) {
    let (demo, other) = (OrgId::from("demo"), OrgId::from("other-hospital"));
    store.ensure_organization(&demo, "Demo").await.unwrap();
    store.ensure_organization(&other, "Other").await.unwrap();
    let t = now();
    let _too_old = order_at(&store, &demo, t - TimeDelta::days(30), 29.30, 106.20).await;
    let a = order_at(&store, &demo, t - TimeDelta::days(6), 29.39, 106.32).await;
    let b = order_of(
        &store,
        &demo,
        "knee_joint_package",
        t - TimeDelta::hours(5),
        29.40,
        106.33,
    )
    .await;
    let c = order_of(
        &store,
        &demo,
        "newborn_umbilical_care",
        t - TimeDelta::minutes(10),
        29.41,
        106.34,
    )
    .await;
    let _elsewhere = order_at(&store, &other, t - TimeDelta::hours(1), 29.50, 106.50).await;
    store
        .cancel_order(c.id, Some("changed my mind"), t, |_, _| NewOutboxMessage {
            topic: "orders".to_owned(),
            payload: vec![],
        })
        .await
        .unwrap();

    let since = t - TimeDelta::days(14);
    let history = store.order_history(&demo, since, 100).await.unwrap();
    let got: Vec<(DateTime<Utc>, f64, f64)> = history
        .iter()
        .map(|p| (p.created_at, p.location.lat(), p.location.lng()))
        .collect();
    assert_eq!(
        got,
        vec![
            (c.created_at, 29.41, 106.34),
            (b.created_at, 29.40, 106.33),
            (a.created_at, 29.39, 106.32),
        ]
    );
    // Bounded: the newest first.
    // Each with the skills its service requires (the seed catalogue's).
    let skills =
        |codes: &[&str]| -> Vec<Skill> { codes.iter().map(|c| Skill::new(c).unwrap()).collect() };
    assert_eq!(
        history
            .iter()
            .map(|p| p.required_skills.clone())
            .collect::<Vec<_>>(),
        vec![
            skills(&["neonatal", "wound_care"]),
            skills(&["rehab"]),
            skills(&["wound_care"])
        ]
    );
    let two = store.order_history(&demo, since, 2).await.unwrap();
    assert_eq!(
        two.iter().map(|p| p.created_at).collect::<Vec<_>>(),
        vec![c.created_at, b.created_at]
    );
    // Another organisation sees only its own.
    let theirs = store.order_history(&other, since, 100).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].location.lat(), 29.50);
    // None before the window.
    assert!(
        store
            .order_history(&demo, t + TimeDelta::minutes(1), 100)
            .await
            .unwrap()
            .is_empty()
    );
}
