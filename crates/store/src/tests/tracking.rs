//! Offers and jobs as nurse-tracking and the dispatcher use them: the
//! atomic claim, closing offers with their events, manual assignment.
//! Its fixtures (a nurse, a pending order) serve the chained-job cases too.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sea_orm::{EntityTrait, PaginatorTrait};
use yixin_domain::{
    Address, Contact, GeoPoint, NewOrder, Nurse, Offer, OfferStatus, Order, OrderStatus, OrgId,
    PhoneNumber, ResidentId, ShiftState, Skill,
};

use crate::entity::outbox;
use crate::{ClaimLost, ClaimOutcome, NewOutboxMessage, OrderTransition, Store, StoreError};

pub(super) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(super) fn org() -> OrgId {
    OrgId::from("demo")
}

pub(super) fn msg(topic: &str) -> NewOutboxMessage {
    NewOutboxMessage {
        topic: topic.to_owned(),
        payload: vec![7, 7],
    }
}

pub(super) async fn nurse(store: &Store) -> Nurse {
    store.ensure_organization(&org(), "Demo").await.unwrap();
    let n = Nurse::new(
        org(),
        "赵护士",
        PhoneNumber::new("13900139000").unwrap(),
        vec![Skill::new("wound_care").unwrap()],
        now(),
    )
    .unwrap();
    store.insert_nurse(&n).await.unwrap();
    n
}

/// A new pending order (no offer yet).
pub(super) async fn pending_order(store: &Store) -> Order {
    store.ensure_organization(&org(), "Demo").await.unwrap();
    let o = Order::place(
        NewOrder {
            org_id: org(),
            resident_id: ResidentId::from("r2"),
            service_code: "wound_care".to_owned(),
            location: GeoPoint::new(29.39, 106.32).unwrap(),
            address: Address::new("双福街道 福城大道 99 号", None).unwrap(),
            contact: Contact::new("王芳", "13800138000").unwrap(),
            notes: None,
            scheduled_for: None,
        },
        now(),
    );
    store.create_order(&o, msg("orders"), None).await.unwrap();
    o
}

async fn offered_to(store: &Store, nurse: &Nurse, ttl: TimeDelta) -> (Order, Offer) {
    let o = pending_order(store).await;
    let o = store
        .transition_order(OrderTransition::new(
            o.id,
            vec![OrderStatus::Pending],
            OrderStatus::Offered,
            now(),
        ))
        .await
        .unwrap();
    let offer = Offer::new(o.id, nurse.id, now(), ttl, 10, 2_000);
    store.insert_offer(&offer).await.unwrap();
    (o, offer)
}

async fn outbox_rows(store: &Store) -> u64 {
    outbox::Entity::find()
        .count(store.connection())
        .await
        .unwrap()
}

async fn claim(store: &Store, offer: &Offer, nurse: &Nurse) -> ClaimOutcome {
    store
        .claim_offer(
            offer.id,
            nurse.id,
            now(),
            |_, _| Some(msg("orders")),
            |_| vec![msg("offers")],
        )
        .await
        .unwrap()
}

pub async fn a_claim_wins_once_and_says_why_others_lose(store: Store) {
    let a = nurse(&store).await;
    let b = nurse(&store).await;
    let (order, offer) = offered_to(&store, &a, TimeDelta::seconds(30)).await;
    assert!(
        store
            .live_offer_for_nurse(a.id, now())
            .await
            .unwrap()
            .is_some()
    );

    let before = outbox_rows(&store).await;
    // Not B's offer: not found, and nothing changes.
    assert_eq!(
        claim(&store, &offer, &b).await,
        ClaimOutcome::Lost(ClaimLost::NotFound)
    );
    let ClaimOutcome::Won(won) = claim(&store, &offer, &a).await else {
        panic!("the nurse's own live offer wins")
    };
    assert_eq!(won.status, OrderStatus::Assigned);
    assert_eq!(won.nurse_id, Some(a.id));
    assert_eq!(
        outbox_rows(&store).await,
        before + 2,
        "status change and answer written with the win"
    );
    assert_eq!(
        store.get_offer(offer.id).await.unwrap().unwrap().status,
        OfferStatus::Accepted
    );
    assert_eq!(
        store
            .active_order_for_nurse(a.id)
            .await
            .unwrap()
            .map(|o| o.id),
        Some(order.id)
    );
    assert!(
        store
            .live_offer_for_nurse(a.id, now())
            .await
            .unwrap()
            .is_none()
    );
    // A retry is answered the same, writing nothing more.
    assert!(matches!(
        claim(&store, &offer, &a).await,
        ClaimOutcome::Won(_)
    ));
    assert_eq!(outbox_rows(&store).await, before + 2);

    // A nurse with a job cannot win another: nothing changes.
    let (_, second) = offered_to(&store, &a, TimeDelta::seconds(30)).await;
    let before = outbox_rows(&store).await;
    assert_eq!(
        claim(&store, &second, &a).await,
        ClaimOutcome::Lost(ClaimLost::NurseBusy)
    );
    assert_eq!(
        store.get_offer(second.id).await.unwrap().unwrap().status,
        OfferStatus::Open
    );
    assert_eq!(outbox_rows(&store).await, before);
}

