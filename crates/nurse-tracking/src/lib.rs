//! nurse-tracking: the nurse's phone connection (WebSocket and its HTTP
//! equivalents), position ingest and presence, offers pushed to phones and
//! the nurse's answers and visit steps.
//!
//! Owns the `/v1/nurse` routes and the in-memory [`Fleet`] (position index
//! and presence) that candidate search reads. Latest positions are shared
//! through a [`PositionBoard`] (Redis in production), written in coalesced
//! batches; the trail goes to a bounded stream and, sampled, to the database.
//! Never shows an address before a nurse has won the job: offers carry a
//! coarse H3 area; `assigned` goes only to the winner of the atomic claim.

use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;
use yixin_platform::Mount;
use yixin_platform::config::{SafetySettings, TrackingSettings};
use yixin_queue::{PositionBoard, Queue};
use yixin_store::Store;

pub mod errors;
/// The fleet is the dispatch core's (dispatch reads it too).
pub use yixin_dispatch_core::fleet;
pub mod frames;
pub mod http;
pub mod notify;
pub mod safety;
pub mod service;
mod writer;
pub mod ws;

pub use errors::TrackingError;
pub use fleet::{Fleet, PresenceRules};
pub use service::{NurseCtx, Tracker};

/// How presence ages, from `tracking.*`.
pub fn presence_rules(s: &TrackingSettings) -> PresenceRules {
    let secs = |v: u64| chrono::TimeDelta::seconds(i64::try_from(v).unwrap_or(i64::MAX / 1_000));
    PresenceRules {
        stale_after: secs(s.stale_after_secs),
        disconnect_grace: secs(s.disconnect_grace_secs),
        trail_interval: secs(s.trail_interval_secs),
    }
}

/// What the service needs, built once by the binary.
#[derive(Clone)]
pub struct NurseTracking {
    pub tracker: Arc<Tracker>,
    /// Names this process in "newest connection wins" announcements.
    pub instance: uuid::Uuid,
    shutdown: watch::Receiver<bool>,
}

impl NurseTracking {
    pub fn new(
        store: Store,
        queue: Arc<dyn Queue>,
        positions: Arc<dyn PositionBoard>,
        settings: TrackingSettings,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let rules = presence_rules(&settings);
        Self {
            tracker: Arc::new(Tracker {
                store,
                queue,
                positions,
                settings,
                safety: SafetySettings::default(),
                fleet: Arc::new(RwLock::new(Fleet::new(rules))),
                pending: Mutex::default(),
            }),
            instance: uuid::Uuid::new_v4(),
            shutdown,
        }
    }

    /// With the safety settings (arrival radius, alarms, lone-worker timer);
    /// the defaults otherwise. Call before the service is shared.
    pub fn with_safety(mut self, safety: SafetySettings) -> Self {
        match Arc::get_mut(&mut self.tracker) {
            Some(tracker) => tracker.safety = safety,
            None => tracing::error!("safety settings given too late; the defaults apply"),
        }
        self
    }

    /// The fleet (position index and presence) candidate search reads.
    pub fn fleet(&self) -> Arc<RwLock<Fleet>> {
        self.tracker.fleet.clone()
    }

    /// The routes and app data of this service.
    pub fn mount(self) -> Mount {
        let data = actix_web::web::Data::new(self);
        Arc::new(move |cfg| {
            cfg.app_data(data.clone());
            cfg.service(ws::nurse_ws);
            cfg.service(http::post_locations);
            cfg.service(http::post_shift);
            cfg.service(http::get_offers);
            cfg.service(http::accept_offer);
            cfg.service(http::decline_offer);
            cfg.service(http::post_progress);
            cfg.service(http::post_record);
            cfg.service(http::get_jobs);
            cfg.service(http::get_jobs_today);
            cfg.service(http::get_me);
            cfg.service(safety::post_sos);
            cfg.service(safety::get_my_alarms);
            cfg.service(safety::post_check_in);
        })
    }

    /// The background writer (positions to Redis, trail to the database,
    /// presence ageing; critical) and the roster follower, supervised by
    /// `workers`. Stop when `shutdown` turns true, the writer after a last
    /// flush.
    pub fn spawn_workers(
        &self,
        workers: &yixin_platform::Workers,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let (tracker, stop) = (self.tracker.clone(), shutdown.clone());
        let writer =
            workers.supervise("nurse-tracking.writer", true, shutdown.clone(), move |_| {
                writer::run(tracker.clone(), stop.clone())
            });
        let (tracker, stop) = (self.tracker.clone(), shutdown.clone());
        let roster = workers.supervise(
            "nurse-tracking.roster",
            false,
            shutdown.clone(),
            move |_| roster_watch(tracker.clone(), stop.clone()),
        );
        let (tracker, stop) = (self.tracker.clone(), shutdown.clone());
        let safety = workers.supervise("nurse-tracking.safety", false, shutdown, move |_| {
            safety::run(tracker.clone(), stop.clone())
        });
        vec![writer, roster, safety]
    }
}

/// Follows roster changes made anywhere: a changed nurse is reloaded (skills
/// count at once for candidate search); a deactivated one loses their socket.
async fn roster_watch(tracker: Arc<Tracker>, mut shutdown: watch::Receiver<bool>) {
    use futures_util::StreamExt;
    let mut backoff = yixin_queue::Backoff::reconnect();
    let mut changes = loop {
        match tracker
            .queue
            .subscribe(yixin_contracts::ROSTER_CHANNEL)
            .await
        {
            Ok(sub) => break sub,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "roster changes not followed yet; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    loop {
        let payload = tokio::select! {
            p = changes.next() => match p {
                Some(p) => p,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        let Some(id) = std::str::from_utf8(&payload)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(yixin_domain::NurseId)
        else {
            continue;
        };
        if tracker.fleet_read().get(&id).is_none() {
            continue; // not held here
        }
        // With credentials: this fleet answers candidate searches too.
        match tracker.store.get_nurse_with_credentials(id).await {
            Ok(Some(nurse)) => {
                tracker.fleet_write().register(&nurse);
                if !nurse.active
                    && let Err(e) = tracker
                        .queue
                        .broadcast(
                            &yixin_contracts::connection_channel(id),
                            ws::DEACTIVATED.as_bytes(),
                        )
                        .await
                {
                    tracing::warn!(nurse_id = %id, error = %e, "deactivated nurse's socket not closed");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(nurse_id = %id, error = %e, "roster change not loaded"),
        }
    }
}
