//! The outbox relay: publishes the events written with each change (the
//! transactional outbox) to the queue, at least once.
//!
//! Every poll takes the oldest unpublished rows, publishes each to the
//! stream named by its topic, then marks them published. A crash between
//! publishing and marking publishes those rows again after the restart
//! (consumers deduplicate by the envelope's `event_id`). Events changing an
//! order are also broadcast on the order's channel for the live feed.
//! Events changing who holds an offer or a job also go to the engagement
//! channel every dispatcher instance follows. With several instances, each
//! runs a relay; on PostgreSQL each claims its batch (`FOR UPDATE SKIP
//! LOCKED`), so no row is published by two relays (a crash may still
//! publish a row twice, which at-least-once allows). A failing poll (Redis
//! or the database away) is retried with the reconnect back-off, forever.
//!
//! Sharded dispatch ([`RelayConfig::regions`] set): an `OrderCreated` goes
//! to its region's stream (`orders:{r:<cell>}`) instead of `orders`, and
//! the region is made known to the dispatchers' lease table the first time
//! this relay sees it.

use std::{sync::Arc, time::Duration};

use chrono::{TimeDelta, Utc};
use futures_util::{StreamExt, stream};
use tokio::sync::watch;
use yixin_contracts::{
    ENGAGEMENT_CHANNEL, Event, decode_envelope, dispatch_channel, is_engagement, order_channel,
    region_of, region_orders_stream,
};
use yixin_domain::GeoPoint;
use yixin_queue::{Backoff, Queue, QueueError};
use yixin_store::{NotificationTemplates, Store};

/// What the relay does, and how often.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Pause between polls when the outbox is empty.
    pub poll_interval: Duration,
    /// Rows per poll.
    pub batch: u64,
    /// Idempotency keys older than this are purged.
    pub idempotency_ttl: Duration,
    /// How often to purge them.
    pub purge_interval: Duration,
    /// Rung after an order is committed, so its `OrderCreated` goes out at
    /// once instead of at the next poll (dispatch latency); the poll still
    /// catches everything else.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
    /// Sharded dispatch: `OrderCreated` goes to its region's stream.
    pub regions: Option<RegionRouting>,
    /// The template ids of the residents' notifications that webhooks carry.
    pub notification_templates: NotificationTemplates,
}

/// How the relay routes orders to dispatch regions (`dispatch.regions` set).
#[derive(Debug, Clone, Default)]
pub struct RegionRouting {
    /// `dispatch.region_resolution`.
    pub resolution: u8,
    /// Regions already made known to the lease table by this relay.
    pub known: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl RegionRouting {
    pub fn new(resolution: u8) -> Self {
        Self {
            resolution,
            known: Arc::default(),
        }
    }
}

/// Publishes of one batch under way at once.
pub const PUBLISHES_IN_FLIGHT: usize = 64;

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(200),
            batch: 500,
            idempotency_ttl: Duration::from_secs(48 * 3600),
            purge_interval: Duration::from_secs(3600),
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
            regions: None,
            notification_templates: NotificationTemplates::default(),
        }
    }
}

pub struct OutboxRelay {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    pub config: RelayConfig,
}

