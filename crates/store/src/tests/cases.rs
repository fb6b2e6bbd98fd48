use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use yixin_domain::{
    Address, Catalog, Contact, GeoJsonPolygon, GeoPoint, NewOrder, Nurse, NurseId, Offer, OfferId,
    OfferStatus, Order, OrderId, OrderStatus, OrgId, PhoneNumber, Rating, ResidentId, ServiceArea,
    ShiftState, Skill,
};

use crate::entity::{idempotency_key, order, order_event, outbox, service};
use crate::{
    CreateOrderOutcome, IdempotencyRecord, LocationFix, NewOutboxMessage, OrderCursor,
    OrderTransition, Store, StoreError,
};

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn org() -> OrgId {
    OrgId::from("demo")
}

fn new_order(resident: &str, at: DateTime<Utc>) -> Order {
    Order::place(
        NewOrder {
            org_id: org(),
            resident_id: ResidentId::from(resident),
            service_code: "wound_care".to_owned(),
            location: GeoPoint::new(29.39, 106.32).unwrap(),
            address: Address::new("双福街道 福城大道 88 号", Some("3 栋 2 单元 1102")).unwrap(),
            contact: Contact::new("王芳", "13800138000").unwrap(),
            notes: Some("请敲门".to_owned()),
            scheduled_for: None,
        },
        at,
    )
}

fn msg(topic: &str) -> NewOutboxMessage {
    NewOutboxMessage {
        topic: topic.to_owned(),
        payload: vec![1, 2, 3, 0, 255],
    }
}

fn key(k: &str, hash: &str, order: &Order) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: "resident:demo:r1".to_owned(),
        key: k.to_owned(),
        request_hash: hash.to_owned(),
        order_id: order.id,
        created_at: order.created_at,
    }
}

async fn nurse(store: &Store, name: &str) -> Nurse {
    store.ensure_organization(&org(), "Demo").await.unwrap();
    let n = Nurse::new(
        org(),
        name,
        PhoneNumber::new("13900139000").unwrap(),
        vec![Skill::new("wound_care").unwrap()],
        now(),
    )
    .unwrap();
    store.insert_nurse(&n).await.unwrap();
    n
}

async fn placed(store: &Store, resident: &str) -> Order {
    let o = new_order(resident, now());
    assert_eq!(
        store.create_order(&o, msg("orders"), None).await.unwrap(),
        CreateOrderOutcome::Created
    );
    o
}

async fn offered(store: &Store) -> Order {
    let o = placed(store, "r1").await;
    store
        .transition_order(OrderTransition::new(
            o.id,
            vec![OrderStatus::Pending],
            OrderStatus::Offered,
            now(),
        ))
        .await
        .unwrap()
}

fn assign(id: OrderId, nurse: NurseId) -> OrderTransition {
    OrderTransition {
        nurse_id: Some(Some(nurse)),
        eta: Some(Some(now() + TimeDelta::minutes(12))),
        outbox: Some(msg("order_events")),
        ..OrderTransition::new(id, vec![OrderStatus::Offered], OrderStatus::Assigned, now())
    }
}

async fn count_orders(store: &Store) -> u64 {
    order::Entity::find()
        .count(store.connection())
        .await
        .unwrap()
}

async fn count_outbox(store: &Store) -> u64 {
    outbox::Entity::find()
        .count(store.connection())
        .await
        .unwrap()
}

