//! Retention: the background worker that prunes what is kept only for a
//! while — outbox rows once published, and the nurses' location trail (the
//! samples taken off a visit sooner; those of a visit, its proof, later).
//! It deletes in bounded batches so a large backlog never holds long locks,
//! and several instances running it at once only share the work.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use yixin_store::{Store, StoreError};

/// How long rows are kept and how the pruner works (`retention.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Published outbox rows older than this go.
    pub outbox: Duration,
    /// Trail samples taken off a visit, older than this, go.
    pub trail: Duration,
    /// Every trail sample older than this goes, visit or not.
    pub visit_trail: Duration,
    /// Pause between runs.
    pub interval: Duration,
    /// Rows per DELETE.
    pub batch: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            outbox: Duration::from_secs(24 * 3600),
            trail: Duration::from_secs(30 * DAY),
            visit_trail: Duration::from_secs(3 * 365 * DAY),
            interval: Duration::from_secs(3600),
            batch: 1000,
        }
    }
}

/// Rows one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: u64,
    pub off_visit_trail: u64,
    pub visit_trail: u64,
}

/// The pruner.
pub struct Pruner {
    pub store: Store,
    pub config: RetentionConfig,
}

impl Pruner {
    /// Prunes every `interval` (the first run at once) until `shutdown`
    /// turns true (or its sender is gone).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.prune_once(Utc::now(), &shutdown).await {
                Ok(p) if p == Pruned::default() => {}
                Ok(p) => tracing::info!(
                    outbox = p.outbox,
                    off_visit_trail = p.off_visit_trail,
                    visit_trail = p.visit_trail,
                    "retention: old rows pruned"
                ),
                Err(e) => {
                    tracing::warn!(error = %format!("{:#}", anyhow::Error::from(e)), "retention: pruning failed; next run retries")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
    }

    /// One run as of `now`: each kind in batches until a batch comes back
    /// short (or shutdown is asked).
    pub async fn prune_once(
        &self,
        now: DateTime<Utc>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Pruned, StoreError> {
        let cut = |keep: Duration| now - TimeDelta::from_std(keep).unwrap_or(TimeDelta::MAX);
        let batch = self.config.batch.max(1);
        let outbox = self
            .drain(shutdown, |s| {
                let before = cut(self.config.outbox);
                async move { s.prune_outbox(before, batch).await }
            })
            .await?;
        let off_visit_trail = self
            .drain(shutdown, |s| {
                let before = cut(self.config.trail);
                async move { s.prune_off_visit_trail(before, batch).await }
            })
            .await?;
        let visit_trail = self
            .drain(shutdown, |s| {
                let before = cut(self.config.visit_trail);
                async move { s.prune_visit_trail(before, batch).await }
            })
            .await?;
        let pruned = Pruned {
            outbox,
            off_visit_trail,
            visit_trail,
        };
        for (kind, n) in [
            ("outbox", pruned.outbox),
            ("off_visit_trail", pruned.off_visit_trail),
            ("visit_trail", pruned.visit_trail),
        ] {
            metrics::counter!("retention_pruned_rows_total", "kind" => kind).increment(n);
        }
        Ok(pruned)
    }

    /// Repeats one batch delete while batches come back full.
    async fn drain<'a, F, Fut>(
        &'a self,
        shutdown: &watch::Receiver<bool>,
        batch: F,
    ) -> Result<u64, StoreError>
    where
        F: Fn(&'a Store) -> Fut,
        Fut: std::future::Future<Output = Result<u64, StoreError>>,
    {
        let mut total = 0;
        loop {
            let n = batch(&self.store).await?;
            total += n;
            if n < self.config.batch.max(1) || *shutdown.borrow() {
                return Ok(total);
            }
            // Let other work at the database between batches.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yixin_domain::{Address, Contact, GeoPoint, NewOrder, Order, OrgId, ResidentId};
    use yixin_store::NewOutboxMessage;

    /// One run deletes published outbox rows past the cut, in batches, and
    /// keeps young and unpublished ones.
    #[tokio::test]
    async fn a_run_prunes_old_published_outbox_rows_in_batches() {
        let store = yixin_store::testing::fresh_sqlite().await;
        for i in 0..5 {
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
                topic: "orders".to_owned(),
                payload: format!("event-{i}").into_bytes(),
            };
            store.create_order(&order, msg, None).await.unwrap();
        }
        let ids: Vec<i64> = store
            .unpublished_outbox(10)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        let now = Utc::now();
        store
            .mark_published(&ids[..3], now - TimeDelta::hours(2))
            .await
            .unwrap();
        store.mark_published(&ids[3..4], now).await.unwrap();
        let pruner = Pruner {
            store: store.clone(),
            config: RetentionConfig {
                outbox: Duration::from_secs(3600),
                batch: 2,
                ..RetentionConfig::default()
            },
        };
        let (_tx, rx) = watch::channel(false);
        let pruned = pruner.prune_once(now, &rx).await.unwrap();
        assert_eq!(pruned.outbox, 3);
        assert_eq!(pruner.prune_once(now, &rx).await.unwrap().outbox, 0);
        // The young published row and the unpublished one stay.
        assert_eq!(store.unpublished_outbox(10).await.unwrap().len(), 1);
    }
}
