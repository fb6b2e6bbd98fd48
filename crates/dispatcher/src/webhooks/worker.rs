//! The webhook delivery worker: claims due deliveries (a lease, shared
//! between instances), POSTs each signed body to its endpoint, and records
//! the outcome: a 2xx answer is delivered; anything else (another status,
//! a timeout, a refused connection, an address the SSRF guard refuses) is
//! tried again after the back-off of [`RetryPolicy`], until dead. Attempts
//! to one endpoint are bounded per worker (`per_endpoint_concurrency`); a
//! slow endpoint holds only its own deliveries. Old delivered and dead
//! deliveries are pruned hourly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures_util::{StreamExt, stream};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::watch;
use uuid::Uuid;
use yixin_contracts::webhooks::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, body};
use yixin_domain::webhooks::{AfterFailure, RetryPolicy, check_url, is_public};
use yixin_platform::WorkerHandle;
use yixin_platform::config::WebhookSettings;
use yixin_store::{DueDelivery, Store, StoreError};

/// How long a claim lasts beyond one attempt's timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How often old deliveries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The worker and its HTTP client.
#[derive(Clone)]
pub struct DeliveryWorker {
    store: Store,
    settings: WebhookSettings,
    http: reqwest::Client,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered(u16),
    Failed { status: Option<u16>, error: String },
}

/// Resolves names to public addresses only (unless private ones are
/// allowed): the SSRF guard for names, checked where the connection is
/// made, so a name cannot pass registration and later point inside.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