pub async fn migrate_is_idempotent_and_seeds_the_catalogue(store: Store) {
    let seed = Catalog::seed();
    let catalog = store.catalog().await.unwrap();
    for name in [
        "婴儿黄疸测定",
        "普通伤口护理",
        "导尿管置换",
        "颈椎套餐",
        "急性腰痛套餐",
        "口腔菌斑监测",
    ] {
        assert!(
            catalog.services.iter().any(|s| s.name_zh == name),
            "{name} missing"
        );
    }
    assert_eq!(catalog.services.len(), seed.services.len());
    assert_eq!(catalog.categories.len(), seed.categories.len());
    let wound = catalog.service("wound_care").unwrap();
    assert_eq!(wound, seed.service("wound_care").unwrap());

    // A retired service and a hand-edited name.
    let db = store.connection();
    service::Entity::insert(service::ActiveModel {
        code: sea_orm::Set("retired_service".to_owned()),
        category_code: sea_orm::Set(wound.category_code.clone()),
        name_zh: sea_orm::Set("旧服务".to_owned()),
        name_en: sea_orm::Set("Retired".to_owned()),
        duration_min: sea_orm::Set(30),
        price_cents: sea_orm::Set(100),
        required_skills: sea_orm::Set(serde_json::json!(["wound_care"])),
        active: sea_orm::Set(true),
        // A row from before the clinical column: the service reads with none.
        clinical: sea_orm::Set(None),
        // Null: the pilot rules' defaults.
        requirements: sea_orm::Set(None),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
    db.execute_unprepared("UPDATE services SET name_en = 'edited' WHERE code = 'wound_care'")
        .await
        .unwrap();

    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let again = store.catalog().await.unwrap();
    assert_eq!(again.services.len(), seed.services.len() + 1);
    assert_eq!(again.categories.len(), seed.categories.len());
    assert!(!again.service("retired_service").unwrap().active);
    assert_eq!(
        again.service("wound_care").unwrap(),
        seed.service("wound_care").unwrap()
    );
}

pub async fn create_order_writes_order_event_and_outbox_in_one_transaction(store: Store) {
    let o = new_order("r1", now());
    let out = store.create_order(&o, msg("orders"), None).await.unwrap();
    assert_eq!(out, CreateOrderOutcome::Created);
    assert_eq!(store.get_order(o.id).await.unwrap().unwrap(), o);
    let tl = store.timeline(o.id).await.unwrap();
    assert_eq!(tl.len(), 1);
    assert_eq!(tl[0].status, OrderStatus::Pending);
    assert_eq!(tl[0].at, o.created_at);
    let ob = store.unpublished_outbox(10).await.unwrap();
    assert_eq!(ob.len(), 1);
    assert_eq!(ob[0].topic, "orders");
    assert_eq!(ob[0].payload, vec![1, 2, 3, 0, 255]);

    // A failing order (unknown service) leaves neither event nor outbox row nor key.
    let mut bad = new_order("r1", now());
    bad.service_code = "no_such_service".to_owned();
    let err = store
        .create_order(&bad, msg("orders"), Some(key("k-bad", "h", &bad)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(count_orders(&store).await, 1);
    assert_eq!(count_outbox(&store).await, 1);
    assert_eq!(
        order_event::Entity::find()
            .count(store.connection())
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .idempotency_record("resident:demo:r1", "k-bad")
            .await
            .unwrap()
            .is_none()
    );

    // The same order id twice is a conflict, not a crash.
    let err = store
        .create_order(&o, msg("orders"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(store.get_order(OrderId::new()).await.unwrap().is_none());
}

pub async fn idempotent_replay_returns_the_first_order(store: Store) {
    let first = new_order("r1", now());
    let out = store
        .create_order(&first, msg("orders"), Some(key("k1", "hash-a", &first)))
        .await
        .unwrap();
    assert_eq!(out, CreateOrderOutcome::Created);

    // The retry builds a new Order (new id) from the same body.
    let retry = new_order("r1", now());
    let out = store
        .create_order(&retry, msg("orders"), Some(key("k1", "hash-a", &retry)))
        .await
        .unwrap();
    assert_eq!(out, CreateOrderOutcome::Replayed(first.id));
    assert_eq!(count_orders(&store).await, 1);
    assert_eq!(count_outbox(&store).await, 1);
    let rec = store
        .idempotency_record("resident:demo:r1", "k1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.order_id, first.id);
    assert_eq!(rec.request_hash, "hash-a");

    // Same key in another scope is another key.
    let other = new_order("r2", now());
    let mut rec = key("k1", "hash-a", &other);
    rec.scope = "resident:demo:r2".to_owned();
    let out = store
        .create_order(&other, msg("orders"), Some(rec))
        .await
        .unwrap();
    assert_eq!(out, CreateOrderOutcome::Created);
}

pub async fn idempotency_key_with_another_body_conflicts(store: Store) {
    let first = new_order("r1", now());
    store
        .create_order(&first, msg("orders"), Some(key("k1", "hash-a", &first)))
        .await
        .unwrap();
    let other = new_order("r1", now());
    let err = store
        .create_order(&other, msg("orders"), Some(key("k1", "hash-b", &other)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IdempotencyConflict), "{err:?}");
    assert_eq!(count_orders(&store).await, 1);
}

pub async fn concurrent_creates_with_one_key_make_one_order(store: Store) {
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let o = new_order("r1", now());
            barrier.wait().await;
            let out = store
                .create_order(&o, msg("orders"), Some(key("race", "same", &o)))
                .await
                .unwrap();
            (o.id, out)
        }));
    }
    let mut created = Vec::new();
    let mut replayed = HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            (id, CreateOrderOutcome::Created) => created.push(id),
            (_, CreateOrderOutcome::Replayed(id)) => {
                replayed.insert(id);
            }
        }
    }
    assert_eq!(created.len(), 1, "exactly one create wins");
    assert!(replayed.iter().all(|id| *id == created[0]), "{replayed:?}");
    assert_eq!(count_orders(&store).await, 1);
    assert_eq!(count_outbox(&store).await, 1);
    assert_eq!(
        idempotency_key::Entity::find()
            .count(store.connection())
            .await
            .unwrap(),
        1
    );
}

pub async fn concurrent_claims_exactly_one_wins(store: Store) {
    let a = nurse(&store, "Nurse A").await;
    let b = nurse(&store, "Nurse B").await;
    // Several rounds; a nurse is freed between rounds by completing nothing,
    // so use fresh nurses per round to stay clear of the one-active-order rule.
    let mut nurses = vec![(a.id, b.id)];
    for i in 0..4 {
        let x = nurse(&store, &format!("Nurse X{i}")).await;
        let y = nurse(&store, &format!("Nurse Y{i}")).await;
        nurses.push((x.id, y.id));
    }
    for (na, nb) in nurses {
        let o = offered(&store).await;
        let s1 = store.clone();
        let s2 = store.clone();
        let (r1, r2) = tokio::join!(
            tokio::spawn(async move { s1.transition_order(assign(o.id, na)).await }),
            tokio::spawn(async move { s2.transition_order(assign(o.id, nb)).await }),
        );
        let results = [r1.unwrap(), r2.unwrap()];
        let winners: Vec<&Order> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        match loser {
            StoreError::StaleState { current } => assert_eq!(current, "assigned"),
            other => panic!("expected StaleState, got {other:?}"),
        }
        let stored = store.get_order(o.id).await.unwrap().unwrap();
        assert_eq!(stored.status, OrderStatus::Assigned);
        assert_eq!(stored.nurse_id, winners[0].nurse_id);
        let tl = store.timeline(o.id).await.unwrap();
        let statuses: Vec<_> = tl.iter().map(|e| e.status).collect();
        assert_eq!(
            statuses,
            vec![
                OrderStatus::Pending,
                OrderStatus::Offered,
                OrderStatus::Assigned
            ]
        );
    }
}

pub async fn transition_checks_version_and_records_the_timeline(store: Store) {
    let n = nurse(&store, "Nurse A").await;
    let o = offered(&store).await;
    let (_, v) = store.get_order_versioned(o.id).await.unwrap().unwrap();
    assert_eq!(v, 1);

    let err = store
        .transition_order_at_version(assign(o.id, n.id), v + 5)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::StaleState { current } if current == "offered"),
        "{err:?}"
    );
    let before = count_outbox(&store).await;
    let assigned = store
        .transition_order_at_version(assign(o.id, n.id), v)
        .await
        .unwrap();
    assert_eq!(assigned.status, OrderStatus::Assigned);
    assert_eq!(assigned.nurse_id, Some(n.id));
    assert!(assigned.eta.is_some());
    assert_eq!(count_outbox(&store).await, before + 1);

    // Back to pending forgets nurse and ETA when asked to.
    let at = now();
    let back = store
        .transition_order(OrderTransition {
            nurse_id: Some(None),
            eta: Some(None),
            ..OrderTransition::new(o.id, vec![OrderStatus::Assigned], OrderStatus::Pending, at)
        })
        .await
        .unwrap();
    assert_eq!(back.status, OrderStatus::Pending);
    assert_eq!(back.nurse_id, None);
    assert_eq!(back.eta, None);
    assert_eq!(back.updated_at, at);

    let cancelled = store
        .transition_order(OrderTransition {
            cancel_reason: Some("changed my mind".to_owned()),
            ..OrderTransition::new(
                o.id,
                vec![OrderStatus::Pending, OrderStatus::Offered],
                OrderStatus::Cancelled,
                now(),
            )
        })
        .await
        .unwrap();
    assert_eq!(cancelled.cancel_reason.as_deref(), Some("changed my mind"));
    assert_eq!(store.timeline(o.id).await.unwrap().len(), 5);

    let err = store
        .transition_order(OrderTransition::new(
            OrderId::new(),
            vec![OrderStatus::Pending],
            OrderStatus::Offered,
            now(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = store
        .transition_order(OrderTransition::new(
            o.id,
            vec![],
            OrderStatus::Offered,
            now(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleState { .. }), "{err:?}");
}

pub async fn a_nurse_cannot_hold_two_active_orders(store: Store) {
    let n = nurse(&store, "Nurse A").await;
    let first = offered(&store).await;
    let second = offered(&store).await;
    store
        .transition_order(assign(first.id, n.id))
        .await
        .unwrap();
    let outbox_before = count_outbox(&store).await;
    let err = store
        .transition_order(assign(second.id, n.id))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Nothing of the refused change was kept.
    let second_now = store.get_order(second.id).await.unwrap().unwrap();
    assert_eq!(second_now.status, OrderStatus::Offered);
    assert_eq!(store.timeline(second.id).await.unwrap().len(), 2);
    assert_eq!(count_outbox(&store).await, outbox_before);

    // Once the first visit is over the nurse is free again.
    for (from, to) in [
        (OrderStatus::Assigned, OrderStatus::EnRoute),
        (OrderStatus::EnRoute, OrderStatus::Arrived),
        (OrderStatus::Arrived, OrderStatus::InService),
        (OrderStatus::InService, OrderStatus::Completed),
    ] {
        store
            .transition_order(OrderTransition::new(first.id, vec![from], to, now()))
            .await
            .unwrap();
    }
    store
        .transition_order(assign(second.id, n.id))
        .await
        .unwrap();
}

pub async fn second_open_offer_is_a_conflict(store: Store) {
    let a = nurse(&store, "Nurse A").await;
    let b = nurse(&store, "Nurse B").await;
    let o = offered(&store).await;
    let ttl = TimeDelta::seconds(45);
    let first = Offer::new(o.id, a.id, now(), ttl, 9, 2300);
    store.insert_offer(&first).await.unwrap();
    assert_eq!(store.get_offer(first.id).await.unwrap().unwrap(), first);

    let second = Offer::new(o.id, b.id, now(), ttl, 11, 3100);
    let err = store.insert_offer(&second).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    // Nurse A already holds an open offer (for another order).
    let other = offered(&store).await;
    let err = store
        .insert_offer(&Offer::new(other.id, a.id, now(), ttl, 5, 900))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    // Answering closes it: once.
    let at = now();
    let declined = store
        .answer_offer(
            first.id,
            OfferStatus::Open,
            OfferStatus::Declined,
            at,
            Some("too far".to_owned()),
        )
        .await
        .unwrap();
    assert_eq!(declined.status, OfferStatus::Declined);
    assert_eq!(declined.answered_at, Some(at));
    assert_eq!(declined.decline_reason.as_deref(), Some("too far"));
    let err = store
        .answer_offer(
            first.id,
            OfferStatus::Open,
            OfferStatus::Accepted,
            now(),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::StaleState { current } if current == "declined"),
        "{err:?}"
    );
    let err = store
        .answer_offer(
            OfferId::new(),
            OfferStatus::Open,
            OfferStatus::Accepted,
            now(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");

    // Now the order may be offered to someone else.
    store.insert_offer(&second).await.unwrap();
    let offers = store.offers_for_order(o.id).await.unwrap();
    assert_eq!(offers.len(), 2);
    assert_eq!(offers[0].id, first.id);

    // Concurrent accepts of one offer: exactly one.
    let (s1, s2) = (store.clone(), store.clone());
    let id = second.id;
    let (r1, r2) = tokio::join!(
        tokio::spawn(async move {
            s1.answer_offer(id, OfferStatus::Open, OfferStatus::Accepted, now(), None)
                .await
        }),
        tokio::spawn(async move {
            s2.answer_offer(id, OfferStatus::Open, OfferStatus::Expired, now(), None)
                .await
        }),
    );
    let oks = [r1.unwrap(), r2.unwrap()]
        .into_iter()
        .filter(Result::is_ok)
        .count();
    assert_eq!(oks, 1);
}

pub async fn keyset_paging_newest_first_without_gaps_or_duplicates(store: Store) {
    let base = now();
    let mut all = Vec::new();
    for i in 0..25 {
        // Groups of three share a timestamp, so the id breaks ties.
        let o = new_order("r1", base + TimeDelta::seconds(i / 3));
        store.create_order(&o, msg("orders"), None).await.unwrap();
        all.push(o);
    }
    for i in 0..3 {
        let o = new_order("someone_else", base + TimeDelta::seconds(i));
        store.create_order(&o, msg("orders"), None).await.unwrap();
    }
    all.sort_by_key(|o| std::cmp::Reverse((o.created_at, o.id)));

    let (org, resident) = (org(), ResidentId::from("r1"));
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .orders_for_resident(&org, &resident, cursor, 7)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        cursor = page.last().map(OrderCursor::from);
        seen.extend(page);
        // A new order arriving between pages must not shift the next page.
        if seen.len() == 7 {
            let newer = new_order("r1", base + TimeDelta::minutes(5));
            store
                .create_order(&newer, msg("orders"), None)
                .await
                .unwrap();
        }
    }
    let ids: Vec<OrderId> = seen.iter().map(|o| o.id).collect();
    let expected: Vec<OrderId> = all.iter().map(|o| o.id).collect();
    assert_eq!(ids, expected);
    assert_eq!(seen, all);
}

pub async fn outbox_unpublished_then_published(store: Store) {
    for i in 0..5 {
        let o = new_order("r1", now());
        store
            .create_order(&o, msg(&format!("topic-{i}")), None)
            .await
            .unwrap();
    }
    let first = store.unpublished_outbox(3).await.unwrap();
    let topics: Vec<&str> = first.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["topic-0", "topic-1", "topic-2"]);
    assert!(first.windows(2).all(|w| w[0].id < w[1].id));

    store
        .mark_published(&first.iter().map(|m| m.id).collect::<Vec<_>>(), now())
        .await
        .unwrap();
    store.mark_published(&[], now()).await.unwrap();
    let rest = store.unpublished_outbox(10).await.unwrap();
    let topics: Vec<&str> = rest.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["topic-3", "topic-4"]);
    store
        .mark_published(&rest.iter().map(|m| m.id).collect::<Vec<_>>(), now())
        .await
        .unwrap();
    assert!(store.unpublished_outbox(10).await.unwrap().is_empty());
}

pub async fn locations_batch_insert_and_read_back(store: Store) {
    let a = NurseId::new();
    let b = NurseId::new();
    let base = now();
    let fix = |n: NurseId, i: i64| LocationFix {
        nurse_id: n,
        location: GeoPoint::new(29.39 + i as f64 * 0.0001, 106.32).unwrap(),
        accuracy_m: 5.5,
        recorded_at: base + TimeDelta::seconds(i),
        received_at: base + TimeDelta::seconds(i + 1),
    };
    store.append_locations(&[]).await.unwrap();
    let batch: Vec<LocationFix> = (0..10).map(|i| fix(a, i)).chain([fix(b, 0)]).collect();
    store.append_locations(&batch).await.unwrap();

    let trail = store.locations(a, base, 100).await.unwrap();
    assert_eq!(trail, batch[..10].to_vec());
    let later = store
        .locations(a, base + TimeDelta::seconds(7), 100)
        .await
        .unwrap();
    assert_eq!(later, batch[7..10].to_vec());
    assert_eq!(store.locations(a, base, 4).await.unwrap().len(), 4);
    assert_eq!(
        store.locations(b, base, 100).await.unwrap(),
        vec![fix(b, 0)]
    );

    // Large batches are split into several statements.
    let big: Vec<LocationFix> = (100..2600).map(|i| fix(b, i)).collect();
    store.append_locations(&big).await.unwrap();
    assert_eq!(store.locations(b, base, 10_000).await.unwrap().len(), 2501);
}

pub async fn corrupt_row_is_an_error_not_a_panic(store: Store) {
    let o = placed(&store, "r1").await;
    store
        .connection()
        .execute_unprepared("UPDATE orders SET lat = 999")
        .await
        .unwrap();
    let err = store.get_order(o.id).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("lat")),
        "{err:?}"
    );
    let err = store
        .orders_for_resident(&org(), &ResidentId::from("r1"), None, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");

    store
        .connection()
        .execute_unprepared("UPDATE orders SET lat = 29.4, status = 'teleported'")
        .await
        .unwrap();
    let err = store.get_order(o.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");

    let n = nurse(&store, "Nurse A").await;
    store
        .connection()
        .execute_unprepared("UPDATE nurses SET phone = 'not a phone'")
        .await
        .unwrap();
    let err = store.get_nurse(n.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

pub async fn rating_only_once_and_only_when_completed(store: Store) {
    let n = nurse(&store, "Nurse A").await;
    let o = offered(&store).await;
    let rating = Rating::new(5, Some("很好".to_owned())).unwrap();
    let err = store.set_rating(o.id, &rating).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::StaleState { current } if current == "offered"),
        "{err:?}"
    );
    store.transition_order(assign(o.id, n.id)).await.unwrap();
    for (from, to) in [
        (OrderStatus::Assigned, OrderStatus::EnRoute),
        (OrderStatus::EnRoute, OrderStatus::Arrived),
        (OrderStatus::Arrived, OrderStatus::InService),
        (OrderStatus::InService, OrderStatus::Completed),
    ] {
        store
            .transition_order(OrderTransition::new(o.id, vec![from], to, now()))
            .await
            .unwrap();
    }
    let rated = store.set_rating(o.id, &rating).await.unwrap();
    assert_eq!(rated.rating, Some(rating.clone()));
    let err = store
        .set_rating(o.id, &Rating::new(1, None).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.get_order(o.id).await.unwrap().unwrap().rating,
        Some(rating)
    );
    let err = store
        .set_rating(OrderId::new(), &Rating::new(1, None).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

pub async fn organisations_areas_and_nurses(store: Store) {
    let org = org();
    store.ensure_organization(&org, "Demo").await.unwrap();
    store.ensure_organization(&org, "Demo again").await.unwrap();

    let demo = ServiceArea::shuangfu_demo(org.clone());
    store.upsert_service_area(&demo).await.unwrap();
    store.upsert_service_area(&demo).await.unwrap();
    let areas = store.service_areas(&org).await.unwrap();
    assert_eq!(areas, vec![demo.clone()]);

    // Replacing keeps the id and changes name and polygon.
    let square = GeoJsonPolygon::new(vec![
        [106.30, 29.38],
        [106.34, 29.38],
        [106.34, 29.41],
        [106.30, 29.41],
        [106.30, 29.38],
    ]);
    let renamed =
        ServiceArea::new(demo.id, org.clone(), "双福 (smaller)".to_owned(), square).unwrap();
    store.upsert_service_area(&renamed).await.unwrap();
    assert_eq!(
        store.service_areas(&org).await.unwrap(),
        vec![renamed.clone()]
    );

    // Another organisation cannot take it over; an unknown one cannot add areas.
    let other = OrgId::from("other");
    store.ensure_organization(&other, "Other").await.unwrap();
    let hijack = ServiceArea::shuangfu_demo(other.clone());
    let err = store.upsert_service_area(&hijack).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(store.service_areas(&other).await.unwrap().is_empty());
    let mut orphan = ServiceArea::shuangfu_demo(OrgId::from("nobody"));
    orphan.id = yixin_domain::AreaId::new();
    let err = store.upsert_service_area(&orphan).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    // Nurses.
    let mut a = nurse(&store, "Nurse A").await;
    let b = nurse(&store, "Nurse B").await;
    assert_eq!(store.get_nurse(a.id).await.unwrap().unwrap(), a);
    assert_eq!(
        store.nurses(&org).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert!(store.nurses(&other).await.unwrap().is_empty());
    a.shift = ShiftState::On;
    a.skills.push(Skill::new("catheter_care").unwrap());
    a.name = "Nurse A2".to_owned();
    store.update_nurse(&a).await.unwrap();
    assert_eq!(store.get_nurse(a.id).await.unwrap().unwrap(), a);
    let err = store.insert_nurse(&a).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let mut ghost = a.clone();
    ghost.id = NurseId::new();
    let err = store.update_nurse(&ghost).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(store.get_nurse(NurseId::new()).await.unwrap().is_none());
    store.ping().await.unwrap();
}

pub async fn orders_with_status_and_idempotency_purge(store: Store) {
    let p1 = placed(&store, "r1").await;
    let off = offered(&store).await;
    let p2 = placed(&store, "r2").await;
    let pending = store
        .orders_with_status(&[OrderStatus::Pending], 10)
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![p1.id, p2.id]
    );
    let both = store
        .orders_with_status(&[OrderStatus::Pending, OrderStatus::Offered], 10)
        .await
        .unwrap();
    assert_eq!(both.len(), 3);
    assert!(both.iter().any(|o| o.id == off.id));
    assert_eq!(
        store
            .orders_with_status(&[OrderStatus::Pending], 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.orders_with_status(&[], 10).await.unwrap().is_empty());

    let old = new_order("r1", now() - TimeDelta::days(2));
    store
        .create_order(&old, msg("orders"), Some(key("old", "h", &old)))
        .await
        .unwrap();
    let fresh = new_order("r1", now());
    store
        .create_order(&fresh, msg("orders"), Some(key("fresh", "h", &fresh)))
        .await
        .unwrap();
    let purged = store
        .purge_idempotency_keys(now() - TimeDelta::days(1))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert!(
        store
            .idempotency_record("resident:demo:r1", "old")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .idempotency_record("resident:demo:r1", "fresh")
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn create_order_round_trips_every_field(store: Store) {
    // Optional fields empty, a booked time, no key.
    let mut bare = new_order("r1", now());
    bare.address = Address::new("双福街道 1 号", None).unwrap();
    bare.notes = None;
    bare.scheduled_for = Some(now() + TimeDelta::hours(3));
    let out = store
        .create_order(&bare, msg("orders"), None)
        .await
        .unwrap();
    assert_eq!(out, CreateOrderOutcome::Created);
    assert_eq!(store.get_order(bare.id).await.unwrap().unwrap(), bare);

    // Every optional field set, with a key.
    let full = new_order("r1", now());
    let record = key("full", "hash-full", &full);
    let out = store
        .create_order(&full, msg("orders"), Some(record.clone()))
        .await
        .unwrap();
    assert_eq!(out, CreateOrderOutcome::Created);
    assert_eq!(store.get_order(full.id).await.unwrap().unwrap(), full);
    assert_eq!(
        store
            .idempotency_record(&record.scope, &record.key)
            .await
            .unwrap()
            .unwrap(),
        record
    );
    let tl = store.timeline(full.id).await.unwrap();
    assert_eq!(tl.len(), 1);
    assert_eq!((tl[0].status, tl[0].at), (full.status, full.created_at));

    let ob = store.unpublished_outbox(10).await.unwrap();
    assert_eq!(ob.len(), 2);
    assert!(ob.iter().all(|m| m.payload == msg("orders").payload));
    assert_eq!(ob[1].created_at, full.created_at);
    assert_eq!(count_orders(&store).await, 2);
}

pub async fn outbox_poll_skips_published_rows_wherever_they_are(store: Store) {
    for i in 0..30 {
        let o = new_order("r1", now());
        store
            .create_order(&o, msg(&format!("t{i}")), None)
            .await
            .unwrap();
    }
    let all = store.unpublished_outbox(100).await.unwrap();
    assert_eq!(all.len(), 30);
    // Publish every third row, out of order, and the first five.
    let mut marked: Vec<i64> = all.iter().step_by(3).rev().map(|m| m.id).collect();
    marked.extend(all[..5].iter().map(|m| m.id));
    store.mark_published(&marked, now()).await.unwrap();
    let expected: Vec<i64> = all
        .iter()
        .map(|m| m.id)
        .filter(|id| !marked.contains(id))
        .collect();
    let left = store.unpublished_outbox(100).await.unwrap();
    assert_eq!(left.iter().map(|m| m.id).collect::<Vec<_>>(), expected);
    let head = store.unpublished_outbox(4).await.unwrap();
    assert_eq!(head.iter().map(|m| m.id).collect::<Vec<_>>(), expected[..4]);
    // Marking again keeps the first time and changes nothing.
    store.mark_published(&marked, now()).await.unwrap();
    assert_eq!(store.unpublished_outbox(100).await.unwrap(), left);
}

/// A create whose key another transaction holds (not yet committed) waits
/// for it: committed with the same request, the create replays the holder's
/// order; with another request, it conflicts; rolled back, the create wins.
/// Needs a pool of connections (not in-memory SQLite).
pub async fn create_waits_for_a_concurrent_holder_of_its_key(store: Store) {
    use sea_orm::{ActiveValue::Set, TransactionTrait};

    for (hash, commit) in [("same", true), ("other", true), ("same", false)] {
        let k = format!("held-{hash}-{commit}");
        let holder_order = OrderId::new();
        let txn = store.connection().begin().await.unwrap();
        idempotency_key::Entity::insert(idempotency_key::ActiveModel {
            scope: Set("resident:demo:r1".to_owned()),
            key: Set(k.clone()),
            request_hash: Set(hash.to_owned()),
            order_id: Set(holder_order.0),
            created_at: Set(now()),
        })
        .exec_without_returning(&txn)
        .await
        .unwrap();

        let o = new_order("r1", now());
        let task = {
            let store = store.clone();
            let o = o.clone();
            let record = key(&k, "same", &o);
            tokio::spawn(async move { store.create_order(&o, msg("orders"), Some(record)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!task.is_finished(), "the create did not wait for the key");
        if commit {
            txn.commit().await.unwrap();
        } else {
            txn.rollback().await.unwrap();
        }
        let out = task.await.unwrap();
        match (hash, commit) {
            ("same", true) => assert_eq!(out.unwrap(), CreateOrderOutcome::Replayed(holder_order)),
            (_, true) => assert!(
                matches!(out, Err(StoreError::IdempotencyConflict)),
                "{out:?}"
            ),
            _ => {
                assert_eq!(out.unwrap(), CreateOrderOutcome::Created);
                assert_eq!(store.get_order(o.id).await.unwrap().unwrap(), o);
            }
        }
    }
    assert_eq!(count_orders(&store).await, 1);
    assert_eq!(count_outbox(&store).await, 1);
}

/// Retention: published outbox rows older than the cut go, in bounded
/// batches; unpublished and young ones stay.
pub async fn retention_prunes_old_published_outbox_rows_only(store: Store) {
    for i in 0..4 {
        let o = new_order("r1", now());
        store
            .create_order(&o, msg(&format!("topic-{i}")), None)
            .await
            .unwrap();
    }
    let rows = store.unpublished_outbox(10).await.unwrap();
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    let old = now() - TimeDelta::hours(30);
    store.mark_published(&ids[..2], old).await.unwrap();
    store.mark_published(&ids[2..3], now()).await.unwrap();
    let cut = now() - TimeDelta::hours(24);
    assert_eq!(store.prune_outbox(cut, 1).await.unwrap(), 1);
    assert_eq!(store.prune_outbox(cut, 1).await.unwrap(), 1);
    assert_eq!(store.prune_outbox(cut, 1).await.unwrap(), 0);
    let mut left: Vec<i64> = outbox::Entity::find()
        .all(store.connection())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    left.sort();
    assert_eq!(left, ids[2..].to_vec(), "young and unpublished rows stay");
}

/// Retention: off-visit trail samples older than the cut go; samples taken
/// between an order's assignment and its end (or still open) stay until the
/// visit trail's own, longer cut.
pub async fn retention_keeps_the_visit_trail_longer(store: Store) {
    use sea_orm::{ActiveValue::NotSet, ActiveValue::Set};
    let a = nurse(&store, "Nurse A").await;
    let b = nurse(&store, "Nurse B").await;
    let t = now();
    let days = |d: i64| t - TimeDelta::days(d);
    // A's visit: assigned 20 days ago, completed 19 days ago. B's visit:
    // assigned 10 days ago, never ended.
    for (who, assigned, completed) in [(a.id, days(20), Some(days(19))), (b.id, days(10), None)] {
        let o = placed(&store, "r1").await;
        order::Entity::update_many()
            .col_expr(
                order::Column::NurseId,
                sea_orm::sea_query::Expr::value(Some(who.0)),
            )
            .filter(order::Column::Id.eq(o.id.0))
            .exec(store.connection())
            .await
            .unwrap();
        let mut events = vec![(OrderStatus::Assigned, assigned)];
        events.extend(completed.map(|at| (OrderStatus::Completed, at)));
        for (status, at) in events {
            order_event::Entity::insert(order_event::ActiveModel {
                id: NotSet,
                order_id: Set(o.id.0),
                status: Set(status.as_str().to_owned()),
                at: Set(at),
                detail: Set(None),
            })
            .exec_without_returning(store.connection())
            .await
            .unwrap();
        }
    }
    let fix = |nurse: NurseId, at: DateTime<Utc>| LocationFix {
        nurse_id: nurse,
        location: GeoPoint::new(29.39, 106.32).unwrap(),
        accuracy_m: 5.0,
        recorded_at: at,
        received_at: at,
    };
    let a_before = days(25);
    let a_on_visit = days(20) + TimeDelta::hours(2);
    let a_after = days(18);
    let a_young = t - TimeDelta::hours(1);
    let b_before = days(12);
    let b_on_open_visit = days(9);
    store
        .append_locations(&[
            fix(a.id, a_before),
            fix(a.id, a_on_visit),
            fix(a.id, a_after),
            fix(a.id, a_young),
            fix(b.id, b_before),
            fix(b.id, b_on_open_visit),
        ])
        .await
        .unwrap();
    let recorded = |store: Store| async move {
        let mut at: Vec<(uuid::Uuid, DateTime<Utc>)> =
            crate::entity::nurse_location::Entity::find()
                .all(store.connection())
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.nurse_id, m.recorded_at))
                .collect();
        at.sort();
        at
    };
    // Off visit, older than a week: in batches of two.
    let cut = days(7);
    assert_eq!(store.prune_off_visit_trail(cut, 2).await.unwrap(), 2);
    assert_eq!(store.prune_off_visit_trail(cut, 2).await.unwrap(), 1);
    assert_eq!(store.prune_off_visit_trail(cut, 2).await.unwrap(), 0);
    let mut expected = vec![
        (a.id.0, a_on_visit),
        (a.id.0, a_young),
        (b.id.0, b_on_open_visit),
    ];
    expected.sort();
    assert_eq!(recorded(store.clone()).await, expected);
    // The visit trail's own cut (older than 15 days) takes A's visit.
    assert_eq!(store.prune_visit_trail(days(15), 100).await.unwrap(), 1);
    let mut expected = vec![(a.id.0, a_young), (b.id.0, b_on_open_visit)];
    expected.sort();
    assert_eq!(recorded(store.clone()).await, expected);
}

/// Relays claim outbox rows: on PostgreSQL a second claim skips the rows a
/// first one holds (`FOR UPDATE SKIP LOCKED`) and gets them once released
/// unpublished; on SQLite (one writer process) a claim is a plain read.
pub async fn relays_claim_outbox_rows_without_overlap(store: Store) {
    for i in 0..5 {
        let o = new_order("r1", now());
        store
            .create_order(&o, msg(&format!("topic-{i}")), None)
            .await
            .unwrap();
    }
    let first = store.claim_outbox(3).await.unwrap();
    let topics = |rows: &[crate::OutboxMessage]| -> Vec<String> {
        rows.iter().map(|m| m.topic.clone()).collect()
    };
    assert_eq!(topics(&first.rows), ["topic-0", "topic-1", "topic-2"]);
    if store.backend() == sea_orm::DatabaseBackend::Postgres {
        let second = store.claim_outbox(3).await.unwrap();
        assert_eq!(topics(&second.rows), ["topic-3", "topic-4"]);
        // Released without publishing: the rows go back.
        second.published(&[], now()).await.unwrap();
    }
    let ids: Vec<i64> = first.rows.iter().map(|m| m.id).collect();
    first.published(&ids, now()).await.unwrap();
    let rest = store.claim_outbox(10).await.unwrap();
    assert_eq!(topics(&rest.rows), ["topic-3", "topic-4"]);
}

/// Constraint violations carry the store's own words, the same on both
/// backends, never the database's text; the first nurse of an organisation
/// the database has never seen is added (the organisation with her).
pub async fn conflicts_are_stable_and_a_new_organisation_takes_its_first_nurse(store: Store) {
    let fresh = OrgId::from("never-seen-before");
    let mut n = Nurse::new(
        fresh.clone(),
        "First Nurse",
        PhoneNumber::new("13900139001").unwrap(),
        vec![Skill::new("wound_care").unwrap()],
        now(),
    )
    .unwrap();
    n.external_id = Some("ext-1".to_owned());
    store.insert_nurse(&n).await.unwrap();
    assert!(store.get_nurse(n.id).await.unwrap().is_some());
    // The same id again (without the external id, which SQLite would name first).
    let mut again = n.clone();
    again.external_id = None;
    match store.insert_nurse(&again).await {
        Err(StoreError::Conflict(m)) => assert_eq!(m, "nurse already exists (id taken)"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Another nurse with the same external id.
    let mut other = Nurse::new(
        fresh,
        "Second Nurse",
        PhoneNumber::new("13900139002").unwrap(),
        vec![Skill::new("wound_care").unwrap()],
        now(),
    )
    .unwrap();
    other.external_id = Some("ext-1".to_owned());
    match store.insert_nurse(&other).await {
        Err(StoreError::Conflict(m)) => {
            assert_eq!(m, "nurse already exists (external_id taken)")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}
