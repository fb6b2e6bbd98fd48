//! The engine's fleet, kept from the fleet feed every nurse-tracking
//! instance publishes (positions, shifts) and from roster changes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::watch;
use yixin_contracts::{Event, FLEET_CHANNEL, ROSTER_CHANNEL, decode_envelope, pb};
use yixin_dispatch_core::Fix;
use yixin_domain::{GeoPoint, Nurse, NurseId, ShiftState};
use yixin_store::StoreError;

use super::Engine;

/// Nurses the fleet loader is to read, with the fix that named an unknown one.
type NurseLoader = tokio::sync::mpsc::UnboundedSender<(NurseId, Option<Fix>)>;
type NurseLoads = tokio::sync::mpsc::UnboundedReceiver<(NurseId, Option<Fix>)>;

impl Engine {
    pub(super) async fn follow_fleet(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let subscribe = |channel: &'static str| {
            let queue = self.queue.clone();
            async move { queue.subscribe(channel).await }
        };
        let (mut feed, mut roster) = loop {
            match (
                subscribe(FLEET_CHANNEL).await,
                subscribe(ROSTER_CHANNEL).await,
            ) {
                (Ok(f), Ok(r)) => break (f, r),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "fleet feed not followed yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        };
        // Subscribed first, then warmed from the database and Redis, so no
        // fix falls in between.
        if let Err(e) = self.warm_fleet().await {
            tracing::warn!(error = %e, "fleet not warmed from the database");
        }
        // Nurses to (re)read from the roster go to a loader task, which reads
        // them in batches: the feed loop itself never waits on the database,
        // so a burst (thousands of nurses coming online) cannot make it fall
        // behind the feed and skip fixes.
        let (load, pending) = tokio::sync::mpsc::unbounded_channel();
        let loader = tokio::spawn(self.clone().load_nurses(pending));
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
                _ = shutdown.changed() => break,
            }
        }
        loader.abort();
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

    async fn warm_fleet(&self) -> Result<(), StoreError> {
        let nurses = self.store.working_nurses().await?;
        let mut fleet = self.fleet.write().unwrap_or_else(|p| p.into_inner());
        for n in &nurses {
            fleet.register(n);
        }
        tracing::info!(nurses = nurses.len(), "dispatcher fleet warmed");
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
