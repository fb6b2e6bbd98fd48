//! Sharded dispatch (`dispatch.regions` set): each instance dispatches only
//! the orders of the regions (coarse H3 cells, [`region_of`]) it holds a
//! lease on, and reads only those regions' work streams
//! ([`region_orders_stream`], where the outbox relay sends `OrderCreated`).
//!
//! - Leases live in the database (`region_leases`: holder, fencing token,
//!   expiry), taken and renewed by conditional updates; the core's
//!   [`LeaseBook`] says what is served now, what to renew (every `ttl / 3`)
//!   and which free regions to take. An instance whose renewals fail stops
//!   serving a region `ttl / 5` before its lease can have run out.
//! - Taking a region (at start, or a dead instance's once its lease ran
//!   out) starts that region's stream consumer, which first takes over every
//!   entry the group's previous reader left unacknowledged, and re-reads the
//!   database's waiting orders (those of the regions served).
//! - What every instance still sees: the shared `orders` and `offers`
//!   streams (status changes, declines, lapses) and the engagement channel.
//!   Work from them is queued by whichever instance hears it and dropped at
//!   dispatch time by any instance that does not serve the order's region
//!   (the gate in `needing_nurse`): the owner hears declines, lapses and
//!   orders back to waiting on the engagement channel, and re-reads the
//!   database every 30 s in case pub/sub lost one.
//! - Off (the default, and the embedded mode): every instance dispatches
//!   every order, as before.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use yixin_contracts::{DISPATCHER_GROUP, is_region, region_of, region_orders_stream};
use yixin_dispatch_core::{InvalidSettings, LeaseBook, LeaseTiming, LeaseView, Region, Wanted};
use yixin_domain::GeoPoint;
use yixin_platform::WorkerHandle;
use yixin_queue::{Backoff, QueueError};

use super::Engine;

/// Sharded dispatch as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSettings {
    /// H3 resolution of a region.
    pub resolution: u8,
    pub wanted: Wanted,
    pub timing: LeaseTiming,
}

/// `dispatch.regions`, `region_resolution` and `lease_ttl_s`; `None` when
/// sharding is off (`regions` empty).
pub fn shard_settings(
    s: &yixin_platform::config::DispatchSettings,
) -> Result<Option<ShardSettings>, InvalidSettings> {
    let regions = s.regions.trim();
    if regions.is_empty() {
        return Ok(None);
    }
    if !yixin_contracts::REGION_RESOLUTIONS.contains(&s.region_resolution) {
        return Err(InvalidSettings::new(
            "dispatch.region_resolution",
            format!("{}: use 0 to 7", s.region_resolution),
        ));
    }
    let ttl = Duration::from_secs(s.lease_ttl_s);
    if ttl < LeaseTiming::MIN_TTL {
        return Err(InvalidSettings::new(
            "dispatch.lease_ttl_s",
            format!("{}: at least 3 seconds", s.lease_ttl_s),
        ));
    }
    let wanted = if regions == "auto" {
        Wanted::Auto
    } else {
        let mut list = BTreeSet::new();
        for r in regions.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            if !is_region(r, s.region_resolution) {
                return Err(InvalidSettings::new(
                    "dispatch.regions",
                    format!(
                        "`{r}` is not an H3 cell of resolution {}: use `auto` or such cells, comma-separated",
                        s.region_resolution
                    ),
                ));
            }
            list.insert(r.to_owned());
        }
        Wanted::List(list)
    };
    Ok(Some(ShardSettings {
        resolution: s.region_resolution,
        wanted,
        timing: LeaseTiming { ttl },
    }))
}

/// This instance's share of the regions.
pub(super) struct Shard {
    settings: ShardSettings,
    book: Mutex<LeaseBook>,
    /// Offers this instance made, per region (for the coordinators' view).
    offers: Mutex<BTreeMap<Region, u64>>,
}

impl Shard {
    pub(super) fn new(settings: ShardSettings) -> Self {
        Self {
            book: Mutex::new(LeaseBook::new(settings.timing, Instant::now())),
            settings,
            offers: Mutex::new(BTreeMap::new()),
        }
    }

