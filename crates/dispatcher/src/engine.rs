//! The dispatch engine: turns waiting orders into offers.
//!
//! - Work arrives on the `orders` stream (`OrderCreated`, through the
//!   consumer group `dispatcher`, so several instances share it) and the
//!   `offers` stream (a decline → the next candidate). At start, and every
//!   30 s, the database is asked which orders still wait, so a restart or a
//!   lost message loses nothing.
//! - Candidates come from this instance's [`Fleet`], kept from the fleet
//!   feed every nurse-tracking instance publishes (positions, shifts) and
//!   roster changes: on shift, fresh fix, skills covering the service, not
//!   among those who declined or let this order's offer lapse; then those
//!   holding an offer or a job (asked of the database) are dropped.
//! - ETA by the configured [`EtaEstimator`], scored by [`crate::rank`]
//!   rules; `greedy` offers each order at once, `batch` solves a min-cost
//!   assignment every window.
//! - An offer is recorded with the order's move to `offered` in one
//!   transaction (one open offer per order and per nurse, enforced by the
//!   database), then pushed to the nurse's phone. Lapsed offers are expired
//!   by whichever instance sees them first (a conditional update) and the
//!   order goes to the next nurse.
//! - No candidate can arrive by `promised_by` → the order is `escalated`
//!   (an alert on the dashboard feed), the search widens, and it is still
//!   offered to the best nurse with the honest ETA.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use yixin_contracts::{
    DISPATCHER_GROUP, Envelope, Event, FLEET_CHANNEL, Message, OFFERS_STREAM, ORDERS_STREAM,
    ROSTER_CHANNEL, decode_envelope, dispatch_channel, offer_answered, offer_closed_to_nurse,
    offer_made, offer_to_nurse, pb, status_changed,
};
use yixin_domain::{
    Catalog, GeoPoint, Nurse, NurseId, Offer, OfferClosedReason, OfferStatus, Order, OrderId,
    OrderStatus, ShiftState,
};
use yixin_nurse_tracking::Fleet;
use yixin_nurse_tracking::fleet::Fix;
use yixin_queue::Queue;
use yixin_store::{NewOutboxMessage, Store, StoreError};

use crate::eta::EtaEstimator;
use crate::matching::{
    CandidateLists, MatchingPolicy, PolicyKind, WaitingOrder, assign_batch, best_candidate,
};
use crate::scoring::Candidate;

/// Orders a greedy dispatcher works on at once.
const GREEDY_IN_FLIGHT: usize = 48;
/// An order without candidates is retried after `retry` × its misses, at
/// most this many.
pub const MAX_RETRY_MISSES: u32 = 6;

/// How the engine works, from configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub policy: MatchingPolicy,
    pub offer_ttl: TimeDelta,
    pub search_radius_m: f64,
    pub escalated_radius_m: f64,
    pub candidates: usize,
    pub retry: Duration,
    /// No free candidate for this long → escalated.
    pub escalate_after: TimeDelta,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            policy: MatchingPolicy::default(),
            offer_ttl: TimeDelta::seconds(30),
            search_radius_m: 8_000.0,
            escalated_radius_m: 25_000.0,
            candidates: 20,
            retry: Duration::from_secs(5),
            escalate_after: TimeDelta::seconds(120),
        }
    }
}

