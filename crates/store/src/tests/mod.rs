//! Store tests. Each case is written once as `async fn case(store: Store)`
//! and runs on PostgreSQL (a fresh database per test), in-memory SQLite (one
//! connection) and file SQLite in WAL mode (a pool of connections, so
//! concurrent writers really contend for the lock).

mod cases;
mod chain;
mod demand;
mod dispatch;
mod leases;
mod tracking;
mod webhooks;

/// Instantiates every listed case on each backend.
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, _db) = crate::testing::fresh_postgres().await;
                    super::cases::$case(store).await;
                }
            )*
        }
        mod sqlite_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let store = crate::testing::fresh_sqlite().await;
                    super::cases::$case(store).await;
                }
            )*
        }
        mod sqlite_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
                    let store = crate::Store::connect(&url, 8).await.unwrap();
                    store.migrate().await.unwrap();
                    super::cases::$case(store).await;
                }
            )*
        }
    };
}

on_every_backend!(
    migrate_is_idempotent_and_seeds_the_catalogue,
    create_order_writes_order_event_and_outbox_in_one_transaction,
    idempotent_replay_returns_the_first_order,
    idempotency_key_with_another_body_conflicts,
    concurrent_creates_with_one_key_make_one_order,
    concurrent_claims_exactly_one_wins,
    transition_checks_version_and_records_the_timeline,
    a_nurse_cannot_hold_two_active_orders,
    second_open_offer_is_a_conflict,
    keyset_paging_newest_first_without_gaps_or_duplicates,
    outbox_unpublished_then_published,
    locations_batch_insert_and_read_back,
    corrupt_row_is_an_error_not_a_panic,
    rating_only_once_and_only_when_completed,
    organisations_areas_and_nurses,
    orders_with_status_and_idempotency_purge,
    create_order_round_trips_every_field,
    outbox_poll_skips_published_rows_wherever_they_are,
    retention_prunes_old_published_outbox_rows_only,
    retention_keeps_the_visit_trail_longer,
    relays_claim_outbox_rows_without_overlap,
    conflicts_are_stable_and_a_new_organisation_takes_its_first_nurse,
);

/// A create waits for a concurrent holder of its idempotency key (on
/// backends with more than one connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_create_waits_for_a_concurrent_holder_of_its_key() {
    let (store, _db) = crate::testing::fresh_postgres().await;
    cases::create_waits_for_a_concurrent_holder_of_its_key(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_create_waits_for_a_concurrent_holder_of_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = crate::Store::connect(&url, 8).await.unwrap();
    store.migrate().await.unwrap();
    cases::create_waits_for_a_concurrent_holder_of_its_key(store).await;
}

/// Instances starting together all migrate the same database: every one
/// succeeds and the catalogue is seeded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_migrations_serialise() {
    use yixin_migration::{Migrator, MigratorTrait};

    let (store, db) = crate::testing::fresh_postgres().await;
    Migrator::down(store.connection(), None).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = db.url().to_owned();
        tasks.push(tokio::spawn(async move {
            let s = crate::Store::connect(&url, 2).await.unwrap();
            s.migrate().await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let catalog = store.catalog().await.unwrap();
    assert_eq!(
        catalog.services.len(),
        yixin_domain::Catalog::seed().services.len()
    );
    assert!(
        Migrator::get_pending_migrations(store.connection())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Offers and jobs (nurse-tracking, dispatcher).
mod tracking_on_every_backend {
    use super::tracking as cases;

    on_every_backend!(
        a_claim_wins_once_and_says_why_others_lose,
        a_late_claim_is_expired_and_a_cancelled_order_cancelled,
        claims_and_manual_assignments_race_to_one_winner,
        manual_assignment_respects_offers_and_jobs,
        closing_an_offer_writes_its_events_once,
        an_offer_is_made_once_per_order_and_nurse_with_its_events,
        nurse_standing_tells_engaged_nurses_and_their_record,
        a_claim_and_an_expiry_race_to_one_consistent_end,
        a_cancel_withdraws_open_offers_with_the_order_in_one_step,
        a_cancel_and_a_claim_race_to_one_consistent_end,
        an_abandoned_escalation_claim_is_claimed_again_after_its_lease,
    );
}

/// Chained jobs: one current plus one next job per nurse.
mod chain_on_every_backend {
    use super::chain as cases;

    on_every_backend!(
        a_nurse_holds_one_current_and_one_next_job,
        a_chained_claim_without_a_current_job_is_the_current_job,
        cancelling_the_current_job_promotes_the_next,
        two_claims_of_one_next_slot_one_wins,
        a_next_job_is_taken_back_only_while_it_is_next,
    );
}

/// The coordinator's reads (dispatcher dashboard).
mod dispatch_on_every_backend {
    use super::dispatch as cases;

    on_every_backend!(
        org_orders_are_scoped_newest_first_and_filtered,
        offers_and_timelines_come_per_order,
        open_orders_are_counted_by_status,
        day_orders_carry_first_assignment_and_arrival,
    );
}

/// Region leases (sharded dispatch).
mod leases_on_every_backend {
    use super::leases as cases;

    on_every_backend!(
        two_contenders_for_a_region_one_wins,
        an_expired_lease_is_taken_with_a_new_token,
        renewal_needs_the_holder_its_token_and_an_unexpired_lease,
    );
}

/// The order history the demand forecast learns from.
mod demand_on_every_backend {
    use super::demand as cases;

    on_every_backend!(order_history_is_scoped_windowed_newest_first_and_bounded);
}

/// Webhooks: endpoints, capture, claims, retries, replay, notifications.
mod webhooks_on_every_backend {
    use super::webhooks as cases;

    on_every_backend!(
        endpoints_are_scoped_to_their_organisation,
        events_are_captured_once_per_subscribed_endpoint,
        deliveries_are_claimed_retried_dead_and_replayed,
        notifications_carry_the_template_phone_and_masked_nurse,
    );
}