    fn book<T>(&self, f: impl FnOnce(&mut LeaseBook) -> T) -> T {
        f(&mut self.book.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn region(&self, at: GeoPoint) -> Option<Region> {
        region_of(at, self.settings.resolution)
    }
}

/// One region as this instance sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionHere {
    pub region: Region,
    /// This instance holds its lease and serves it now.
    pub serving: bool,
    /// Offers this instance made for its orders since it started.
    pub offers: u64,
}

/// Sharded dispatch as this instance runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatus {
    /// This instance's id (the lease holder's name, its stream consumer).
    pub instance: String,
    pub resolution: u8,
    pub lease_ttl: Duration,
    /// `auto`, or the configured regions.
    pub wanted: Wanted,
    /// Regions served now or offered in before.
    pub regions: Vec<RegionHere>,
}

impl Engine {
    /// Whether this instance dispatches orders at `at`: always when
    /// sharding is off, else only in a region it serves now.
    pub(super) fn serves(&self, at: GeoPoint) -> bool {
        let Some(shard) = &self.shard else {
            return true;
        };
        let Some(region) = shard.region(at) else {
            return false;
        };
        shard.book(|b| b.serves(&region, Instant::now()))
    }

    fn serves_region(&self, region: &str) -> bool {
        self.shard
            .as_ref()
            .is_some_and(|s| s.book(|b| b.serves(region, Instant::now())))
    }

    /// Counts an offer made for an order at `at`.
    pub(super) fn offered_at(&self, at: GeoPoint) {
        if let Some(shard) = &self.shard
            && let Some(region) = shard.region(at)
        {
            *shard
                .offers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(region)
                .or_default() += 1;
        }
    }

    /// Regions of `orders` this instance does not serve, for the lease
    /// table (a region with waiting orders must become known).
    pub(super) fn unserved_regions(&self, at: impl Iterator<Item = GeoPoint>) -> BTreeSet<Region> {
        let Some(shard) = &self.shard else {
            return BTreeSet::new();
        };
        let now = Instant::now();
        let serving = shard.book(|b| b.serving(now));
        at.filter_map(|p| shard.region(p))
            .filter(|r| !serving.contains(r))
            .collect()
    }

    /// Sharded dispatch as this instance runs it; `None` when it is off.
    pub fn shard_status(&self) -> Option<ShardStatus> {
        let shard = self.shard.as_ref()?;
        let serving = shard.book(|b| b.serving(Instant::now()));
        let offers = shard
            .offers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let names: BTreeSet<&Region> = serving.iter().chain(offers.keys()).collect();
        Some(ShardStatus {
            instance: self.consumer.clone(),
            resolution: shard.settings.resolution,
            lease_ttl: shard.settings.timing.ttl,
            wanted: shard.settings.wanted.clone(),
            regions: names
                .into_iter()
                .map(|r| RegionHere {
                    region: r.clone(),
                    serving: serving.contains(r),
                    offers: offers.get(r).copied().unwrap_or(0),
                })
                .collect(),
        })
    }