impl EngineConfig {
    /// The engine and its ETA estimator as configured (`dispatch.*`);
    /// `areas` are the service areas per-area ETA overrides may name.
    pub fn from_settings(
        s: &yixin_platform::config::DispatchSettings,
        areas: &[yixin_domain::ServiceArea],
    ) -> Result<(Self, Arc<dyn EtaEstimator>), crate::InvalidSettings> {
        use crate::eta::{
            AreaEtaSettings, EtaSettings, FallbackEta, OsrmEta, OsrmSettings, StraightLineConfig,
            StraightLineEta,
        };
        let kind = match s.policy.as_str() {
            "greedy" => PolicyKind::Greedy,
            "batch" => PolicyKind::Batch,
            other => {
                return Err(crate::InvalidSettings::new(
                    "dispatch.policy",
                    format!("`{other}`: use `greedy` or `batch`"),
                ));
            }
        };
        let policy =
            MatchingPolicy::new(kind, s.batch_window_ms, crate::ScoringWeights::default())?;
        let default = EtaSettings::new(s.detour_factor, s.speed_kmh, s.fixed_overhead_s)?;
        let mut overrides = Vec::new();
        for o in &s.area_eta {
            let area_id = o.area_id.parse().map(yixin_domain::AreaId).map_err(|_| {
                crate::InvalidSettings::new(
                    "dispatch.area_eta.area_id",
                    format!("`{}` is not an area id", o.area_id),
                )
            })?;
            overrides.push(AreaEtaSettings {
                area_id,
                settings: EtaSettings::new(
                    o.detour_factor.unwrap_or(default.detour_factor),
                    o.speed_kmh.unwrap_or(default.speed_kmh),
                    o.fixed_overhead_s.unwrap_or(default.fixed_overhead_s),
                )?,
            });
        }
        let straight = StraightLineEta::from_config(
            &StraightLineConfig {
                default,
                areas: overrides,
            },
            areas,
        )?;
        let eta: Arc<dyn EtaEstimator> = match &s.osrm_url {
            Some(url) => Arc::new(FallbackEta::new(
                OsrmEta::new(OsrmSettings {
                    base_url: url.clone(),
                    profile: s.osrm_profile.clone(),
                    timeout_ms: s.osrm_timeout_ms,
                    ..OsrmSettings::default()
                })?,
                straight,
            )),
            None => Arc::new(straight),
        };
        if s.offer_ttl_secs == 0
            || s.candidates == 0
            || s.search_radius_m.is_nan()
            || s.search_radius_m <= 0.0
            || s.escalated_radius_m < s.search_radius_m
        {
            return Err(crate::InvalidSettings::new(
                "dispatch",
                "offer_ttl_secs and candidates must be positive, search_radius_m > 0 and escalated_radius_m ≥ search_radius_m",
            ));
        }
        Ok((
            Self {
                policy,
                offer_ttl: TimeDelta::seconds(i64::try_from(s.offer_ttl_secs).unwrap_or(3_600)),
                search_radius_m: s.search_radius_m,
                escalated_radius_m: s.escalated_radius_m,
                candidates: s.candidates,
                retry: Duration::from_secs(s.retry_secs.max(1)),
                escalate_after: TimeDelta::seconds(
                    i64::try_from(s.escalate_after_secs).unwrap_or(120),
                ),
            },
            eta,
        ))
    }
}

/// What became of one attempt to dispatch an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Offered, or no longer needs us (taken, cancelled, already offered).
    Done,
    /// No free candidate now: try again later.
    Retry,
}

/// The dispatch engine of one instance.
pub struct Engine {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    pub eta: Arc<dyn EtaEstimator>,
    pub config: EngineConfig,
    /// Candidate index, kept from the fleet feed.
    pub fleet: Arc<RwLock<Fleet>>,
    /// Orders to dispatch and when they are next due.
    waiting: Mutex<BTreeMap<OrderId, Instant>>,
    /// Consecutive tries without a candidate, per waiting order.
    misses: Mutex<HashMap<OrderId, u32>>,
    wake: Notify,
    catalog: RwLock<Option<(Instant, Arc<Catalog>)>>,
    consumer: String,
}

