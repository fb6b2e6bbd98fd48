//! The outbox relay: publishes the events written with each change (the
//! transactional outbox) to the queue, at least once.
//!
//! Every poll takes the oldest unpublished rows, publishes each to the
//! stream named by its topic, then marks them published. A crash between
//! publishing and marking publishes those rows again after the restart
//! (consumers deduplicate by the envelope's `event_id`). Events about an
//! order are also broadcast on `order:{id}` for the live feed.
//! With several instances, each runs a relay; a row may then be published
//! twice, which at-least-once already allows.

use std::{sync::Arc, time::Duration};

use chrono::{TimeDelta, Utc};
use tokio::sync::watch;
use yixin_proto::{Event, decode_envelope};
use yixin_queue::Queue;
use yixin_store::Store;

use crate::live::order_channel;

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
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(200),
            batch: 100,
            idempotency_ttl: Duration::from_secs(48 * 3600),
            purge_interval: Duration::from_secs(3600),
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
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::debug!("outbox relay started");
        let mut last_purge: Option<tokio::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_purge.is_none_or(|t| t.elapsed() >= self.config.purge_interval) {
                self.purge().await;
                last_purge = Some(tokio::time::Instant::now());
            }
            let published = match self.relay_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay: poll failed; retrying");
                    0
                }
            };
            if published as u64 >= self.config.batch {
                continue; // more waiting
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
        tracing::debug!("outbox relay stopped");
    }

    /// Publishes one batch; returns how many rows were published and marked.
    pub async fn relay_once(&self) -> anyhow::Result<usize> {
        let rows = self.store.unpublished_outbox(self.config.batch).await?;
        let mut done = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in &rows {
            if let Err(e) = self.queue.publish(&row.topic, &row.payload).await {
                failure = Some(e);
                break;
            }
            if let Some(order_id) = order_of(&row.payload)
                && let Err(e) = self
                    .queue
                    .broadcast(&order_channel(&order_id), &row.payload)
                    .await
            {
                tracing::debug!(%order_id, error = %e, "live broadcast failed");
            }
            done.push(row.id);
        }
        if !done.is_empty() {
            self.store.mark_published(&done, Utc::now()).await?;
        }
        if let Some(e) = failure {
            return Err(e.into());
        }
        Ok(done.len())
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

/// The order an event is about, if it is about one.
fn order_of(payload: &[u8]) -> Option<String> {
    match decode_envelope(payload).ok()?.event? {
        Event::OrderCreated(e) => Some(e.order_id),
        Event::OrderStatusChanged(e) => Some(e.order_id),
        Event::OfferMade(e) => Some(e.order_id),
        _ => None,
    }
}