pub async fn a_late_claim_is_expired_and_a_cancelled_order_cancelled(store: Store) {
    let a = nurse(&store).await;
    let (order, offer) = offered_to(&store, &a, TimeDelta::milliseconds(1)).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(
        store
            .live_offer_for_nurse(a.id, now())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        claim(&store, &offer, &a).await,
        ClaimOutcome::Lost(ClaimLost::Expired)
    );
    assert_eq!(
        store.get_order(order.id).await.unwrap().unwrap().status,
        OrderStatus::Offered
    );
    // Until the dispatcher closes it, the nurse's lapsed offer stays open
    // (and keeps them from a second one).
    store
        .close_offer(offer.id, OfferStatus::Expired, now(), None, vec![])
        .await
        .unwrap();
    assert_eq!(
        claim(&store, &offer, &a).await,
        ClaimOutcome::Lost(ClaimLost::Expired)
    );

    let (order, offer) = offered_to(&store, &a, TimeDelta::seconds(30)).await;
    store
        .transition_order(OrderTransition::new(
            order.id,
            vec![OrderStatus::Offered],
            OrderStatus::Cancelled,
            now(),
        ))
        .await
        .unwrap();
    assert_eq!(
        claim(&store, &offer, &a).await,
        ClaimOutcome::Lost(ClaimLost::Cancelled)
    );
    // The failed claim left the offer open; withdrawing it is the canceller's job.
    store
        .close_offer(offer.id, OfferStatus::Withdrawn, now(), None, vec![])
        .await
        .unwrap();
    assert_eq!(
        claim(&store, &offer, &a).await,
        ClaimOutcome::Lost(ClaimLost::Cancelled)
    );
}

pub async fn claims_and_manual_assignments_race_to_one_winner(store: Store) {
    let a = nurse(&store).await;
    let b = nurse(&store).await;
    let store = Arc::new(store);
    for round in 0..20 {
        let (order, offer) = offered_to(&store, &a, TimeDelta::seconds(30)).await;
        let (s1, s2) = (store.clone(), store.clone());
        let (a_id, b_id) = (a.id, b.id);
        let accept = tokio::spawn(async move {
            s1.claim_offer(offer.id, a_id, now(), |_, _| None, |_| vec![])
                .await
        });
        let manual = tokio::spawn(async move {
            s2.assign_order(order.id, b_id, now(), None, false, |_, _| None)
                .await
        });
        let accepted = matches!(accept.await.unwrap(), Ok(ClaimOutcome::Won(_)));
        let assigned = manual.await.unwrap().is_ok();
        assert!(
            accepted ^ assigned,
            "round {round}: accept {accepted}, manual {assigned}"
        );
        let o = store.get_order(order.id).await.unwrap().unwrap();
        assert_eq!(o.nurse_id, Some(if accepted { a.id } else { b.id }));
        let final_offer = store.get_offer(offer.id).await.unwrap().unwrap();
        let expected = if accepted {
            OfferStatus::Accepted
        } else {
            OfferStatus::Withdrawn
        };
        assert_eq!(final_offer.status, expected);
        store
            .transition_order(OrderTransition::new(
                order.id,
                vec![OrderStatus::Assigned],
                OrderStatus::Cancelled,
                now(),
            ))
            .await
            .unwrap();
    }
}