impl Engine {
    pub fn new(
        store: Store,
        queue: Arc<dyn Queue>,
        eta: Arc<dyn EtaEstimator>,
        config: EngineConfig,
        fleet: Arc<RwLock<Fleet>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            queue,
            eta,
            config,
            fleet,
            waiting: Mutex::new(BTreeMap::new()),
            misses: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            catalog: RwLock::new(None),
            consumer: format!("dispatcher-{}", uuid::Uuid::new_v4().simple()),
        })
    }

    /// Starts the engine's tasks; they stop when `shutdown` turns true.
    pub fn spawn(
        self: &Arc<Self>,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().follow_fleet(shutdown.clone())),
            tokio::spawn(self.clone().consume(ORDERS_STREAM, shutdown.clone())),
            tokio::spawn(self.clone().consume(OFFERS_STREAM, shutdown.clone())),
            tokio::spawn(self.clone().dispatch_loop(shutdown.clone())),
            tokio::spawn(self.clone().expiry_loop(shutdown)),
        ]
    }

    fn enqueue(&self, order: OrderId, at: Instant) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let due = waiting.entry(order).or_insert(at);
        if at < *due {
            *due = at;
        }
        drop(waiting);
        self.wake.notify_one();
    }

    fn due(&self, now: Instant) -> Vec<OrderId> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let due: Vec<OrderId> = waiting
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            waiting.remove(id);
        }
        due
    }

    async fn catalog(&self) -> Result<Arc<Catalog>, StoreError> {
        if let Ok(guard) = self.catalog.read()
            && let Some((at, c)) = guard.as_ref()
            && at.elapsed() < Duration::from_secs(30)
        {
            return Ok(c.clone());
        }
        let fresh = Arc::new(self.store.catalog().await?);
        if let Ok(mut guard) = self.catalog.write() {
            *guard = Some((Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    // ----- the fleet feed -----

    async fn follow_fleet(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
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
                self.retry_all_soon();
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

    fn retry_all_soon(&self) {
        let now = Instant::now();
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        for at in waiting.values_mut() {
            *at = (*at).min(now);
        }
        drop(waiting);
        self.wake.notify_one();
    }

    // ----- work streams -----

    async fn consume(self: Arc<Self>, stream: &'static str, mut shutdown: watch::Receiver<bool>) {
        loop {
            match self.queue.ensure_group(stream, DISPATCHER_GROUP).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(stream, error = %e, "consumer group not ready; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
        let mut last_reclaim = Instant::now();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let read = tokio::select! {
                r = self.queue.read(stream, DISPATCHER_GROUP, &self.consumer, 128, Duration::from_millis(500)) => r,
                _ = shutdown.changed() => return,
            };
            let mut deliveries = match read {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(stream, error = %e, "reading work failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Entries a dead instance read and never acknowledged.
            if last_reclaim.elapsed() > Duration::from_secs(10) {
                last_reclaim = Instant::now();
                match self
                    .queue
                    .reclaim(
                        stream,
                        DISPATCHER_GROUP,
                        &self.consumer,
                        Duration::from_secs(30),
                        128,
                    )
                    .await
                {
                    Ok(r) => deliveries.extend(r.deliveries),
                    Err(e) => tracing::warn!(stream, error = %e, "reclaim failed"),
                }
            }
            if deliveries.is_empty() {
                continue;
            }
            let now = Instant::now();
            for d in &deliveries {
                let Some(event) = event_of(&d.payload) else {
                    continue;
                };
                self.note_engagement(&event);
                if let Some(order) = work_in(&event) {
                    self.enqueue(order, now);
                }
            }
            let ids: Vec<_> = deliveries.into_iter().map(|d| d.id).collect();
            // Acknowledged once queued here: the database rediscovery
            // covers an instance dying before it dispatched them.
            if let Err(e) = self.queue.ack(stream, DISPATCHER_GROUP, &ids).await {
                tracing::warn!(stream, error = %e, "ack failed; entries will be redelivered");
            }
        }
    }

    /// Keeps this instance's fleet knowing who holds an offer or a job, from
    /// the work streams, so candidates skip engaged nurses without asking
    /// the database. Only a hint: with several instances each sees part of
    /// the stream, so the database still has the last word (engaged nurses
    /// are dropped after the read, and the offer itself is conditional).
    fn note_engagement(&self, event: &Event) {
        let fleet = || self.fleet.write().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::OfferAnswered(e) => {
                if let Ok(nurse) = e.nurse_id.parse().map(NurseId) {
                    fleet().set_offer(nurse, None);
                }
            }
            Event::OrderStatusChanged(e) => {
                let (Some(nurse), Ok(order), Ok(to)) = (
                    e.nurse_id
                        .as_deref()
                        .and_then(|n| n.parse().ok())
                        .map(NurseId),
                    e.order_id.parse().map(OrderId),
                    e.to.parse::<OrderStatus>(),
                ) else {
                    return;
                };
                let mut fleet = fleet();
                if to.has_nurse() {
                    fleet.set_job(nurse, Some((order, to)));
                } else if fleet
                    .get(&nurse)
                    .and_then(|n| n.job)
                    .is_some_and(|(held, _)| held == order)
                {
                    fleet.set_job(nurse, None);
                }
            }
            _ => {}
        }
    }

    /// Orders the database says still wait (at start and every 30 s).
    async fn rediscover(&self) {
        match self
            .store
            .orders_with_status(
                &[
                    OrderStatus::Pending,
                    OrderStatus::Escalated,
                    OrderStatus::Offered,
                ],
                5_000,
            )
            .await
        {
            Ok(orders) => {
                let now = Instant::now();
                for o in orders {
                    self.enqueue(o.id, now);
                }
            }
            Err(e) => tracing::warn!(error = %e, "waiting orders not read"),
        }
    }

    // ----- dispatching -----

    async fn dispatch_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        self.rediscover().await;
        let mut last_rediscovery = Instant::now();
        let window = self.config.policy.batch_window();
        let in_flight = Arc::new(tokio::sync::Semaphore::new(GREEDY_IN_FLIGHT));
        loop {
            let pause = match self.config.policy.kind {
                PolicyKind::Greedy => Duration::from_millis(250),
                PolicyKind::Batch => window,
            };
            tokio::select! {
                _ = self.wake.notified(), if self.config.policy.kind == PolicyKind::Greedy => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
            if last_rediscovery.elapsed() > Duration::from_secs(30) {
                self.rediscover().await;
                last_rediscovery = Instant::now();
            }
            let due = self.due(Instant::now());
            if due.is_empty() {
                continue;
            }
            match self.config.policy.kind {
                PolicyKind::Greedy => {
                    // Orders in flight at once: each costs a few database
                    // round trips, so one at a time would queue them up under
                    // load. Two that pick the same nurse cannot both win (one
                    // open offer per nurse); the loser tries its next one.
                    for id in due {
                        let Ok(permit) = in_flight.clone().acquire_owned().await else {
                            return;
                        };
                        let engine = self.clone();
                        tokio::spawn(async move {
                            let outcome = engine.dispatch_one(id).await;
                            engine.after(id, outcome);
                            drop(permit);
                        });
                    }
                }
                PolicyKind::Batch => {
                    let outcomes = self.dispatch_batch(&due).await;
                    for (id, outcome) in outcomes {
                        self.after(id, outcome);
                    }
                }
            }
        }
    }

    fn after(&self, id: OrderId, outcome: Result<Outcome, StoreError>) {
        match outcome {
            Ok(Outcome::Done) => {
                self.misses
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            }
            Ok(Outcome::Retry) => {
                // Back off while nobody is free (each try costs database
                // reads), up to 6 × `retry`; a nurse coming on shift wakes
                // every waiting order at once.
                let misses = {
                    let mut m = self.misses.lock().unwrap_or_else(|p| p.into_inner());
                    let n = m.entry(id).or_insert(0);
                    *n = (*n + 1).min(MAX_RETRY_MISSES);
                    *n
                };
                self.enqueue(id, Instant::now() + self.config.retry * misses);
            }
            Err(e) => {
                tracing::warn!(order_id = %id, error = %e, "dispatch failed; will retry");
                self.enqueue(id, Instant::now() + self.config.retry);
            }
        }
    }

    /// The order if it still needs a nurse (no open offer, claimable), and
    /// the nurses it must not go to again.
    async fn needing_nurse(
        &self,
        id: OrderId,
    ) -> Result<Option<(Order, HashSet<NurseId>)>, StoreError> {
        // Two independent reads: one round trip of waiting.
        let (order, offers) =
            tokio::join!(self.store.get_order(id), self.store.offers_for_order(id));
        let (Some(order), offers) = (order?, offers?) else {
            return Ok(None);
        };
        if !matches!(
            order.status,
            OrderStatus::Pending | OrderStatus::Escalated | OrderStatus::Offered
        ) {
            return Ok(None);
        }
        if offers.iter().any(|o| o.status == OfferStatus::Open) {
            return Ok(None); // out already; expiry or an answer brings it back
        }
        let excluded = offers
            .iter()
            .filter(|o| matches!(o.status, OfferStatus::Declined | OfferStatus::Expired))
            .map(|o| o.nurse_id)
            .collect();
        Ok(Some((order, excluded)))
    }

    /// Free candidates for an order, scored inputs ready.
    async fn candidates(
        &self,
        order: &Order,
        excluded: &HashSet<NurseId>,
    ) -> Result<Vec<Candidate>, StoreError> {
        let catalog = self.catalog().await?;
        let required = catalog
            .service(&order.service_code)
            .map(|s| s.required_skills.clone())
            .unwrap_or_default();
        let radius = if order.status == OrderStatus::Escalated {
            self.config.escalated_radius_m
        } else {
            self.config.search_radius_m
        };
        let near = {
            let fleet = self.fleet.read().unwrap_or_else(|p| p.into_inner());
            fleet.candidates(
                order.location,
                self.config.candidates * 2,
                radius,
                &required,
                excluded,
            )
        };
        if near.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<NurseId> = near.iter().map(|n| n.key).collect();
        let since = start_of_day(Utc::now());
        let standing = self.store.nurse_standing(&ids, since).await?;
        let near: Vec<_> = near
            .into_iter()
            .filter(|n| !standing.get(&n.key).is_some_and(|s| s.engaged))
            .take(self.config.candidates)
            .collect();
        let from: Vec<GeoPoint> = near.iter().map(|n| n.point).collect();
        let etas = match self.eta.etas(&from, order.location).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(order_id = %order.id, error = %e, "no ETA for the candidates");
                return Ok(Vec::new());
            }
        };
        Ok(near
            .iter()
            .zip(etas)
            .filter_map(|(n, eta)| {
                let eta = eta?;
                let s = standing.get(&n.key).copied().unwrap_or_default();
                let (answered, accepted) = (s.answered, s.accepted);
                Some(Candidate {
                    nurse_id: n.key,
                    eta_s: eta.seconds,
                    distance_m: eta.distance_m,
                    jobs_today: accepted,
                    offers_answered: answered,
                    offers_accepted: accepted,
                    free_at: None,
                })
            })
            .collect())
    }

    async fn dispatch_one(&self, id: OrderId) -> Result<Outcome, StoreError> {
        let Some((order, mut excluded)) = self.needing_nurse(id).await? else {
            return Ok(Outcome::Done);
        };
        for _ in 0..3 {
            let candidates = self.candidates(&order, &excluded).await?;
            let now = Utc::now();
            let Some(best) =
                best_candidate(&candidates, &excluded, now, &self.config.policy.scoring).cloned()
            else {
                self.no_candidate(&order).await?;
                return Ok(Outcome::Retry);
            };
            match self.offer(&order, &best).await? {
                Outcome::Done => return Ok(Outcome::Done),
                Outcome::Retry => {
                    excluded.insert(best.nurse_id);
                }
            }
        }
        Ok(Outcome::Retry)
    }

    async fn dispatch_batch(&self, ids: &[OrderId]) -> Vec<(OrderId, Result<Outcome, StoreError>)> {
        let mut results = Vec::new();
        let mut orders = Vec::new();
        let mut lists = CandidateLists::new();
        for id in ids {
            match self.needing_nurse(*id).await {
                Ok(Some((order, excluded))) => match self.candidates(&order, &excluded).await {
                    Ok(c) if c.is_empty() => {
                        let escalated = self.no_candidate(&order).await.map(|_| Outcome::Retry);
                        results.push((*id, escalated));
                    }
                    Ok(c) => {
                        lists.insert(order.id, c);
                        orders.push(order);
                    }
                    Err(e) => results.push((*id, Err(e))),
                },
                Ok(None) => results.push((*id, Ok(Outcome::Done))),
                Err(e) => results.push((*id, Err(e))),
            }
        }
        let waiting: Vec<WaitingOrder> = orders.iter().map(WaitingOrder::from).collect();
        let pairs = assign_batch(&waiting, &lists, Utc::now());
        let assigned: HashMap<OrderId, NurseId> = pairs.into_iter().collect();
        for order in &orders {
            let outcome = match assigned.get(&order.id) {
                Some(nurse) => match lists.get(&order.id).iter().find(|c| c.nurse_id == *nurse) {
                    Some(c) => self.offer(order, c).await,
                    None => Ok(Outcome::Retry),
                },
                // Every candidate went to an order the solver served better.
                None => Ok(Outcome::Retry),
            };
            results.push((order.id, outcome));
        }
        results
    }

    /// Offers the order to the candidate; `Retry` if the nurse got engaged
    /// meanwhile (another instance, a coordinator).
    async fn offer(&self, order: &Order, best: &Candidate) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        let arrival = best.arrival_at(now);
        if arrival > order.promised_by {
            self.escalate(order, Some(arrival)).await?;
        }
        let eta_min = best.eta_s.div_ceil(60);
        let offer = Offer::new(
            order.id,
            best.nurse_id,
            now,
            self.config.offer_ttl,
            eta_min,
            best.distance_m,
        );
        let made = offer_made(&offer, order);
        let result = self
            .store
            .make_offer(
                &offer,
                |o, from| Some(status_changed(o, from, now)),
                vec![made.clone()],
            )
            .await;
        let placed = match result {
            Ok(placed) => placed,
            Err(StoreError::Conflict(_)) => {
                // The order got an offer elsewhere, or the nurse did.
                let open = self.store.offers_for_order(order.id).await?;
                return Ok(if open.iter().any(|o| o.status == OfferStatus::Open) {
                    Outcome::Done
                } else {
                    Outcome::Retry
                });
            }
            Err(StoreError::StaleState { .. }) | Err(StoreError::NotFound) => {
                return Ok(Outcome::Done);
            }
            Err(e) => return Err(e),
        };
        self.fleet
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .set_offer(offer.nurse_id, Some((offer.id, offer.expires_at)));
        let push = offer_to_nurse(&offer, &placed);
        if let Err(e) = self.queue.broadcast(&push.channel, &push.payload).await {
            // The phone also finds it on (re)connect and through `GET /v1/nurse/offers`.
            tracing::warn!(offer_id = %offer.id, error = %e, "offer not pushed");
        }
        let _ = self
            .queue
            .broadcast(&dispatch_channel(placed.org_id.as_str()), &made.payload)
            .await;
        let latency = (Utc::now() - order.created_at).num_milliseconds().max(0) as f64 / 1e3;
        metrics::histogram!("dispatch_order_to_offer_seconds").record(latency);
        metrics::counter!("dispatch_offers_total").increment(1);
        tracing::info!(order_id = %order.id, nurse_id = %best.nurse_id, eta_min, "offer made");
        Ok(Outcome::Done)
    }

    /// Nobody free can take the order now: after `escalate_after` of that,
    /// it is escalated (a nurse may come free or on shift before).
    async fn no_candidate(&self, order: &Order) -> Result<(), StoreError> {
        if Utc::now() - order.created_at >= self.config.escalate_after {
            self.escalate(order, None).await?;
        }
        Ok(())
    }

    /// Marks an order no candidate can reach in time: `escalated`, with the
    /// honest ETA if there is one, and an alert on the dashboard feed.
    async fn escalate(
        &self,
        order: &Order,
        arrival: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        if order.status == OrderStatus::Escalated {
            return Ok(());
        }
        let now = Utc::now();
        let mut next = order.clone();
        next.status = OrderStatus::Escalated;
        next.eta = arrival;
        let mut change = yixin_store::OrderTransition::new(
            order.id,
            vec![OrderStatus::Pending, OrderStatus::Offered],
            OrderStatus::Escalated,
            now,
        );
        change.eta = Some(arrival);
        let event = status_changed(&next, order.status, now);
        change.outbox = Some(event.clone());
        match self.store.transition_order(change).await {
            Ok(_) => {
                metrics::counter!("dispatch_escalations_total").increment(1);
                tracing::warn!(order_id = %order.id, eta = ?arrival, promised_by = %order.promised_by, "order escalated: no nurse can arrive in time");
                let _ = self
                    .queue
                    .broadcast(&dispatch_channel(order.org_id.as_str()), &event.payload)
                    .await;
                Ok(())
            }
            Err(StoreError::StaleState { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    // ----- expiry -----

    async fn expiry_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut last_sweep = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
            }
            if last_sweep.elapsed() >= Duration::from_secs(5) {
                // Fixes age into staleness here too (the feed only brings
                // new ones), and lapsed offer hints are forgotten.
                last_sweep = Instant::now();
                self.fleet
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .sweep(Utc::now());
            }
            let lapsed = match self.store.lapsed_offers(Utc::now(), 200).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "lapsed offers not read");
                    continue;
                }
            };
            for offer in lapsed {
                let now = Utc::now();
                let answered = expired_event(&offer, now);
                match self
                    .store
                    .close_offer(offer.id, OfferStatus::Expired, now, None, vec![answered])
                    .await
                {
                    Ok(closed) => {
                        let push = offer_closed_to_nurse(&closed, OfferClosedReason::Expired, now);
                        let _ = self.queue.broadcast(&push.channel, &push.payload).await;
                        self.fleet
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .set_offer(closed.nurse_id, None);
                        self.enqueue(closed.order_id, Instant::now());
                        if let Ok(Some(order)) = self.store.get_order(closed.order_id).await {
                            let event = expired_event(&closed, now);
                            let _ = self
                                .queue
                                .broadcast(&dispatch_channel(order.org_id.as_str()), &event.payload)
                                .await;
                        }
                    }
                    // Answered or expired by someone else meanwhile.
                    Err(StoreError::StaleState { .. }) => {}
                    Err(e) => tracing::warn!(offer_id = %offer.id, error = %e, "offer not expired"),
                }
            }
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

/// Nurses the fleet loader is to read, with the fix that named an unknown one.
type NurseLoader = tokio::sync::mpsc::UnboundedSender<(NurseId, Option<Fix>)>;
type NurseLoads = tokio::sync::mpsc::UnboundedReceiver<(NurseId, Option<Fix>)>;

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

/// `OfferAnswered` for a lapsed offer.
fn expired_event(offer: &Offer, at: DateTime<Utc>) -> NewOutboxMessage {
    offer_answered(
        offer.id,
        Some(offer.order_id),
        offer.nurse_id,
        pb::offer_answered::Answer::Expired,
        None,
        at,
    )
}

/// The event of a work-stream entry, decoded once for every use of it.
fn event_of(payload: &[u8]) -> Option<Event> {
    Envelope::decode(payload).ok()?.event
}

/// The order a work-stream event asks us to (re)dispatch, if any.
fn work_in(event: &Event) -> Option<OrderId> {
    let id = match event {
        Event::OrderCreated(e) => &e.order_id,
        Event::OfferAnswered(e)
            if e.answer == pb::offer_answered::Answer::Declined as i32
                || e.answer == pb::offer_answered::Answer::Expired as i32 =>
        {
            &e.order_id
        }
        // Back to waiting: e.g. a coordinator unassigned it.
        Event::OrderStatusChanged(e) if e.to == OrderStatus::Pending.as_str() => &e.order_id,
        _ => return None,
    };
    id.parse().map(OrderId).ok()
}

/// Local midnight in Chongqing (UTC+8, no daylight saving): "today" for
/// fairness counts.
pub fn start_of_day(now: DateTime<Utc>) -> DateTime<Utc> {
    let offset = TimeDelta::hours(8);
    let local = now + offset;
    let midnight = local.date_naive().and_hms_opt(0, 0, 0).map(|m| m.and_utc());
    midnight.map_or(now, |m| m - offset)
}

/// Whether a nurse record can take work at all (active and on shift).
pub fn can_work(n: &Nurse) -> bool {
    n.active && n.shift == ShiftState::On
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work_of(payload: &[u8]) -> Option<OrderId> {
        event_of(payload).as_ref().and_then(work_in)
    }

    #[test]
    fn the_day_starts_at_midnight_in_chongqing() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T17:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // 01:30 on the 24th in Chongqing: the day began at 16:00 UTC on the 23rd.
        assert_eq!(start_of_day(t).to_rfc3339(), "2026-11-23T16:00:00+00:00");
        let t = DateTime::parse_from_rfc3339("2026-11-23T15:59:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(start_of_day(t).to_rfc3339(), "2026-11-22T16:00:00+00:00");
    }

    #[test]
    fn work_comes_from_created_orders_and_declined_or_lapsed_offers() {
        let order = OrderId::new();
        let wrap = |event| Envelope::wrap("e", 0, event).encode_to_vec();
        let created = wrap(Event::OrderCreated(pb::OrderCreated {
            order_id: order.to_string(),
            ..Default::default()
        }));
        assert_eq!(work_of(&created), Some(order));
        let declined = wrap(Event::OfferAnswered(pb::OfferAnswered {
            order_id: order.to_string(),
            answer: pb::offer_answered::Answer::Declined as i32,
            ..Default::default()
        }));
        assert_eq!(work_of(&declined), Some(order));
        let accepted = wrap(Event::OfferAnswered(pb::OfferAnswered {
            order_id: order.to_string(),
            answer: pb::offer_answered::Answer::Accepted as i32,
            ..Default::default()
        }));
        assert_eq!(work_of(&accepted), None);
        assert_eq!(work_of(b"garbage"), None);
    }
}