impl OutboxRelay {
    /// Runs until `shutdown` turns true (or its sender is gone).
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        self.run_reporting(None, shutdown).await;
    }

    /// As [`run`](Self::run), reporting to its supervisor: down while polls
    /// fail (the backends are away), up again after the next success.
    pub async fn run_reporting(
        self,
        health: Option<yixin_platform::WorkerHandle>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        tracing::debug!("outbox relay started");
        let mut last_purge: Option<tokio::time::Instant> = None;
        let mut backoff = Backoff::reconnect();
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_purge.is_none_or(|t| t.elapsed() >= self.config.purge_interval) {
                self.purge().await;
                last_purge = Some(tokio::time::Instant::now());
            }
            let published = match self.relay_once().await {
                Ok(n) => {
                    backoff.reset();
                    if let Some(h) = &health {
                        h.up();
                    }
                    n
                }
                Err(e) => {
                    if let Some(h) = &health {
                        h.down(format!("reconnecting: {e}"));
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "outbox relay: poll failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        changed = shutdown.changed() => if changed.is_err() { break },
                    }
                    continue;
                }
            };
            if published as u64 >= self.config.batch {
                continue; // more waiting
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = self.config.wake.notified() => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
        tracing::debug!("outbox relay stopped");
    }

    /// Publishes one batch; returns how many rows were published and marked.
    ///
    /// Up to [`PUBLISHES_IN_FLIGHT`] publishes are under way at once, issued
    /// in the rows' order (on Redis they share one pipelined connection, so
    /// they also arrive in that order) instead of one round trip after
    /// another. At the first failure it stops: the rows before it are marked,
    /// it and the rest stay for the next poll (some of them may have been
    /// published already, which at-least-once allows).
    pub async fn relay_once(&self) -> anyhow::Result<usize> {
        let mut claim = self.store.claim_outbox(self.config.batch).await?;
        let rows = std::mem::take(&mut claim.rows);
        let rows_by_id: Vec<(i64, Vec<u8>)> =
            rows.iter().map(|r| (r.id, r.payload.clone())).collect();
        let mut done = Vec::with_capacity(rows.len());
        let mut published = stream::iter(rows)
            .map(|row| async move {
                let Audiences {
                    order,
                    org,
                    engagement,
                    region,
                } = audiences(&row.payload, self.config.regions.as_ref());
                let topic = match &region {
                    Some(region) => {
                        self.make_known(region).await?;
                        region_orders_stream(region)
                    }
                    None => row.topic.clone(),
                };
                self.queue.publish(&topic, &row.payload).await?;
                // Every dispatcher instance hears who became busy or free.
                if engagement
                    && let Err(e) = self.queue.broadcast(ENGAGEMENT_CHANNEL, &row.payload).await
                {
                    tracing::debug!(error = %e, "engagement broadcast failed");
                }
                if let Some(order_id) = order
                    && let Err(e) = self
                        .queue
                        .broadcast(&order_channel(&order_id), &row.payload)
                        .await
                {
                    tracing::debug!(%order_id, error = %e, "live broadcast failed");
                }
                // The organisation's coordinators follow every order.
                if let Some(org) = org
                    && let Err(e) = self
                        .queue
                        .broadcast(&dispatch_channel(&org), &row.payload)
                        .await
                {
                    tracing::debug!(%org, error = %e, "dispatch feed broadcast failed");
                }
                Ok::<_, QueueError>(row.id)
            })
            .buffered(PUBLISHES_IN_FLIGHT);
        let mut failure = None;
        while let Some(outcome) = published.next().await {
            match outcome {
                Ok(id) => done.push(id),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(published);
        // The organisations' webhooks, before the mark: a relay that dies
        // in between hands the rows over again, and the store keeps one
        // delivery per endpoint, event and type (at least once, no double).
        if let Err(e) = self.capture_webhooks(&rows_by_id, &done).await {
            drop(claim);
            return Err(e.into());
        }
        // Marks what went out and releases the claim (the rest go back).
        claim.published(&done, Utc::now()).await?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        Ok(done.len())
    }

    /// Makes `region` known to the dispatchers' lease table (once per
    /// relay), so an instance takes it before its first order waits long.
    async fn make_known(&self, region: &str) -> Result<(), QueueError> {
        let Some(routing) = &self.config.regions else {
            return Ok(());
        };
        let known = |r: &str| {
            routing
                .known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(r)
        };
        if known(region) {
            return Ok(());
        }
        self.store
            .register_region(region)
            .await
            .map_err(|e| QueueError::Unavailable(format!("region not registered: {e}")))?;
        routing
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(region.to_owned());
        Ok(())
    }

    /// Writes the webhook deliveries of the published rows `done`.
    async fn capture_webhooks(
        &self,
        rows: &[(i64, Vec<u8>)],
        done: &[i64],
    ) -> Result<u64, yixin_store::StoreError> {
        let done: std::collections::HashSet<i64> = done.iter().copied().collect();
        let events: Vec<_> = rows
            .iter()
            .filter(|(id, _)| done.contains(id))
            .filter_map(|(_, payload)| decode_envelope(payload).ok())
            .filter_map(|env| yixin_contracts::webhooks::from_envelope(&env))
            .collect();
        self.store
            .enqueue_webhook_events(&events, &self.config.notification_templates, Utc::now())
            .await
    }

    async fn purge(&self) {
        let ttl = TimeDelta::from_std(self.config.idempotency_ttl).unwrap_or(TimeDelta::days(2));
        match self.store.purge_idempotency_keys(Utc::now() - ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "old idempotency keys purged"),
            Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
        }
    }
}

/// Who follows an event besides its stream, decoded once per row.
struct Audiences {
    /// The order whose live feeds hear of a change (`order:{id}`).
    order: Option<String>,
    /// The organisation whose coordinators see it (`dispatch:{org}`).
    org: Option<String>,
    /// Whether the dispatchers' engagement channel does.
    engagement: bool,
    /// Sharded dispatch: the region whose stream takes it instead of its
    /// topic (an `OrderCreated`).
    region: Option<String>,
}

/// The [`Audiences`] of an event.
///
/// Not `OrderCreated` on the order's channel: nobody can follow an order
/// before its creation was answered, and a feed opened since then sent the
/// order as it is on connecting (and the nurse's socket only follows status
/// changes), so that broadcast would reach no one who needs it — one Redis
/// call per order saved.
fn audiences(payload: &[u8], regions: Option<&RegionRouting>) -> Audiences {
    let Some(event) = decode_envelope(payload).ok().and_then(|e| e.event) else {
        return Audiences {
            order: None,
            org: None,
            engagement: false,
            region: None,
        };
    };
    let engagement = is_engagement(&event);
    let mut region = None;
    let (order, org) = match event {
        Event::OrderCreated(e) => {
            region = regions.and_then(|r| {
                GeoPoint::new(e.lat, e.lng)
                    .ok()
                    .and_then(|p| region_of(p, r.resolution))
            });
            (None, Some(e.org_id))
        }
        Event::OrderStatusChanged(e) => (Some(e.order_id), Some(e.org_id)),
        Event::OfferMade(e) => (Some(e.order_id), None),
        _ => (None, None),
    };
    Audiences {
        order,
        org,
        engagement,
        region,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use yixin_domain::{Address, Contact, GeoPoint, NewOrder, Order, OrgId, ResidentId};
    use yixin_queue::{MemoryQueue, QueueConfig};
    use yixin_store::NewOutboxMessage;

    use super::*;

    async fn write_orders(store: &Store, n: usize) {
        for i in 0..n {
            let order = Order::place(
                NewOrder {
                    org_id: OrgId::from("demo"),
                    resident_id: ResidentId::from("r1"),
                    service_code: "wound_care".to_owned(),
                    location: GeoPoint::new(29.39, 106.32).unwrap(),
                    address: Address::new("福城大道 1 号", None).unwrap(),
                    contact: Contact::new("王", "13812345678").unwrap(),
                    notes: None,
                    scheduled_for: None,
                },
                Utc::now(),
            );
            let msg = NewOutboxMessage {
                topic: yixin_contracts::ORDERS_STREAM.to_owned(),
                payload: format!("event-{i:03}").into_bytes(),
            };
            store.create_order(&order, msg, None).await.unwrap();
        }
    }

    /// Two relays polling one PostgreSQL outbox together publish every row
    /// exactly once: each claims its batch with `SKIP LOCKED`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_relays_on_postgres_publish_each_row_once() {
        let (store, _db) = yixin_store::testing::fresh_postgres().await;
        let queue = Arc::new(MemoryQueue::new(QueueConfig::default()));
        queue.ensure_group("orders", "test").await.unwrap();
        write_orders(&store, 400).await;
        let relay = |store: &Store| OutboxRelay {
            store: store.clone(),
            queue: queue.clone(),
            config: RelayConfig {
                batch: 25,
                ..RelayConfig::default()
            },
        };
        let (a, b) = (relay(&store), relay(&store));
        let drain = |r: OutboxRelay| {
            tokio::spawn(async move {
                let mut total = 0;
                loop {
                    let n = r.relay_once().await.unwrap();
                    total += n;
                    if n == 0 {
                        return total;
                    }
                }
            })
        };
        let (na, nb) = tokio::join!(drain(a), drain(b));
        let (na, nb) = (na.unwrap(), nb.unwrap());
        assert_eq!(na + nb, 400, "{na} + {nb}");
        assert!(store.unpublished_outbox(500).await.unwrap().is_empty());
        let got = queue
            .read("orders", "test", "c", 1000, Duration::ZERO)
            .await
            .unwrap();
        let mut got: Vec<String> = got
            .into_iter()
            .map(|d| String::from_utf8(d.payload).unwrap())
            .collect();
        assert_eq!(got.len(), 400, "a row was published twice");
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 400);
    }

    /// Publishes in flight together still reach the stream in the outbox's
    /// order, and every published row is marked.
    #[tokio::test]
    async fn a_batch_is_published_in_order_and_marked() {
        let store = yixin_store::testing::fresh_sqlite().await;
        let queue = Arc::new(MemoryQueue::new(QueueConfig::default()));
        queue.ensure_group("orders", "test").await.unwrap();
        write_orders(&store, 150).await;
        let relay = OutboxRelay {
            store: store.clone(),
            queue: queue.clone(),
            config: RelayConfig {
                batch: 100,
                ..RelayConfig::default()
            },
        };
        assert_eq!(relay.relay_once().await.unwrap(), 100);
        assert_eq!(store.unpublished_outbox(500).await.unwrap().len(), 50);
        assert_eq!(relay.relay_once().await.unwrap(), 50);
        assert!(store.unpublished_outbox(500).await.unwrap().is_empty());
        assert_eq!(relay.relay_once().await.unwrap(), 0);

        let got = queue
            .read("orders", "test", "c", 500, Duration::ZERO)
            .await
            .unwrap();
        let got: Vec<String> = got
            .into_iter()
            .map(|d| String::from_utf8(d.payload).unwrap())
            .collect();
        let expected: Vec<String> = (0..150).map(|i| format!("event-{i:03}")).collect();
        assert_eq!(got, expected);
    }

    /// Sharded dispatch: an `OrderCreated` goes to its region's stream (not
    /// `orders`) and the region becomes known to the lease table; other
    /// events keep their topic.
    #[tokio::test]
    async fn sharded_relay_routes_orders_to_their_region_stream() {
        let store = yixin_store::testing::fresh_sqlite().await;
        let queue = Arc::new(MemoryQueue::new(QueueConfig::default()));
        let at = GeoPoint::new(29.39, 106.32).unwrap();
        let order = Order::place(
            NewOrder {
                org_id: OrgId::from("demo"),
                resident_id: ResidentId::from("r1"),
                service_code: "wound_care".to_owned(),
                location: at,
                address: Address::new("福城大道 1 号", None).unwrap(),
                contact: Contact::new("王", "13812345678").unwrap(),
                notes: None,
                scheduled_for: None,
            },
            Utc::now(),
        );
        let created = yixin_contracts::order_created(&order, Vec::new());
        store.create_order(&order, created, None).await.unwrap();
        let region = region_of(at, 4).unwrap();
        let stream = region_orders_stream(&region);
        queue.ensure_group(&stream, "test").await.unwrap();
        queue.ensure_group("orders", "test").await.unwrap();
        let relay = OutboxRelay {
            store: store.clone(),
            queue: queue.clone(),
            config: RelayConfig {
                regions: Some(RegionRouting::new(4)),
                ..RelayConfig::default()
            },
        };
        assert_eq!(relay.relay_once().await.unwrap(), 1);
        let got = queue
            .read(&stream, "test", "c", 10, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        let shared = queue
            .read("orders", "test", "c", 10, Duration::ZERO)
            .await
            .unwrap();
        assert!(shared.is_empty());
        let leases = store.region_leases().await.unwrap();
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0].region, region);
        assert_eq!(leases[0].holder, None);
    }
}