    /// Keeps this instance's leases: renews those held, forgets those it
    /// could not renew in time, takes free regions (a dead instance's
    /// too), runs one stream consumer per region served, and re-reads the
    /// waiting orders after taking a region. A graceful stop releases the
    /// leases so another instance takes them at once.
    pub(super) async fn lease_loop(
        self: Arc<Self>,
        health: WorkerHandle,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let Some(shard) = self.shard.clone() else {
            return;
        };
        let me = self.consumer.clone();
        let timing = shard.settings.timing;
        let ttl = TimeDelta::from_std(timing.ttl).unwrap_or(TimeDelta::seconds(15));
        // The region consumers stop with this loop, however it ends.
        let mut consumers: HashMap<Region, AbortOnDrop> = HashMap::new();
        loop {
            self.renew_leases(&shard, &me, ttl).await;
            let now = Instant::now();
            for region in shard.book(|b| b.expire(now)) {
                metrics::counter!("dispatch_regions_lost_total").increment(1);
                tracing::warn!(
                    region,
                    "lease not renewed in time; region no longer served here"
                );
            }
            consumers.retain(|region, _| shard.book(|b| b.serves(region, now)));
            let taken = match self.take_free_regions(&shard, &me, ttl).await {
                Ok(taken) => {
                    health.up();
                    taken
                }
                Err(e) => {
                    health.down(format!("region leases not read: {e}"));
                    tracing::warn!(error = %e, "region leases not read");
                    Vec::new()
                }
            };
            for region in shard.book(|b| b.serving(Instant::now())) {
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    consumers.entry(region.clone())
                {
                    let engine = self.clone();
                    let stop = shutdown.clone();
                    let task = tokio::spawn(engine.consume_region(region, stop));
                    slot.insert(AbortOnDrop(task.abort_handle()));
                }
            }
            metrics::gauge!("dispatch_regions_held").set(consumers.len() as f64);
            if !taken.is_empty() {
                // The database's waiting orders of the regions taken (a dead
                // holder's orders it had queued but not offered).
                self.rediscover().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(timing.renew_every()) => {}
                _ = shutdown.changed() => {
                    drop(consumers);
                    self.release_leases(&shard, &me).await;
                    return;
                }
            }
        }
    }

    async fn renew_leases(&self, shard: &Shard, me: &str, ttl: TimeDelta) {
        for (region, token) in shard.book(|b| b.held()) {
            let sent = Instant::now();
            match self
                .store
                .renew_region(&region, me, token, Utc::now(), ttl)
                .await
            {
                Ok(true) => {
                    metrics::counter!("dispatch_lease_renewals_total").increment(1);
                    shard.book(|b| b.renewed(&region, sent));
                }
                Ok(false) => {
                    metrics::counter!("dispatch_lease_renewal_failures_total").increment(1);
                    metrics::counter!("dispatch_regions_lost_total").increment(1);
                    tracing::warn!(
                        region,
                        "lease renewal refused (expired or taken); region no longer served here"
                    );
                    shard.book(|b| b.lost(&region));
                }
                Err(e) => {
                    metrics::counter!("dispatch_lease_renewal_failures_total").increment(1);
                    tracing::warn!(region, error = %e, "lease not renewed; serving it until its margin");
                }
            }
        }
    }