impl DeliveryWorker {
    pub fn new(store: Store, settings: WebhookSettings) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms))
            // A redirect could lead anywhere (inside too): not followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Yixin-Webhooks/1");
        if !settings.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self {
            store,
            settings,
            http: builder.build()?,
        })
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.settings.max_attempts,
            base: Duration::from_millis(self.settings.backoff_base_ms),
            cap: Duration::from_millis(self.settings.backoff_cap_ms),
        }
    }

    /// Runs until `shutdown` turns true, reporting to its supervisor: down
    /// while the database fails.
    pub async fn run(self, health: Option<WorkerHandle>, mut shutdown: watch::Receiver<bool>) {
        tracing::debug!("webhook worker started");
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                self.prune().await;
                last_prune = Some(tokio::time::Instant::now());
            }
            let pause = match self.deliver_due().await {
                Ok(n) => {
                    if let Some(h) = &health {
                        h.up();
                    }
                    if n as u64 >= self.settings.batch {
                        Duration::ZERO
                    } else {
                        poll
                    }
                }
                Err(e) => {
                    if let Some(h) = &health {
                        h.down(format!("database: {e}"));
                    }
                    tracing::warn!(error = %e, "webhook worker: poll failed");
                    poll.max(Duration::from_secs(1))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
        tracing::debug!("webhook worker stopped");
    }

    /// One poll: claims the due deliveries, tries each, records the
    /// outcomes; returns how many were tried.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let lease =
            TimeDelta::from_std(Duration::from_millis(self.settings.timeout_ms) + LEASE_MARGIN)
                .unwrap_or(TimeDelta::seconds(60));
        let claimed = self
            .store
            .claim_webhook_deliveries(Utc::now(), lease, self.settings.batch)
            .await?;
        let n = claimed.len();
        if let Ok(depth) = self.store.webhook_queue_depth().await {
            metrics::gauge!("yixin_webhook_queue_depth").set(depth as f64);
        }
        let mut by_endpoint: BTreeMap<Uuid, Vec<DueDelivery>> = BTreeMap::new();
        for d in claimed {
            by_endpoint
                .entry(d.delivery.endpoint_id)
                .or_default()
                .push(d);
        }
        let per_endpoint = self.settings.per_endpoint_concurrency.max(1);
        let results = futures_util::future::join_all(by_endpoint.into_values().map(|batch| {
            stream::iter(batch)
                .map(|d| async move { self.attempt_and_record(&d).await })
                .buffer_unordered(per_endpoint)
                .collect::<Vec<_>>()
        }))
        .await;
        for r in results.into_iter().flatten() {
            r?;
        }
        Ok(n)
    }

    async fn attempt_and_record(&self, due: &DueDelivery) -> Result<(), StoreError> {
        let d = &due.delivery;
        let outcome = self.attempt(due).await;
        let attempts = d.attempts.saturating_add(1);
        let now = Utc::now();
        match outcome {
            Attempt::Delivered(code) => {
                metrics::counter!("yixin_webhook_deliveries_total", "outcome" => "delivered")
                    .increment(1);
                self.store
                    .record_webhook_delivered(d.id, attempts, code, now)
                    .await
            }
            Attempt::Failed { status, error } => {
                let retry_at = match self.policy().after_failure(attempts, jitter()) {
                    AfterFailure::RetryIn(delay) => {
                        metrics::counter!("yixin_webhook_deliveries_total", "outcome" => "failed")
                            .increment(1);
                        Some(now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::hours(1)))
                    }
                    AfterFailure::Dead => {
                        metrics::counter!("yixin_webhook_deliveries_total", "outcome" => "dead")
                            .increment(1);
                        tracing::warn!(delivery = %d.id, endpoint = %d.endpoint_id, attempts, %error, "webhook delivery dead");
                        None
                    }
                };
                self.store
                    .record_webhook_failed(d.id, attempts, status, &error, retry_at, now)
                    .await
            }
        }
    }

    /// POSTs one delivery, signed now.
    pub async fn attempt(&self, due: &DueDelivery) -> Attempt {
        let d = &due.delivery;
        // The rules may have tightened since the endpoint was registered.
        if let Err(e) = check_url(
            &due.url,
            self.settings.allow_http,
            self.settings.allow_private,
        ) {
            return Attempt::Failed {
                status: None,
                error: format!("url refused: {e}"),
            };
        }
        let data: serde_json::Value =
            serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null);
        let body = body(
            &d.id.to_string(),
            &d.event_type,
            &d.org_id,
            d.occurred_at,
            &data,
        );
        let t = Utc::now().timestamp();
        // `t=<t>,v1=<hex>`, as every Yixin webhook; the second header repeats the v1 part.
        let signature = yixin_signin::sender::sign(due.secret.as_bytes(), t, body.as_bytes());
        let v1 = signature
            .split_once(',')
            .map_or("", |(_, v1)| v1)
            .to_owned();
        let sent = self
            .http
            .post(&due.url)
            .header("Content-Type", "application/json")
            .header(ID_HEADER, d.id.to_string())
            .header(TIMESTAMP_HEADER, t.to_string())
            .header(SIGNATURE_HEADER, v1)
            .header(yixin_signin::sender::SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Attempt::Delivered(r.status().as_u16()),
            Ok(r) => Attempt::Failed {
                status: Some(r.status().as_u16()),
                error: format!("answered {}", r.status()),
            },
            Err(e) => Attempt::Failed {
                status: None,
                error: error_text(&e),
            },
        }
    }

    async fn prune(&self) {
        let keep = TimeDelta::days(i64::try_from(self.settings.retention_days).unwrap_or(30));
        let before = Utc::now() - keep;
        loop {
            match self.store.prune_webhook_deliveries(before, 1000).await {
                Ok(0) => break,
                Ok(n) => tracing::info!(pruned = n, "old webhook deliveries deleted"),
                Err(e) => {
                    tracing::warn!(error = %e, "pruning webhook deliveries failed");
                    break;
                }
            }
        }
    }
}

/// The error of an attempt in words (the URL left out: it is in the log already).
fn error_text(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A random fraction in `[0, 1)` for the back-off's jitter (48 random bits
/// of a v4 UUID: the OS's randomness, no seed to manage).
fn jitter() -> f64 {
    let bits = Uuid::new_v4().as_u128() >> 80;
    bits as f64 / (1u64 << 48) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_a_fraction() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
