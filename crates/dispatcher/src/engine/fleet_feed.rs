//! The engine's fleet, kept from the fleet feed every nurse-tracking
//! instance publishes (positions, shifts) and from roster changes.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::watch;
use yixin_contracts::{
    ENGAGEMENT_CHANNEL, Event, FLEET_CHANNEL, ROSTER_CHANNEL, decode_envelope, pb,
};
use yixin_dispatch_core::Fix;
use yixin_domain::{GeoPoint, Nurse, NurseId, ShiftState};
use yixin_platform::WorkerHandle;
use yixin_queue::Backoff;
use yixin_store::StoreError;

use super::Engine;

/// Stops the loader task with the feed loop, whichever way it ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Nurses the fleet loader is to read, with the fix that named an unknown one.
type NurseLoader = tokio::sync::mpsc::UnboundedSender<(NurseId, Option<Fix>)>;
type NurseLoads = tokio::sync::mpsc::UnboundedReceiver<(NurseId, Option<Fix>)>;

impl Engine {
    /// Follows the fleet feed, roster changes and the engagement channel for
    /// as long as the engine runs. The subscriptions survive Redis outages
    /// (the queue re-establishes them); while pub/sub is down this worker
    /// reports down (the fleet view goes stale: `/readyz` says so), and
    /// after each recovery it re-reads what it may have missed from the
    /// database: the roster's working nurses, who holds an offer or a job,
    /// and the orders waiting.
    pub(super) async fn follow_fleet(
        self: Arc<Self>,
        health: WorkerHandle,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut status = self.queue.pubsub_status();
        let mut backoff = Backoff::reconnect();
        let subscribe = |channel: &'static str| {
            let queue = self.queue.clone();
            async move { queue.subscribe(channel).await }
        };
        let (mut feed, mut roster, mut engagement) = loop {
            match tokio::try_join!(
                subscribe(FLEET_CHANNEL),
                subscribe(ROSTER_CHANNEL),
                subscribe(ENGAGEMENT_CHANNEL),
            ) {
                Ok(subs) => break subs,
                Err(e) => {
                    health.down(format!("fleet feed not followed: {e}"));
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "fleet feed not followed yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        };
        let mut seen = status.borrow_and_update().generation;
        // Subscribed first, then warmed from the database, so no change
        // falls in between.
        self.catch_up().await;
        health.up();
        // Nurses to (re)read from the roster go to a loader task, which reads
        // them in batches: the feed loop itself never waits on the database,
        // so a burst (thousands of nurses coming online) cannot make it fall
        // behind the feed and skip fixes.
        let (load, pending) = tokio::sync::mpsc::unbounded_channel();
        let loader = tokio::spawn(self.clone().load_nurses(pending));
        let _stop_loader = AbortOnDrop(loader.abort_handle());
        let mut status_alive = true;
        loop {
            tokio::select! {
                m = feed.next() => match m {
                    Some(bytes) => self.on_feed(&bytes, &load),
                    None => break,
                },
                m = roster.next() => match m {
                    Some(bytes) => on_roster(&bytes, &load),
                    None => break,
                },
                m = engagement.next() => match m {
                    Some(bytes) => self.on_engagement(&bytes),
                    None => break,
                },
                changed = status.changed(), if status_alive => {
                    if changed.is_err() {
                        status_alive = false;
                        continue;
                    }
                    let now = *status.borrow_and_update();
                    if !now.connected {
                        health.down("fleet feed lost: pub/sub reconnecting");
                    } else if now.generation != seen {
                        seen = now.generation;
                        tracing::info!("fleet feed back; re-reading the fleet, engagement and waiting orders");
                        self.catch_up().await;
                        health.up();
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    }

    /// Re-reads what pub/sub may have missed: the working nurses (shift
    /// and roster changes), who holds an offer or a job, the waiting orders.
    async fn catch_up(&self) {
        if let Err(e) = self.warm_fleet().await {
            tracing::warn!(error = %e, "fleet not warmed from the database");
        }
        self.resync_engagement().await;
        self.rediscover().await;
    }

    fn on_engagement(&self, bytes: &[u8]) {
        let Some(event) = decode_envelope(bytes).ok().and_then(|e| e.event) else {
            return;
        };
        if self.note_engagement(&event) {
            self.nurse_freed();
        }
        // Sharded: a decline, a lapse or an order back to waiting reaches
        // one instance through the shared streams, maybe not the region's
        // holder; every instance hears it here, and all but the holder drop
        // it at dispatch time.
        if self.shard.is_some()
            && let Some(order) = super::streams::work_in(&event)
        {
            self.decide(|d| d.order_waiting(order, Utc::now()));
            self.wake.notify_one();
        }
    }

    /// Reads nurses from the roster as they are asked for, many at a time,
    /// and brings this instance's fleet up to date (with the fix that made
    /// an unknown nurse known, if any).
    async fn load_nurses(self: Arc<Self>, mut pending: NurseLoads) {
        const BATCH: usize = 500;
        let mut asked: Vec<(NurseId, Option<Fix>)> = Vec::with_capacity(BATCH);
        while pending.recv_many(&mut asked, BATCH).await > 0 {
            let mut ids: Vec<NurseId> = asked.iter().map(|(id, _)| *id).collect();
            ids.sort_unstable();
            ids.dedup();
            let nurses = match self.store.get_nurses(&ids).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, nurses = ids.len(), "nurses not reloaded");
                    asked.clear();
                    continue;
                }
            };
            let now = Utc::now();
            let mut someone_on = false;
            {
                let mut fleet = self.fleet.write().unwrap_or_else(|p| p.into_inner());
                for nurse in &nurses {
                    fleet.register(nurse);
                    if nurse.shift == ShiftState::Off {
                        fleet.set_shift(nurse.id, ShiftState::Off);
                    }
                    someone_on |= can_work(nurse);
                }
                for (id, fix) in asked.drain(..) {
                    if let Some(fix) = fix
                        && fleet.get(&id).is_some()
                    {
                        fleet.apply_fix(id, fix);
                        fleet.seen(id, now);
                    }
                }
            }
            if someone_on {
                // A nurse free to work: waiting orders may have a candidate now.
                self.decide(|d| d.nurse_available(now));
                self.wake.notify_one();
            }
        }
    }

    /// The roster's working nurses into the fleet; those the fleet has on
    /// shift who no longer work (a shift change missed) go off.
    async fn warm_fleet(&self) -> Result<(), StoreError> {
        let nurses = self.store.working_nurses().await?;
        let working: std::collections::HashSet<NurseId> = nurses.iter().map(|n| n.id).collect();
        let mut fleet = self.fleet.write().unwrap_or_else(|p| p.into_inner());
        for n in &nurses {
            fleet.register(n);
        }
        for id in fleet.on_shift() {
            if !working.contains(&id) {
                fleet.set_shift(id, ShiftState::Off);
            }
        }
        drop(fleet);
        tracing::info!(nurses = nurses.len(), "dispatcher fleet warmed");
        if !nurses.is_empty() {
            self.nurse_freed();
        }
        Ok(())
    }

    fn on_feed(&self, bytes: &[u8], load: &NurseLoader) {
        let Some(event) = decode_envelope(bytes).ok().and_then(|e| e.event) else {
            return;
        };
        match event {
            Event::NurseLocations(batch) => {
                let now = Utc::now();
                let mut fleet = self.fleet.write().unwrap_or_else(|p| p.into_inner());
                for f in &batch.fixes {
                    let Some((id, fix)) = fix_of(f) else { continue };
                    if fleet.get(&id).is_none() {
                        let _ = load.send((id, Some(fix)));
                        continue;
                    }
                    fleet.apply_fix(id, fix);
                    // A phone that sends fixes is there.
                    fleet.seen(id, now);
                }
            }
            Event::NurseShiftChanged(e) => {
                if let Ok(id) = e.nurse_id.parse().map(NurseId) {
                    let _ = load.send((id, None));
                }
            }
            _ => {}
        }
    }
}

fn fix_of(f: &pb::NurseLocation) -> Option<(NurseId, Fix)> {
    let id = f.nurse_id.parse().map(NurseId).ok()?;
    let point = GeoPoint::new(f.lat, f.lng).ok()?;
    let at = DateTime::from_timestamp_millis(f.recorded_at_unix_ms)?;
    Some((
        id,
        Fix {
            point,
            accuracy_m: f.accuracy_m,
            at,
        },
    ))
}

/// A roster change names a nurse to read again.
fn on_roster(bytes: &[u8], load: &NurseLoader) {
    if let Some(id) = std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(NurseId)
    {
        let _ = load.send((id, None));
    }
}

/// Whether a nurse record can take work at all (active and on shift).
pub fn can_work(n: &Nurse) -> bool {
    n.active && n.shift == ShiftState::On
}