pub async fn manual_assignment_respects_offers_and_jobs(store: Store) {
    let a = nurse(&store).await;
    let b = nurse(&store).await;
    let (_, _offer_to_a) = offered_to(&store, &a, TimeDelta::seconds(30)).await;
    let (other, _) = offered_to(&store, &b, TimeDelta::seconds(30)).await;
    // A is weighing another order's offer: not free.
    let e = store
        .assign_order(other.id, a.id, now(), None, false, |_, _| None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    // Assigning B's own offered order to B accepts B's offer.
    let eta = now() + TimeDelta::minutes(9);
    let (o, closed) = store
        .assign_order(other.id, b.id, now(), Some(eta), false, |o, _| {
            assert_eq!(o.eta, Some(eta), "the event carries the new ETA");
            Some(msg("orders"))
        })
        .await
        .unwrap();
    assert_eq!(o.nurse_id, Some(b.id));
    assert_eq!(
        o.eta,
        Some(eta),
        "the assigned nurse's ETA replaces the offer's"
    );
    assert_eq!(closed.map(|c| c.status), Some(OfferStatus::Accepted));
    // Taken orders cannot be assigned again, even to a free nurse.
    let c = nurse(&store).await;
    let e = store
        .assign_order(other.id, c.id, now(), None, false, |_, _| None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::StaleState { .. }), "{e:?}");
}

pub async fn closing_an_offer_writes_its_events_once(store: Store) {
    let a = nurse(&store).await;
    let (_, offer) = offered_to(&store, &a, TimeDelta::seconds(30)).await;
    let before = outbox_rows(&store).await;
    let closed = store
        .close_offer(
            offer.id,
            OfferStatus::Declined,
            now(),
            Some("太远".into()),
            vec![msg("offers")],
        )
        .await
        .unwrap();
    assert_eq!(closed.status, OfferStatus::Declined);
    assert_eq!(closed.decline_reason.as_deref(), Some("太远"));
    assert_eq!(outbox_rows(&store).await, before + 1);
    let e = store
        .close_offer(
            offer.id,
            OfferStatus::Expired,
            now(),
            None,
            vec![msg("offers")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::StaleState { ref current } if current == "declined"),
        "{e:?}"
    );
    assert_eq!(outbox_rows(&store).await, before + 1);
    store.set_shift(&org(), a.id, ShiftState::On).await.unwrap();
    assert_eq!(
        store.get_nurse(a.id).await.unwrap().unwrap().shift,
        ShiftState::On
    );
    assert!(matches!(
        store
            .set_shift(&OrgId::from("other"), a.id, ShiftState::Off)
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn an_offer_is_made_once_per_order_and_nurse_with_its_events(store: Store) {
    let a = nurse(&store).await;
    let b = nurse(&store).await;
    let order = pending_order(&store).await;
    let before = outbox_rows(&store).await;
    let offer = Offer::new(order.id, a.id, now(), TimeDelta::seconds(30), 12, 3_400);
    let placed = store
        .make_offer(
            &offer,
            |o, from| {
                assert_eq!(from, OrderStatus::Pending);
                assert_eq!(o.status, OrderStatus::Offered);
                Some(msg("orders"))
            },
            vec![msg("offers")],
        )
        .await
        .unwrap();
    assert_eq!(placed.status, OrderStatus::Offered);
    assert_eq!(placed.eta, Some(offer.created_at + TimeDelta::minutes(12)));
    // What the store now says agrees with what it answered.
    let read = store.get_order(order.id).await.unwrap().unwrap();
    assert_eq!(read.status, OrderStatus::Offered);
    assert_eq!(read.eta, placed.eta);
    let offers = store.offers_for_order(order.id).await.unwrap();
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].id, offer.id);
    assert_eq!(offers[0].status, OfferStatus::Open);
    assert_eq!((offers[0].eta_min, offers[0].distance_m), (12, 3_400));
    assert_eq!(offers[0].expires_at, offer.expires_at);
    assert_eq!(outbox_rows(&store).await, before + 2);
    let timeline = store.timeline(order.id).await.unwrap();
    assert_eq!(
        timeline.iter().map(|e| e.status).collect::<Vec<_>>(),
        vec![OrderStatus::Pending, OrderStatus::Offered]
    );

    // One open offer per order: B cannot get it too, and nothing is written.
    let to_b = Offer::new(order.id, b.id, now(), TimeDelta::seconds(30), 5, 900);
    let e = store
        .make_offer(&to_b, |_, _| Some(msg("orders")), vec![msg("offers")])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    // One open offer per nurse: A cannot get a second order's offer.
    let second = pending_order(&store).await;
    let again_a = Offer::new(second.id, a.id, now(), TimeDelta::seconds(30), 5, 900);
    let e = store
        .make_offer(&again_a, |_, _| Some(msg("orders")), vec![msg("offers")])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert_eq!(
        outbox_rows(&store).await,
        before + 3,
        "only the second order's creation"
    );
    assert_eq!(
        store.get_order(second.id).await.unwrap().unwrap().status,
        OrderStatus::Pending
    );

    // A nurse with an active job gets no offer.
    let (assigned, _) = store
        .assign_order(second.id, b.id, now(), None, false, |_, _| None)
        .await
        .unwrap();
    assert_eq!(assigned.status, OrderStatus::Assigned);
    let third = pending_order(&store).await;
    let to_busy_b = Offer::new(third.id, b.id, now(), TimeDelta::seconds(30), 5, 900);
    let e = store
        .make_offer(&to_busy_b, |_, _| None, vec![])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");

    // A cancelled order is stale.
    store
        .transition_order(OrderTransition::new(
            third.id,
            vec![OrderStatus::Pending],
            OrderStatus::Cancelled,
            now(),
        ))
        .await
        .unwrap();
    let c = nurse(&store).await;
    let to_c = Offer::new(third.id, c.id, now(), TimeDelta::seconds(30), 5, 900);
    let e = store
        .make_offer(&to_c, |_, _| None, vec![])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::StaleState { .. }), "{e:?}");
    assert!(store.offers_for_order(third.id).await.unwrap().is_empty());
}

