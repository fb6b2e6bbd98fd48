//! Region leases: conditional acquisition, expiry, renewal by the holder only.

use chrono::{SubsecRound, TimeDelta, Utc};

use crate::Store;

const TTL: TimeDelta = TimeDelta::seconds(15);

pub async fn two_contenders_for_a_region_one_wins(store: Store) {
    let now = Utc::now().trunc_subsecs(6);
    let (a, b) = (store.clone(), store.clone());
    let (ra, rb) = tokio::join!(
        a.acquire_region("r1", "alpha", now, TTL),
        b.acquire_region("r1", "beta", now, TTL)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(
        ra.is_some() != rb.is_some(),
        "exactly one wins: {ra:?} {rb:?}"
    );
    let winner = if ra.is_some() { "alpha" } else { "beta" };
    let loser = if ra.is_some() { "beta" } else { "alpha" };
    // Held: the other still cannot take it, nor can a registration reset it.
    store.register_region("r1").await.unwrap();
    assert_eq!(
        store
            .acquire_region("r1", loser, now + TimeDelta::seconds(14), TTL)
            .await
            .unwrap(),
        None
    );
    let leases = store.region_leases().await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].holder.as_deref(), Some(winner));
    assert_eq!(leases[0].token, 1);
    assert_eq!(leases[0].expires_at, Some(now + TTL));
}

pub async fn an_expired_lease_is_taken_with_a_new_token(store: Store) {
    let now = Utc::now().trunc_subsecs(6);
    let t1 = store
        .acquire_region("r1", "alpha", now, TTL)
        .await
        .unwrap()
        .unwrap();
    let later = now + TTL;
    let t2 = store
        .acquire_region("r1", "beta", later, TTL)
        .await
        .unwrap()
        .expect("expired: free to take");
    assert!(t2 > t1);
    // The old holder's renewal is refused (its token is stale, and it is
    // not the holder); so is its late renewal of its own expired lease.
    assert!(
        !store
            .renew_region("r1", "alpha", t1, later, TTL)
            .await
            .unwrap()
    );
    assert!(
        store
            .renew_region("r1", "beta", t2, later + TimeDelta::seconds(5), TTL)
            .await
            .unwrap()
    );
    let lease = &store.region_leases().await.unwrap()[0];
    assert_eq!(lease.holder.as_deref(), Some("beta"));
    assert_eq!(lease.expires_at, Some(later + TimeDelta::seconds(5) + TTL));
}

pub async fn renewal_needs_the_holder_its_token_and_an_unexpired_lease(store: Store) {
    let now = Utc::now().trunc_subsecs(6);
    let t = store
        .acquire_region("r1", "alpha", now, TTL)
        .await
        .unwrap()
        .unwrap();
    let soon = now + TimeDelta::seconds(5);
    assert!(
        !store
            .renew_region("r1", "beta", t, soon, TTL)
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_region("r1", "alpha", t + 1, soon, TTL)
            .await
            .unwrap()
    );
    assert!(
        store
            .renew_region("r1", "alpha", t, soon, TTL)
            .await
            .unwrap()
    );
    // Past its expiry the holder must take it again (a new token).
    let late = soon + TTL;
    assert!(
        !store
            .renew_region("r1", "alpha", t, late, TTL)
            .await
            .unwrap()
    );
    // Released, another takes it at once.
    let t = store
        .acquire_region("r1", "alpha", late, TTL)
        .await
        .unwrap()
        .unwrap();
    assert!(store.release_region("r1", "alpha", t, late).await.unwrap());
    assert!(
        store
            .acquire_region("r1", "beta", late, TTL)
            .await
            .unwrap()
            .is_some()
    );
    // A registered region nobody took is free.
    store.register_region("r2").await.unwrap();
    let r2 = store.region_leases().await.unwrap();
    assert_eq!(r2[1].holder, None);
    assert!(
        store
            .acquire_region("r2", "alpha", late, TTL)
            .await
            .unwrap()
            .is_some()
    );
}
