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