pub async fn nurse_standing_tells_engaged_nurses_and_their_record(store: Store) {
    let offered = nurse(&store).await;
    let busy = nurse(&store).await;
    let free = nurse(&store).await;
    let since = now() - TimeDelta::hours(1);
    // `free` declined an offer today; `offered` holds one; `busy` won one.
    let (_, declined) = offered_to(&store, &free, TimeDelta::seconds(30)).await;
    store
        .close_offer(declined.id, OfferStatus::Declined, now(), None, vec![])
        .await
        .unwrap();
    let (_, _open) = offered_to(&store, &offered, TimeDelta::seconds(30)).await;
    let (_, won) = offered_to(&store, &busy, TimeDelta::seconds(30)).await;
    assert!(matches!(
        claim(&store, &won, &busy).await,
        ClaimOutcome::Won(_)
    ));
    let stranger = nurse(&store).await;

    let ids = [offered.id, busy.id, free.id, stranger.id];
    let standing = store.nurse_standing(&ids, since).await.unwrap();
    let get = |id| standing.get(&id).copied().unwrap_or_default();
    assert!(get(offered.id).engaged, "an open offer engages");
    assert_eq!((get(offered.id).answered, get(offered.id).accepted), (0, 0));
    assert!(get(busy.id).engaged, "an active job engages");
    assert_eq!((get(busy.id).answered, get(busy.id).accepted), (1, 1));
    assert!(!get(free.id).engaged);
    assert_eq!((get(free.id).answered, get(free.id).accepted), (1, 0));
    assert_eq!(get(stranger.id), crate::NurseStanding::default());
    // Offers before `since` do not count.
    let later = store
        .nurse_standing(&ids, now() + TimeDelta::hours(1))
        .await
        .unwrap();
    assert_eq!(
        later
            .get(&busy.id)
            .map(|s| (s.answered, s.accepted))
            .unwrap_or((0, 0)),
        (0, 0)
    );
    assert!(store.nurse_standing(&[], since).await.unwrap().is_empty());
}

