//! The coordinator's reads: scoped order lists, offers and timelines per
//! order, counts by status, the day's orders with assignment and arrival.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use yixin_domain::{
    Address, Contact, GeoPoint, NewOrder, Nurse, Offer, OfferStatus, Order, OrderId, OrderStatus,
    OrgId, PhoneNumber, ResidentId, Skill,
};

use crate::{NewOutboxMessage, OrderTransition, Store};

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn demo() -> OrgId {
    OrgId::from("demo")
}

fn other() -> OrgId {
    OrgId::from("other-hospital")
}

async fn orgs(store: &Store) {
    store.ensure_organization(&demo(), "Demo").await.unwrap();
    store.ensure_organization(&other(), "Other").await.unwrap();
}

async fn nurse(store: &Store, org: OrgId) -> Nurse {
    let n = Nurse::new(
        org,
        "赵护士",
        PhoneNumber::new("13900139000").unwrap(),
        vec![Skill::new("wound_care").unwrap()],
        now(),
    )
    .unwrap();
    store.insert_nurse(&n).await.unwrap();
    n
}

/// An order of `org` created at `at` (pending).
async fn order_at(store: &Store, org: OrgId, at: DateTime<Utc>) -> Order {
    let o = Order::place(
        NewOrder {
            org_id: org,
            resident_id: ResidentId::from("r1"),
            service_code: "wound_care".to_owned(),
            location: GeoPoint::new(29.39, 106.32).unwrap(),
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

async fn step(
    store: &Store,
    id: OrderId,
    from: OrderStatus,
    to: OrderStatus,
    at: DateTime<Utc>,
    nurse: Option<&Nurse>,
) -> Order {
    let mut change = OrderTransition::new(id, vec![from], to, at);
    if let Some(n) = nurse {
        change.nurse_id = Some(Some(n.id));
    }
    store.transition_order(change).await.unwrap()
}

pub async fn org_orders_are_scoped_newest_first_and_filtered(store: Store) {
    orgs(&store).await;
    let t = now();
    let a = order_at(&store, demo(), t - TimeDelta::minutes(3)).await;
    let b = order_at(&store, demo(), t - TimeDelta::minutes(2)).await;
    let c = order_at(&store, demo(), t - TimeDelta::minutes(1)).await;
    let theirs = order_at(&store, other(), t).await;
    step(
        &store,
        b.id,
        OrderStatus::Pending,
        OrderStatus::Cancelled,
        t,
        None,
    )
    .await;

    let all = store.org_orders(&demo(), &[], 100).await.unwrap();
    let ids: Vec<OrderId> = all.iter().map(|o| o.id).collect();
    assert_eq!(
        ids,
        vec![c.id, b.id, a.id],
        "newest first, own organisation only"
    );
    let pending = store
        .org_orders(&demo(), &[OrderStatus::Pending], 100)
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![c.id, a.id]
    );
    let either = store
        .org_orders(
            &demo(),
            &[OrderStatus::Cancelled, OrderStatus::Offered],
            100,
        )
        .await
        .unwrap();
    assert_eq!(either.iter().map(|o| o.id).collect::<Vec<_>>(), vec![b.id]);
    assert_eq!(store.org_orders(&demo(), &[], 2).await.unwrap().len(), 2);

    assert_eq!(
        store.org_order(&demo(), a.id).await.unwrap().map(|o| o.id),
        Some(a.id)
    );
    assert!(store.org_order(&demo(), theirs.id).await.unwrap().is_none());
    assert!(
        store
            .org_order(&demo(), OrderId::new())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .org_orders(&OrgId::from("nobody"), &[], 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn offers_and_timelines_come_per_order(store: Store) {
    orgs(&store).await;
    let x = nurse(&store, demo()).await;
    let y = nurse(&store, demo()).await;
    let t = now();
    let a = order_at(&store, demo(), t - TimeDelta::minutes(2)).await;
    let b = order_at(&store, demo(), t - TimeDelta::minutes(1)).await;
    step(
        &store,
        a.id,
        OrderStatus::Pending,
        OrderStatus::Offered,
        t,
        None,
    )
    .await;
    let first = Offer::new(a.id, x.id, t, TimeDelta::seconds(30), 9, 1_500);
    store.insert_offer(&first).await.unwrap();
    store
        .close_offer(
            first.id,
            OfferStatus::Declined,
            t + TimeDelta::seconds(5),
            Some("太远了".to_owned()),
            vec![],
        )
        .await
        .unwrap();
    let second = Offer::new(
        a.id,
        y.id,
        t + TimeDelta::seconds(6),
        TimeDelta::seconds(30),
        12,
        2_400,
    );
    store.insert_offer(&second).await.unwrap();

    let offers = store.offers_for_orders(&[a.id, b.id]).await.unwrap();
    let of_a = &offers[&a.id];
    assert_eq!(
        of_a.iter()
            .map(|o| (o.nurse_id, o.status))
            .collect::<Vec<_>>(),
        vec![(x.id, OfferStatus::Declined), (y.id, OfferStatus::Open)]
    );
    assert_eq!(of_a[0].decline_reason.as_deref(), Some("太远了"));
    assert!(!offers.contains_key(&b.id));
    assert!(store.offers_for_orders(&[]).await.unwrap().is_empty());

    let timelines = store.timelines_for_orders(&[a.id, b.id]).await.unwrap();
    assert_eq!(
        timelines[&a.id]
            .iter()
            .map(|e| e.status)
            .collect::<Vec<_>>(),
        vec![OrderStatus::Pending, OrderStatus::Offered]
    );
    assert_eq!(
        timelines[&b.id]
            .iter()
            .map(|e| e.status)
            .collect::<Vec<_>>(),
        vec![OrderStatus::Pending]
    );
    assert!(store.timelines_for_orders(&[]).await.unwrap().is_empty());
}

pub async fn open_orders_are_counted_by_status(store: Store) {
    orgs(&store).await;
    let x = nurse(&store, demo()).await;
    let t = now();
    for _ in 0..3 {
        order_at(&store, demo(), t).await;
    }
    let offered = order_at(&store, demo(), t).await;
    step(
        &store,
        offered.id,
        OrderStatus::Pending,
        OrderStatus::Assigned,
        t,
        Some(&x),
    )
    .await;
    let gone = order_at(&store, demo(), t).await;
    step(
        &store,
        gone.id,
        OrderStatus::Pending,
        OrderStatus::Cancelled,
        t,
        None,
    )
    .await;
    order_at(&store, other(), t).await;

    let counts = store
        .org_order_counts(
            &demo(),
            &[
                OrderStatus::Pending,
                OrderStatus::Assigned,
                OrderStatus::Escalated,
            ],
        )
        .await
        .unwrap();
    assert_eq!(counts.get(&OrderStatus::Pending), Some(&3));
    assert_eq!(counts.get(&OrderStatus::Assigned), Some(&1));
    assert_eq!(counts.get(&OrderStatus::Escalated), None);
    assert_eq!(counts.len(), 2, "cancelled was not asked for: {counts:?}");
    assert!(
        store
            .org_order_counts(&demo(), &[])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn day_orders_carry_first_assignment_and_arrival(store: Store) {
    orgs(&store).await;
    let x = nurse(&store, demo()).await;
    let y = nurse(&store, demo()).await;
    let t = now();
    let since = t - TimeDelta::hours(2);
    let _yesterday = order_at(&store, demo(), t - TimeDelta::hours(3)).await;
    let _theirs = order_at(&store, other(), t - TimeDelta::minutes(50)).await;

    // Assigned to x, dropped back to pending, assigned to y, who arrives.
    let a = order_at(&store, demo(), t - TimeDelta::minutes(40)).await;
    let m = |n: i64| t - TimeDelta::minutes(40) + TimeDelta::minutes(n);
    step(
        &store,
        a.id,
        OrderStatus::Pending,
        OrderStatus::Assigned,
        m(2),
        Some(&x),
    )
    .await;
    let mut back = OrderTransition::new(
        a.id,
        vec![OrderStatus::Assigned],
        OrderStatus::Pending,
        m(3),
    );
    back.nurse_id = Some(None);
    store.transition_order(back).await.unwrap();
    step(
        &store,
        a.id,
        OrderStatus::Pending,
        OrderStatus::Assigned,
        m(5),
        Some(&y),
    )
    .await;
    step(
        &store,
        a.id,
        OrderStatus::Assigned,
        OrderStatus::EnRoute,
        m(6),
        None,
    )
    .await;
    step(
        &store,
        a.id,
        OrderStatus::EnRoute,
        OrderStatus::Arrived,
        m(25),
        None,
    )
    .await;
    // Still waiting.
    let b = order_at(&store, demo(), t - TimeDelta::minutes(10)).await;

    let day = store.day_orders(&demo(), since).await.unwrap();
    assert_eq!(day.len(), 2, "{day:?}");
    assert_eq!(day[0].id, a.id);
    assert_eq!(day[0].status, OrderStatus::Arrived);
    assert_eq!(day[0].created_at, a.created_at);
    assert_eq!(day[0].promised_by, a.promised_by);
    assert_eq!(day[0].first_assigned_at, Some(m(2)));
    assert_eq!(day[0].arrived_at, Some(m(25)));
    assert_eq!(day[1].id, b.id);
    assert_eq!(day[1].status, OrderStatus::Pending);
    assert_eq!((day[1].first_assigned_at, day[1].arrived_at), (None, None));
    assert!(
        store
            .day_orders(&demo(), t + TimeDelta::minutes(1))
            .await
            .unwrap()
            .is_empty()
    );
}
