//! Chained jobs: one current plus one next job per nurse, the claim of the
//! next slot atomic, promotion when the current job ends, taking a next job
//! back.

use std::sync::Arc;

use chrono::TimeDelta;
use yixin_domain::{Nurse, Offer, Order, OrderStatus};

use super::tracking::{msg, now, nurse, pending_order};
use crate::{ClaimLost, ClaimOutcome, OrderTransition, Store, StoreError};

/// A pending order given to `nurse` as her current job.
async fn current_job(store: &Store, nurse: &Nurse) -> Order {
    let o = pending_order(store).await;
    store
        .assign_order(o.id, nurse.id, now(), None, false, |_, _| None)
        .await
        .unwrap()
        .0
}

/// A chained offer of a new order to `nurse`, made as the engine makes it.
async fn chained_offer(store: &Store, nurse: &Nurse) -> Result<(Order, Offer), StoreError> {
    let o = pending_order(store).await;
    let mut offer = Offer::new(o.id, nurse.id, now(), TimeDelta::seconds(30), 8, 1_500);
    offer.free_at = Some(now() + TimeDelta::minutes(10));
    let made = store.make_offer(&offer, |_, _| None, vec![]).await?;
    Ok((made, offer))
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

async fn step(
    store: &Store,
    o: &Order,
    from: OrderStatus,
    to: OrderStatus,
) -> Result<Order, StoreError> {
    store
        .transition_order(OrderTransition::new(o.id, vec![from], to, now()))
        .await
}

async fn complete(store: &Store, o: &Order) {
    use OrderStatus::*;
    for (from, to) in [
        (Assigned, EnRoute),
        (EnRoute, Arrived),
        (Arrived, InService),
        (InService, Completed),
    ] {
        step(store, o, from, to).await.unwrap();
    }
}

pub async fn a_nurse_holds_one_current_and_one_next_job(store: Store) {
    let a = nurse(&store).await;
    let current = current_job(&store, &a).await;

    // A chained offer goes to her although she is busy; its ETA counts
    // from the end of her visit.
    let (offered, offer) = chained_offer(&store, &a).await.unwrap();
    assert_eq!(offered.eta, Some(offer.arrival()));
    assert_eq!(
        offer.arrival(),
        offer.free_at.unwrap() + TimeDelta::minutes(8)
    );
    let back = store.get_offer(offer.id).await.unwrap().unwrap();
    assert_eq!(back.free_at, offer.free_at, "the offer keeps free_at");
    // An ordinary offer to a busy nurse is still refused.
    let plain = pending_order(&store).await;
    let e = store
        .make_offer(
            &Offer::new(plain.id, a.id, now(), TimeDelta::seconds(30), 5, 900),
            |_, _| None,
            vec![],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");

    let ClaimOutcome::Won(next) = claim(&store, &offer, &a).await else {
        panic!("the chained claim lost");
    };
    assert_eq!(next.status, OrderStatus::Assigned);
    assert_eq!(next.chained_after, Some(current.id));
    let stored = store.get_order(next.id).await.unwrap().unwrap();
    assert_eq!(stored.chained_after, Some(current.id));
    let (cur, nxt) = store.jobs_for_nurse(a.id).await.unwrap();
    assert_eq!(cur.map(|o| o.id), Some(current.id));
    assert_eq!(nxt.map(|o| o.id), Some(next.id));
    assert_eq!(
        store
            .active_order_for_nurse(a.id)
            .await
            .unwrap()
            .map(|o| o.id),
        Some(current.id),
        "her current job is the one she works on"
    );

    // A third job: no chained offer (the next slot is taken) ...
    let e = chained_offer(&store, &a).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    // ... and no chained manual assignment either.
    let third = pending_order(&store).await;
    let e = store
        .assign_order(third.id, a.id, now(), None, true, |_, _| None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");

    // The next job takes no visit step while it waits.
    let e = step(&store, &next, OrderStatus::Assigned, OrderStatus::EnRoute)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::StaleState { .. }), "{e:?}");

    // The current visit ends: the next job is her current job.
    complete(&store, &current).await;
    let (cur, nxt) = store.jobs_for_nurse(a.id).await.unwrap();
    let cur = cur.unwrap();
    assert_eq!((cur.id, cur.chained_after), (next.id, None));
    assert!(nxt.is_none());
    step(&store, &cur, OrderStatus::Assigned, OrderStatus::EnRoute)
        .await
        .unwrap();
}

pub async fn a_chained_claim_without_a_current_job_is_the_current_job(store: Store) {
    let a = nurse(&store).await;
    let current = current_job(&store, &a).await;
    let (_, offer) = chained_offer(&store, &a).await.unwrap();
    // The visit ends before she answers.
    complete(&store, &current).await;
    let ClaimOutcome::Won(order) = claim(&store, &offer, &a).await else {
        panic!("lost");
    };
    assert_eq!(order.chained_after, None);
    let (cur, nxt) = store.jobs_for_nurse(a.id).await.unwrap();
    assert_eq!(cur.map(|o| o.id), Some(order.id));
    assert!(nxt.is_none());
}

pub async fn cancelling_the_current_job_promotes_the_next(store: Store) {
    let a = nurse(&store).await;
    let current = current_job(&store, &a).await;
    let (_, offer) = chained_offer(&store, &a).await.unwrap();
    let ClaimOutcome::Won(next) = claim(&store, &offer, &a).await else {
        panic!("lost");
    };
    step(
        &store,
        &current,
        OrderStatus::Assigned,
        OrderStatus::Cancelled,
    )
    .await
    .unwrap();
    let promoted = store.get_order(next.id).await.unwrap().unwrap();
    assert_eq!(promoted.chained_after, None);
    assert_eq!(promoted.nurse_id, Some(a.id));
}

pub async fn two_claims_of_one_next_slot_one_wins(store: Store) {
    let a = nurse(&store).await;
    let _current = current_job(&store, &a).await;
    let store = Arc::new(store);
    for round in 0..10 {
        // Two coordinators chain two orders onto her at once.
        let (x, y) = (pending_order(&store).await, pending_order(&store).await);
        let (s1, s2, id) = (store.clone(), store.clone(), a.id);
        let one = tokio::spawn(async move {
            s1.assign_order(x.id, id, now(), None, true, |_, _| None)
                .await
        });
        let two = tokio::spawn(async move {
            s2.assign_order(y.id, id, now(), None, true, |_, _| None)
                .await
        });
        let (one, two) = (one.await.unwrap(), two.await.unwrap());
        assert!(
            one.is_ok() ^ two.is_ok(),
            "round {round}: {one:?} / {two:?}"
        );
        for r in [&one, &two] {
            if let Err(e) = r {
                assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
            }
        }
        let won = one.or(two).unwrap().0;
        assert!(won.chained_after.is_some());
        // A chained accept racing a chained manual assignment: never both
        // (the manual one is refused while her offer is open, and by the
        // taken slot once it is accepted).
        let (_, offer) = {
            // Free the slot first.
            step(&store, &won, OrderStatus::Assigned, OrderStatus::Cancelled)
                .await
                .unwrap();
            chained_offer(&store, &a).await.unwrap()
        };
        let z = pending_order(&store).await;
        let (s1, s2, id) = (store.clone(), store.clone(), a.id);
        let accept = tokio::spawn(async move {
            s1.claim_offer(offer.id, id, now(), |_, _| None, |_| vec![])
                .await
        });
        let manual = tokio::spawn(async move {
            s2.assign_order(z.id, id, now(), None, true, |_, _| None)
                .await
        });
        let accepted = accept.await.unwrap().unwrap();
        let assigned = manual.await.unwrap();
        let won_accept = matches!(accepted, ClaimOutcome::Won(_));
        assert!(
            won_accept ^ assigned.is_ok(),
            "round {round}: accept {accepted:?}, manual {assigned:?}"
        );
        if let ClaimOutcome::Lost(why) = &accepted {
            assert_eq!(*why, ClaimLost::NurseBusy);
        }
        let (_, next) = store.jobs_for_nurse(a.id).await.unwrap();
        let next = next.unwrap();
        step(&store, &next, OrderStatus::Assigned, OrderStatus::Cancelled)
            .await
            .unwrap();
    }
}

pub async fn a_next_job_is_taken_back_only_while_it_is_next(store: Store) {
    let a = nurse(&store).await;
    let current = current_job(&store, &a).await;
    let (_, offer) = chained_offer(&store, &a).await.unwrap();
    let ClaimOutcome::Won(next) = claim(&store, &offer, &a).await else {
        panic!("lost");
    };
    let visits = store.current_visits().await.unwrap();
    let mine = visits.iter().find(|v| v.order.id == current.id).unwrap();
    assert_eq!(mine.next.as_ref().map(|n| n.id), Some(next.id));
    assert!(visits.iter().all(|v| v.order.id != next.id));

    let (_, version) = store.get_order_versioned(next.id).await.unwrap().unwrap();
    // A stale version is refused.
    let e = store
        .take_back_next(next.id, version + 1, now(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::StaleState { .. }), "{e:?}");
    let back = store
        .take_back_next(next.id, version, now(), Some(msg("orders")))
        .await
        .unwrap();
    assert_eq!(back.status, OrderStatus::Pending);
    assert_eq!(
        (back.nurse_id, back.chained_after, back.eta),
        (None, None, None)
    );
    let (cur, nxt) = store.jobs_for_nurse(a.id).await.unwrap();
    assert_eq!(cur.map(|o| o.id), Some(current.id));
    assert!(nxt.is_none());

    // Once promoted, a job is hers to keep.
    let (_, offer) = chained_offer(&store, &a).await.unwrap();
    let ClaimOutcome::Won(next) = claim(&store, &offer, &a).await else {
        panic!("lost");
    };
    let (_, version) = store.get_order_versioned(next.id).await.unwrap().unwrap();
    complete(&store, &current).await;
    let e = store
        .take_back_next(next.id, version, now(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::StaleState { .. }), "{e:?}");
    assert!(store.promote_orphaned_next(now()).await.unwrap().is_empty());
}