/// An accept and the dispatcher's expiry of the same offer, at once: one of
/// them wins, and the offer and the order agree on which.
pub async fn a_claim_and_an_expiry_race_to_one_consistent_end(store: Store) {
    let a = nurse(&store).await;
    let store = Arc::new(store);
    let (mut won, mut lapsed) = (0, 0);
    for round in 0..20 {
        let (order, offer) = offered_to(&store, &a, TimeDelta::seconds(30)).await;
        let (s1, s2) = (store.clone(), store.clone());
        let a_id = a.id;
        let accept = tokio::spawn(async move {
            s1.claim_offer(
                offer.id,
                a_id,
                now(),
                |_, _| Some(msg("orders")),
                |_| vec![msg("offers")],
            )
            .await
        });
        let expire = tokio::spawn(async move {
            s2.close_offer(
                offer.id,
                OfferStatus::Expired,
                now(),
                None,
                vec![msg("offers")],
            )
            .await
        });
        let claim = accept.await.unwrap().unwrap();
        let expiry = expire.await.unwrap();
        let o = store.get_order(order.id).await.unwrap().unwrap();
        let final_offer = store.get_offer(offer.id).await.unwrap().unwrap();
        match claim {
            ClaimOutcome::Won(assigned) => {
                won += 1;
                assert!(expiry.is_err(), "round {round}: both won");
                assert_eq!(final_offer.status, OfferStatus::Accepted);
                assert_eq!((o.status, o.nurse_id), (OrderStatus::Assigned, Some(a.id)));
                assert_eq!(assigned.status, OrderStatus::Assigned);
                store
                    .transition_order(OrderTransition::new(
                        order.id,
                        vec![OrderStatus::Assigned],
                        OrderStatus::Cancelled,
                        now(),
                    ))
                    .await
                    .unwrap();
            }
            ClaimOutcome::Lost(why) => {
                lapsed += 1;
                assert_eq!(why, ClaimLost::Expired, "round {round}");
                assert!(expiry.is_ok(), "round {round}: neither won");
                assert_eq!(final_offer.status, OfferStatus::Expired);
                assert_eq!((o.status, o.nurse_id), (OrderStatus::Offered, None));
            }
        }
    }
    assert_eq!(won + lapsed, 20);
}

pub async fn a_cancel_withdraws_open_offers_with_the_order_in_one_step(store: Store) {
    let a = nurse(&store).await;
    let (order, offer) = offered_to(&store, &a, TimeDelta::seconds(30)).await;
    let before = outbox_rows(&store).await;
    let mut seen_from = None;
    let done = store
        .cancel_order(order.id, Some("不需要了"), now(), |next, from| {
            assert_eq!(next.status, OrderStatus::Cancelled);
            seen_from = Some(from);
            msg("orders")
        })
        .await
        .unwrap();
    assert_eq!(seen_from, Some(OrderStatus::Offered));
    assert_eq!(done.from, OrderStatus::Offered);
    assert_eq!(done.order.status, OrderStatus::Cancelled);
    assert_eq!(done.order.cancel_reason.as_deref(), Some("不需要了"));
    assert_eq!(done.withdrawn.len(), 1);
    assert_eq!(done.withdrawn[0].id, offer.id);
    assert_eq!(done.withdrawn[0].status, OfferStatus::Withdrawn);
    assert_eq!(
        store.get_offer(offer.id).await.unwrap().unwrap().status,
        OfferStatus::Withdrawn
    );
    assert_eq!(outbox_rows(&store).await, before + 1);
    // Twice: refused, and nothing more is written.
    let again = store
        .cancel_order(order.id, None, now(), |_, _| msg("orders"))
        .await;
    assert!(
        matches!(&again, Err(StoreError::StaleState { current }) if current == "cancelled"),
        "{again:?}"
    );
    assert_eq!(outbox_rows(&store).await, before + 1);
    // Past the start of the visit: refused.
    let (started, _) = offered_to(&store, &a, TimeDelta::seconds(30)).await;
    store
        .transition_order(OrderTransition::new(
            started.id,
            vec![OrderStatus::Offered],
            OrderStatus::InService,
            now(),
        ))
        .await
        .unwrap();
    assert!(matches!(
        store
            .cancel_order(started.id, None, now(), |_, _| msg("orders"))
            .await,
        Err(StoreError::StaleState { .. })
    ));
    assert!(matches!(
        store
            .cancel_order(yixin_domain::OrderId::new(), None, now(), |_, _| msg(
                "orders"
            ))
            .await,
        Err(StoreError::NotFound)
    ));
}