    /// Takes the free regions the book asks for; returns those taken.
    async fn take_free_regions(
        &self,
        shard: &Shard,
        me: &str,
        ttl: TimeDelta,
    ) -> Result<Vec<Region>, yixin_store::StoreError> {
        let rows = self.store.region_leases().await?;
        let views: Vec<LeaseView> = rows
            .iter()
            .map(|r| LeaseView {
                region: r.region.clone(),
                holder: r.holder.clone(),
                token: r.token,
                expires_at: r.expires_at,
            })
            .collect();
        let wanted = &shard.settings.wanted;
        let plan = shard.book(|b| b.to_acquire(wanted, me, &views, Utc::now(), Instant::now()));
        let mut taken = Vec::new();
        for region in plan {
            let before = rows.iter().find(|r| r.region == region);
            let sent = Instant::now();
            match self
                .store
                .acquire_region(&region, me, Utc::now(), ttl)
                .await
            {
                Ok(Some(token)) => {
                    shard.book(|b| b.acquired(region.clone(), token, sent));
                    if let Some(previous) = before
                        .and_then(|r| r.holder.as_deref())
                        .filter(|h| *h != me)
                    {
                        metrics::counter!("dispatch_region_takeovers_total").increment(1);
                        let since = before
                            .and_then(|r| r.expires_at)
                            .map(|t| (Utc::now() - t).num_milliseconds());
                        tracing::warn!(region, previous, token, expired_ms_ago = ?since, "took over a region whose lease ran out");
                    } else {
                        tracing::info!(region, token, "region taken");
                    }
                    taken.push(region);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(region, error = %e, "region not taken"),
            }
        }
        Ok(taken)
    }

    async fn release_leases(&self, shard: &Shard, me: &str) {
        for (region, token) in shard.book(|b| b.held()) {
            shard.book(|b| b.lost(&region));
            if let Err(e) = self
                .store
                .release_region(&region, me, token, Utc::now())
                .await
            {
                tracing::warn!(region, error = %e, "lease not released; it runs out by itself");
            }
        }
        metrics::gauge!("dispatch_regions_held").set(0.0);
    }

    /// Reads one region's work stream while this instance serves the
    /// region. Starts by taking over what the group's previous reader (a
    /// dead holder) read and never acknowledged.
    async fn consume_region(self: Arc<Self>, region: Region, mut shutdown: watch::Receiver<bool>) {
        let stream = region_orders_stream(&region);
        let mut backoff = Backoff::reconnect();
        let mut group_ready = false;
        let mut taken_over = false;
        let mut last_reclaim = Instant::now();
        loop {
            if *shutdown.borrow() || !self.serves_region(&region) {
                return;
            }
            if !group_ready {
                match self.queue.ensure_group(&stream, DISPATCHER_GROUP).await {
                    Ok(()) => group_ready = true,
                    Err(e) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(stream, error = %e, retry_in = ?delay, "region stream not ready; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.changed() => return,
                        }
                        continue;
                    }
                }
            }
            // Ours alone now: every entry still pending is a previous
            // holder's (or ours from a cancelled read), whatever its age.
            let min_idle = if taken_over {
                Duration::from_secs(30)
            } else {
                Duration::ZERO
            };
            if !taken_over || last_reclaim.elapsed() > Duration::from_secs(10) {
                last_reclaim = Instant::now();
                match self
                    .queue
                    .reclaim(&stream, DISPATCHER_GROUP, &self.consumer, min_idle, 128)
                    .await
                {
                    Ok(r) if r.deliveries.is_empty() && r.dead_lettered.is_empty() => {
                        taken_over = true;
                    }
                    Ok(r) => {
                        if !taken_over {
                            metrics::counter!("dispatch_region_entries_reclaimed_total")
                                .increment(r.deliveries.len() as u64);
                        }
                        self.take_deliveries(&stream, r.deliveries).await;
                        continue;
                    }
                    Err(QueueError::NoGroup { .. }) => {
                        group_ready = false;
                        continue;
                    }
                    Err(e) => tracing::warn!(stream, error = %e, "reclaim failed"),
                }
            }
            let read = tokio::select! {
                r = self.queue.read(&stream, DISPATCHER_GROUP, &self.consumer, 128, Duration::from_millis(500)) => r,
                _ = shutdown.changed() => return,
            };
            match read {
                Ok(deliveries) => {
                    backoff.reset();
                    self.take_deliveries(&stream, deliveries).await;
                }
                Err(QueueError::NoGroup { .. }) => {
                    group_ready = false;
                    // Entries may have gone with it (Redis lost its data).
                    self.rediscover().await;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(stream, error = %e, retry_in = ?delay, "reading the region stream failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }
}

/// Aborts a region consumer when its lease loop lets it go.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `/readyz`: the regions this instance serves (always ready: an instance
/// holding none is a standby; the database check says when leases cannot
/// be kept).
pub struct RegionsReady(pub Arc<Engine>);

#[async_trait::async_trait]
impl yixin_platform::ReadinessCheck for RegionsReady {
    fn name(&self) -> &'static str {
        "dispatch.regions"
    }

    async fn check(&self) -> Result<(), String> {
        Ok(())
    }

    async fn report(&self) -> Result<String, String> {
        let Some(status) = self.0.shard_status() else {
            return Ok("ok: not sharded (every region)".to_owned());
        };
        let serving: Vec<&str> = status
            .regions
            .iter()
            .filter(|r| r.serving)
            .map(|r| r.region.as_str())
            .collect();
        Ok(if serving.is_empty() {
            "ok: no region held (standby)".to_owned()
        } else {
            format!("ok: {} held ({})", serving.len(), serving.join(", "))
        })
    }
}

/// When a region's lease runs out, as a coordinator reads it.
pub fn lease_live(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_some_and(|t| t > now)
}