/// A cancel and an accept of the order's offer, at once: either the
/// cancel wins (offer withdrawn, the claim loses) or the claim wins and the
/// cancel then cancels an assigned order, freeing the nurse. Never an
/// accepted offer on a cancelled order that still holds the nurse.
pub async fn a_cancel_and_a_claim_race_to_one_consistent_end(store: Store) {
    let a = nurse(&store).await;
    for _ in 0..10 {
        let (order, offer) = offered_to(&store, &a, TimeDelta::seconds(30)).await;
        let (s1, s2) = (store.clone(), store.clone());
        let (o1, n1) = (offer.clone(), a.clone());
        let claim = tokio::spawn(async move { claim(&s1, &o1, &n1).await });
        let cancel = tokio::spawn(async move {
            s2.cancel_order(order.id, None, now(), |_, _| msg("orders"))
                .await
        });
        let (claimed, cancelled) = (claim.await.unwrap(), cancel.await.unwrap());
        let cancelled = cancelled.unwrap();
        let final_order = store.get_order(order.id).await.unwrap().unwrap();
        let final_offer = store.get_offer(offer.id).await.unwrap().unwrap();
        assert_eq!(final_order.status, OrderStatus::Cancelled);
        assert_eq!(final_order.nurse_id, None);
        match claimed {
            ClaimOutcome::Won(_) => {
                assert_eq!(cancelled.from, OrderStatus::Assigned);
                assert!(cancelled.withdrawn.is_empty());
                assert_eq!(final_offer.status, OfferStatus::Accepted);
            }
            ClaimOutcome::Lost(_) => {
                assert_eq!(cancelled.from, OrderStatus::Offered);
                assert_eq!(final_offer.status, OfferStatus::Withdrawn);
            }
        }
    }
}

/// An alarm's escalation claim is a lease: while it holds nobody else
/// claims it; once it runs out with no outcome recorded (the claimer died
/// mid-delivery) the next scan lists and claims it again; once an outcome
/// is recorded it is never claimed again.
pub async fn an_abandoned_escalation_claim_is_claimed_again_after_its_lease(store: Store) {
    use yixin_domain::safety::{Alarm, AlarmKind};

    let n = nurse(&store).await;
    let t0 = now();
    let alarm = Alarm::raise(org(), n.id, None, AlarmKind::Sos, None, None, None, t0).unwrap();
    store.insert_alarm(&alarm).await.unwrap();
    let lease = TimeDelta::seconds(30);
    let due_at = |t: DateTime<Utc>| {
        let store = store.clone();
        async move {
            store
                .alarms_to_escalate(t, t - lease, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(due_at(t0).await, vec![alarm.id]);
    assert!(
        store
            .claim_alarm_escalation(alarm.id, t0, t0 - lease)
            .await
            .unwrap()
    );
    // Within the lease: held by the first claimer.
    let t1 = t0 + TimeDelta::seconds(10);
    assert!(due_at(t1).await.is_empty());
    assert!(
        !store
            .claim_alarm_escalation(alarm.id, t1, t1 - lease)
            .await
            .unwrap()
    );
    // The lease ran out with no outcome: listed and claimed again, once.
    let t2 = t0 + TimeDelta::seconds(31);
    assert_eq!(due_at(t2).await, vec![alarm.id]);
    assert!(
        store
            .claim_alarm_escalation(alarm.id, t2, t2 - lease)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_alarm_escalation(alarm.id, t2, t2 - lease)
            .await
            .unwrap()
    );
    // An outcome recorded: never claimed again, however old the claim.
    store
        .record_alarm_escalation(alarm.id, "delivered", 1, t2)
        .await
        .unwrap();
    let t3 = t2 + TimeDelta::seconds(3600);
    assert!(due_at(t3).await.is_empty());
    assert!(
        !store
            .claim_alarm_escalation(alarm.id, t3, t3 - lease)
            .await
            .unwrap()
    );
}
