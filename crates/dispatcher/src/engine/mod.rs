//! The dispatch engine: turns waiting orders into offers.
//!
//! - Work arrives on the `orders` stream (`OrderCreated`, through the
//!   consumer group `dispatcher`, so several instances share it) and the
//!   `offers` stream (a decline → the next candidate). At start, and every
//!   30 s, the database is asked which orders still wait, so a restart or a
//!   lost message loses nothing.
//! - Candidates come from this instance's [`Fleet`], kept from the fleet
//!   feed every nurse-tracking instance publishes (positions, shifts) and
//!   roster changes ([`fleet_feed`]): the core's candidate rule (on shift,
//!   fresh fix, present, no job or offer, skills covering the service, and
//!   credentials passing the gate: verified, in date, years, title,
//!   certificates — read from the fleet, never the database), not
//!   among those who declined or let this order's offer lapse; then those
//!   holding an offer or a job (asked of the database) are dropped.
//! - ETA by the configured [`EtaEstimator`]. What to do then is decided by
//!   the core's state machine ([`Decisions`]: retry back-off, wake-ups,
//!   search radius, greedy or batch, escalation, offer deadlines, expiry);
//!   this module is its I/O shell: it feeds it what it read and carries out
//!   its commands.
//! - The offer records which credentials qualified the nurse
//!   (`qualified_by`).
//! - An offer is recorded with the order's move to `offered` in one
//!   transaction (one open offer per order and per nurse, enforced by the
//!   database), then pushed to the nurse's phone. Lapsed offers are expired
//!   by whichever instance sees them first (a conditional update) and the
//!   order goes to the next nurse ([`expiry`]).
//! - No candidate can arrive by `promised_by` → the order is `escalated`
//!   (an alert on the dashboard feed), the search widens, and it is still
//!   offered to the best nurse with the honest ETA.
//! - Sharded dispatch (`dispatch.regions`): an instance dispatches only the
//!   regions it holds a lease on ([`regions`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use tokio::sync::{Notify, watch};
use yixin_contracts::{
    OFFERS_STREAM, ORDERS_STREAM, OfferDetails, dispatch_channel, offer_details, offer_made,
    offer_to_nurse, status_changed,
};
use yixin_dispatch_core::{
    ChainRules, Command, Decisions, Fleet, Need, OrderFacts, qualification, visit_day, visit_time,
};
use yixin_domain::{
    Catalog, GeoPoint, NurseId, Offer, OfferStatus, Order, OrderId, OrderStatus, OrgId,
    OrgTimeZone, ServiceArea,
};
use yixin_platform::{WorkerHandle, Workers};
use yixin_queue::Queue;
use yixin_store::{Store, StoreError};

use crate::eta::EtaEstimator;
use crate::matching::PolicyKind;
use crate::scoring::Candidate;

pub mod chain;
mod expiry;
mod fleet_feed;
mod pushes;
pub mod regions;
mod settings;
mod streams;

pub use fleet_feed::can_work;
pub use settings::{chain_rules, engine_config};
pub use yixin_dispatch_core::{EngineConfig, MAX_RETRY_MISSES};

/// One engine task, as its supervisor starts it.
type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Orders a greedy dispatcher works on at once.
const GREEDY_IN_FLIGHT: usize = 48;

/// `batch` and `risk`: new work (an order, a nurse come free) is solved
/// after this gather, not at the end of the whole window; the window
/// (`dispatch.batch_window_ms`) bounds the wait of an order retried
/// without such news. In the simulator a 100 ms window matches no worse
/// than 2 s at the district's demand (`WINDOW_MS=100 ablate`).
const BATCH_GATHER: Duration = Duration::from_millis(100);

/// A due order read for the batch: its facts for the solver and the order,
/// or `None` when it no longer needs a nurse.
type BatchRead = Result<Option<(OrderFacts, Order)>, StoreError>;

/// What became of an offer the state machine asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    /// Offered, or the order no longer needs us (taken, cancelled, already
    /// offered elsewhere).
    Done,
    /// The nurse got engaged meanwhile (another instance, a coordinator).
    NurseTaken,
}

/// An organisation's service areas and when they were read.
type CachedAreas = (Instant, Arc<Vec<ServiceArea>>);

/// The dispatch engine of one instance: the I/O shell around the core's
/// [`Decisions`].
pub struct Engine {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    pub eta: Arc<dyn EtaEstimator>,
    pub config: EngineConfig,
    /// Candidate index, kept from the fleet feed.
    pub fleet: Arc<RwLock<Fleet>>,
    /// Waiting orders, their due times and misses, and every decision.
    decisions: Mutex<Decisions>,
    wake: Notify,
    catalog: RwLock<Option<(Instant, Arc<Catalog>)>>,
    /// Each organisation's service areas (an offer names the one it is in).
    areas: RwLock<HashMap<OrgId, CachedAreas>>,
    consumer: String,
    /// Sharded dispatch: the regions this instance holds; `None`: all.
    shard: Option<Arc<regions::Shard>>,
    /// Chained offers (`dispatch.chain_horizon_s`, see [`chain`]).
    pub chain: ChainRules,
    /// Nurses on a visit, kept by the chain loop.
    chain_book: RwLock<HashMap<NurseId, chain::BusyNurse>>,
    /// Offers whose push to the phone failed, pushed again by the expiry loop.
    unpushed: pushes::UnpushedOffers,
}

impl Engine {
    pub fn new(
        store: Store,
        queue: Arc<dyn Queue>,
        eta: Arc<dyn EtaEstimator>,
        config: EngineConfig,
        fleet: Arc<RwLock<Fleet>>,
    ) -> Arc<Self> {
        Self::configured(
            store,
            queue,
            eta,
            config,
            fleet,
            None,
            ChainRules::default(),
        )
    }

    /// As [`Engine::new`], with the chaining rules as configured, and
    /// dispatching only the regions it holds a lease on when `shard` is set.
    pub fn configured(
        store: Store,
        queue: Arc<dyn Queue>,
        eta: Arc<dyn EtaEstimator>,
        config: EngineConfig,
        fleet: Arc<RwLock<Fleet>>,
        shard: Option<regions::ShardSettings>,
        chain: ChainRules,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            queue,
            eta,
            decisions: Mutex::new(Decisions::new(config.clone())),
            config,
            fleet,
            wake: Notify::new(),
            catalog: RwLock::new(None),
            areas: RwLock::new(HashMap::new()),
            consumer: format!("dispatcher-{}", uuid::Uuid::new_v4().simple()),
            shard: shard.map(|s| Arc::new(regions::Shard::new(s))),
            chain,
            chain_book: RwLock::new(HashMap::new()),
            unpushed: pushes::UnpushedOffers::default(),
        })
    }

    /// Starts the engine's tasks, each supervised by `workers` (restarted
    /// if it ends or panics; all critical for `/readyz`: the fleet view,
    /// both work streams, the dispatch and expiry loops); they stop when
    /// `shutdown` turns true.
    pub fn spawn(
        self: &Arc<Self>,
        workers: &Workers,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let stop = shutdown.clone();
        let task =
            |name: &'static str,
             run: fn(Arc<Self>, WorkerHandle, watch::Receiver<bool>) -> BoxFuture| {
                let (engine, stop) = (self.clone(), stop.clone());
                workers.supervise(name, true, shutdown.clone(), move |health| {
                    run(engine.clone(), health, stop.clone())
                })
            };
        let mut tasks = vec![
            task("dispatcher.fleet", |e, h, s| Box::pin(e.follow_fleet(h, s))),
            task("dispatcher.orders", |e, h, s| {
                Box::pin(e.consume(ORDERS_STREAM, h, s))
            }),
            task("dispatcher.offers", |e, h, s| {
                Box::pin(e.consume(OFFERS_STREAM, h, s))
            }),
            task("dispatcher.dispatch", |e, _, s| {
                Box::pin(e.dispatch_loop(s))
            }),
            task("dispatcher.expiry", |e, _, s| Box::pin(e.expiry_loop(s))),
            task("dispatcher.chain", |e, _, s| Box::pin(e.chain_loop(s))),
        ];
        if self.shard.is_some() {
            tasks.push(task("dispatcher.regions", |e, h, s| {
                Box::pin(e.lease_loop(h, s))
            }));
        }
        tasks
    }

    /// One step of the state machine (never held across an await).
    fn decide<T>(&self, step: impl FnOnce(&mut Decisions) -> T) -> T {
        step(&mut self.decisions.lock().unwrap_or_else(|p| p.into_inner()))
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

    /// The organisation's service areas, read at most every 30 seconds.
    pub async fn areas(&self, org: &OrgId) -> Result<Arc<Vec<ServiceArea>>, StoreError> {
        if let Ok(guard) = self.areas.read()
            && let Some((at, a)) = guard.get(org)
            && at.elapsed() < Duration::from_secs(30)
        {
            return Ok(a.clone());
        }
        let fresh = Arc::new(self.store.service_areas(org).await?);
        if let Ok(mut guard) = self.areas.write() {
            guard.insert(org.clone(), (Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    /// The service in words and the area's name, for the nurse's phone.
    async fn offer_details(&self, order: &Order) -> Result<OfferDetails, StoreError> {
        let catalog = self.catalog().await?;
        let areas = self.areas(&order.org_id).await?;
        Ok(offer_details(&catalog, &areas, order))
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
                PolicyKind::Batch | PolicyKind::Risk => window,
            };
            tokio::select! {
                _ = self.wake.notified() => {
                    // The windowed policies gather what else comes with this
                    // work (a burst of orders is matched together) rather
                    // than waiting out the whole window.
                    if self.config.policy.kind != PolicyKind::Greedy {
                        tokio::time::sleep(window.min(BATCH_GATHER)).await;
                    }
                }
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
            if last_rediscovery.elapsed() > Duration::from_secs(30) {
                self.rediscover().await;
                last_rediscovery = Instant::now();
            }
            let due = self.decide(|d| d.take_due(Utc::now()));
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
                            if let Err(e) = engine.dispatch_one(id).await {
                                engine.failed(id, &e);
                            }
                            drop(permit);
                        });
                    }
                }
                PolicyKind::Batch | PolicyKind::Risk => self.dispatch_batch(&due).await,
            }
        }
    }

    /// Dispatching the order failed; the state machine tries it again soon.
    fn failed(&self, id: OrderId, e: &StoreError) {
        tracing::warn!(order_id = %id, error = %e, "dispatch failed; will retry");
        self.decide(|d| d.failed(id, Utc::now()));
    }

    /// Greedy: the state machine picks the best candidate; a nurse engaged
    /// meanwhile is left out and it picks again (three tries).
    async fn dispatch_one(&self, id: OrderId) -> Result<(), StoreError> {
        let Some((order, mut excluded)) = self.needing_nurse(id).await? else {
            self.decide(|d| d.done(id));
            return Ok(());
        };
        for _ in 0..3 {
            let candidates = self.candidates(&order, &excluded).await?;
            let facts = OrderFacts::of(&order, excluded.clone(), candidates);
            let now = Utc::now();
            let commands = self.decide(|d| d.greedy(&facts, now));
            let mut taken = None;
            for command in commands {
                match command {
                    Command::Escalate { eta, .. } => self.escalate(&order, eta).await?,
                    Command::Offer { .. } => match self.offer(&order, &command, now).await? {
                        Placed::Done => {
                            self.decide(|d| d.done(id));
                            return Ok(());
                        }
                        Placed::NurseTaken => taken = offered_nurse(&command),
                    },
                    // Nobody free: the state machine holds the retry.
                    Command::RetryAt { .. } | Command::Expire { .. } => return Ok(()),
                }
            }
            let Some(nurse) = taken else {
                return Ok(());
            };
            excluded.insert(nurse);
        }
        self.decide(|d| d.retry(id, Utc::now()));
        Ok(())
    }

    /// Batch: every due order's facts to the state machine at once, then its
    /// offers and escalations carried out. Each order costs a few database
    /// round trips to read and to offer, so both run [`GREEDY_IN_FLIGHT`]
    /// orders at a time, as greedy does: one at a time, a batch of 20
    /// orders (200 orders/s, 100 ms gather) took longer than the next
    /// gather and the queue grew. The solver gives each nurse to one order
    /// at most, so the offers of one batch never compete for a nurse.
    async fn dispatch_batch(&self, ids: &[OrderId]) {
        // `buffered` keeps the orders' sequence, so the solver sees the
        // same facts in the same order whatever the timing.
        let reads: Vec<(OrderId, BatchRead)> = stream::iter(ids.iter().copied())
            .map(|id| async move {
                let read = match self.needing_nurse(id).await {
                    Ok(Some((order, excluded))) => self
                        .candidates(&order, &excluded)
                        .await
                        .map(|c| Some((OrderFacts::of(&order, excluded, c), order))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                };
                (id, read)
            })
            .buffered(GREEDY_IN_FLIGHT)
            .collect()
            .await;
        let mut facts = Vec::new();
        let mut orders: HashMap<OrderId, Order> = HashMap::new();
        for (id, read) in reads {
            match read {
                Ok(Some((f, order))) => {
                    facts.push(f);
                    orders.insert(order.id, order);
                }
                Ok(None) => self.decide(|d| d.done(id)),
                Err(e) => self.failed(id, &e),
            }
        }
        let now = Utc::now();
        let commands = match self.config.policy.kind {
            PolicyKind::Risk => self.decide(|d| d.batch_risk(&facts, now, &self.config.risk)),
            _ => self.decide(|d| d.batch(&facts, now)),
        };
        // Each order's commands in their sequence (an escalation before its
        // offer); orders side by side.
        let mut work: Vec<(Order, Vec<Command>)> = Vec::new();
        let mut slot: HashMap<OrderId, usize> = HashMap::new();
        for command in commands {
            let id = match &command {
                Command::Escalate { order, .. } | Command::Offer { order, .. } => *order,
                Command::RetryAt { .. } | Command::Expire { .. } => continue,
            };
            if let Some(&i) = slot.get(&id) {
                work[i].1.push(command);
            } else if let Some(order) = orders.remove(&id) {
                slot.insert(id, work.len());
                work.push((order, vec![command]));
            }
        }
        let lost: Vec<bool> = stream::iter(work)
            .map(|(order, commands)| async move { self.carry_out(&order, commands, now).await })
            .buffer_unordered(GREEDY_IN_FLIGHT)
            .collect()
            .await;
        if lost.contains(&true) {
            self.wake.notify_one();
        }
    }

    /// One order's commands from a batch, in sequence; an order whose
    /// escalation failed is not offered this round. True when the nurse
    /// chosen was engaged meanwhile (the order waits to be solved again).
    async fn carry_out(&self, order: &Order, commands: Vec<Command>, now: DateTime<Utc>) -> bool {
        let id = order.id;
        for command in commands {
            let result = match &command {
                Command::Escalate { eta, .. } => self.escalate(order, *eta).await,
                _ => match self.offer(order, &command, now).await {
                    Ok(Placed::Done) => {
                        self.decide(|d| d.done(id));
                        Ok(())
                    }
                    Ok(Placed::NurseTaken) => {
                        // Another instance (or a coordinator) engaged her
                        // since the read: solve again after the gather, as
                        // greedy tries its next candidate at once, rather
                        // than after a retry's back-off.
                        self.decide(|d| d.order_waiting(id, Utc::now()));
                        return true;
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                self.failed(id, &e);
                return false;
            }
        }
        false
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
        // Sharded: another instance's region is its holder's to dispatch.
        if !self.serves(order.location) {
            return Ok(None);
        }
        Ok(
            Decisions::needing_nurse(order.status, &offers).map(|mut excluded| {
                // A nurse who won it and lost it again (a next job taken
                // back for an overrun) is not offered it again.
                excluded.extend(chain::lost_after_winning(&order, &offers));
                (order, excluded)
            }),
        )
    }

    /// What the order's service asks of a nurse (skills; credentials on the
    /// visit's day); a service that left the catalogue asks no skill and
    /// the default requirements.
    async fn need(&self, order: &Order) -> Result<Need, StoreError> {
        let catalog = self.catalog().await?;
        let at = visit_time(order.scheduled_for, Utc::now());
        Ok(match catalog.service(&order.service_code) {
            Some(s) => Need::of(s, at),
            None => Need {
                skills: Vec::new(),
                requirements: Default::default(),
                day: visit_day(at),
            },
        })
    }

    /// The credentials that qualify `nurse` for the order, as the fleet has
    /// them: what the offer records.
    async fn qualified_by(
        &self,
        order: &Order,
        nurse: NurseId,
    ) -> Result<Option<yixin_domain::credentials::Qualification>, StoreError> {
        let need = self.need(order).await?;
        let fleet = self.fleet.read().unwrap_or_else(|p| p.into_inner());
        Ok(fleet
            .get(&nurse)
            .and_then(|n| qualification(n.credentials.as_ref(), &need.requirements, need.day).ok()))
    }

    /// Free candidates for an order, scored inputs ready.
    async fn candidates(
        &self,
        order: &Order,
        excluded: &HashSet<NurseId>,
    ) -> Result<Vec<Candidate>, StoreError> {
        let need = self.need(order).await?;
        let search = self.decide(|d| d.search(order.status));
        let near = self.nearby(order.location, &need, search, excluded);
        if near.is_empty() {
            // Nobody free: perhaps a nurse finishing a visit soon.
            return Ok(self
                .chain_candidates(
                    order.location,
                    &need,
                    search.radius_m,
                    search.keep,
                    excluded,
                    &[],
                )
                .await);
        }
        let ids: Vec<NurseId> = near.iter().map(|n| n.key).collect();
        let since = OrgTimeZone::default().start_of_day(Utc::now());
        let (standing, preferred) = tokio::join!(
            self.store.nurse_standing(&ids, since),
            self.preferred_nurse(order)
        );
        let (standing, preferred) = (standing?, preferred?);
        let near: Vec<_> = near
            .into_iter()
            .filter(|n| !standing.get(&n.key).is_some_and(|s| s.engaged))
            .take(search.keep)
            .collect();
        let mut candidates = self.with_etas(&near, order.location, &standing).await;
        // Nurses finishing a visit soon, counted from its end.
        let chained = self
            .chain_candidates(
                order.location,
                &need,
                search.radius_m,
                search.keep,
                excluded,
                &candidates,
            )
            .await;
        candidates.extend(chained);
        for c in &mut candidates {
            c.preferred = Some(c.nurse_id) == preferred;
        }
        Ok(candidates)
    }

    /// The patient's nurse from before (the scoring's continuity term): the
    /// nurse reserved for a booking, else the nurse of the resident's latest
    /// completed visit.
    async fn preferred_nurse(&self, order: &Order) -> Result<Option<NurseId>, StoreError> {
        if order.scheduled_for.is_some()
            && let Some(nurse) = self.store.booked_nurse(order.id).await?
        {
            return Ok(Some(nurse));
        }
        self.store
            .last_nurse_of_resident(&order.org_id, order.resident_id.as_str())
            .await
    }

    /// The fleet's free candidates around `at` (the core's candidate rule).
    fn nearby(
        &self,
        at: GeoPoint,
        need: &Need,
        search: yixin_dispatch_core::Search,
        excluded: &HashSet<NurseId>,
    ) -> Vec<yixin_geo::Neighbour<NurseId>> {
        let fleet = self.fleet.read().unwrap_or_else(|p| p.into_inner());
        fleet.candidates(at, search.nearest, search.radius_m, need, excluded)
    }

    /// Candidates with their ETAs to `to` (the configured estimator) and
    /// their standing of today (absent: none known).
    async fn with_etas(
        &self,
        near: &[yixin_geo::Neighbour<NurseId>],
        to: GeoPoint,
        standing: &HashMap<NurseId, yixin_store::NurseStanding>,
    ) -> Vec<Candidate> {
        if near.is_empty() {
            return Vec::new();
        }
        let from: Vec<GeoPoint> = near.iter().map(|n| n.point).collect();
        let etas = match self.eta.etas(&from, to).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "no ETA for the candidates");
                return Vec::new();
            }
        };
        near.iter()
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
                    preferred: false,
                    visit_s: None,
                })
            })
            .collect()
    }

    /// A quote for `service_code` at `at`: the candidates the engine would
    /// consider now (normal and escalated radius, its ETA), judged by the
    /// core's [`quote`](yixin_dispatch_core::quote). Nothing is written, and
    /// the database is asked only for the (cached) catalogue: the
    /// acceptance history that breaks ties within the ETA band is left out.
    /// `None` for an unknown service.
    pub async fn quote(
        &self,
        service_code: &str,
        at: GeoPoint,
        scheduled_for: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<(u32, yixin_dispatch_core::Quote)>, StoreError> {
        let catalog = self.catalog().await?;
        let Some(service) = catalog.service(service_code).filter(|s| s.active) else {
            return Ok(None);
        };
        // The same credentials gate as an offer: on the visit's day.
        let need = Need::of(service, visit_time(scheduled_for, now));
        let price = service.price_cents;
        let none = HashSet::new();
        let (normal, escalated) = self.decide(|d| {
            (
                d.search(OrderStatus::Pending),
                d.search(OrderStatus::Escalated),
            )
        });
        let standing = HashMap::new();
        let near = self.nearby(at, &need, normal, &none);
        let near: Vec<_> = near.into_iter().take(normal.keep).collect();
        let near = self.with_etas(&near, at, &standing).await;
        let wide = if near.is_empty() {
            let wide = self.nearby(at, &need, escalated, &none);
            let wide: Vec<_> = wide.into_iter().take(escalated.keep).collect();
            self.with_etas(&wide, at, &standing).await
        } else {
            Vec::new()
        };
        let quote = yixin_dispatch_core::quote(&self.config, &near, &wide, scheduled_for, now);
        Ok(Some((price, quote)))
    }

    /// Carries out an `Offer` command: recorded with the order's move to
    /// `offered` in one statement, then pushed to the phone.
    async fn offer(
        &self,
        order: &Order,
        command: &Command,
        now: DateTime<Utc>,
    ) -> Result<Placed, StoreError> {
        let &Command::Offer {
            nurse,
            eta_min,
            distance_m,
            expires_at,
            arrival,
            ..
        } = command
        else {
            return Ok(Placed::Done);
        };
        let mut offer = Offer::new(
            order.id,
            nurse,
            now,
            self.config.offer_ttl,
            eta_min,
            distance_m,
        );
        offer.expires_at = expires_at;
        offer.free_at = self.chained_free_at(nurse, arrival, eta_min, now);
        offer.qualified_by = self.qualified_by(order, nurse).await?;
        let details = self.offer_details(order).await?;
        let made = offer_made(&offer, order, &details);
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
                    Placed::Done
                } else {
                    Placed::NurseTaken
                });
            }
            Err(StoreError::StaleState { .. }) | Err(StoreError::NotFound) => {
                return Ok(Placed::Done);
            }
            Err(e) => return Err(e),
        };
        self.fleet
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .set_offer(offer.nurse_id, Some((offer.id, offer.expires_at)));
        let push = offer_to_nurse(&offer, &placed, &details);
        let pushed = self
            .queue
            .broadcast_counted(&push.channel, &push.payload)
            .await;
        match pushed {
            Ok(0) => {
                // No nurse-tracking instance holds her socket now (or has not
                // resubscribed since Redis came back). Her phone gets it on
                // (re)connect, nurse-tracking re-pushes live offers after a
                // recovery, and the offer lapses at its deadline otherwise.
                metrics::counter!("dispatch_offers_unheard_total").increment(1);
                tracing::warn!(offer_id = %offer.id, nurse_id = %nurse, expires_at = %offer.expires_at, "offer reached no phone now; it waits for her phone to (re)connect or lapses");
            }
            Ok(_) => {}
            Err(e) => {
                // The phone also finds it on (re)connect and through `GET
                // /v1/nurse/offers`; a connected phone gets it when a push
                // goes through again.
                tracing::warn!(offer_id = %offer.id, order_id = %order.id, error = %e, "offer not pushed; pushing again");
                self.unpushed.add(pushes::Unpushed {
                    offer: offer.id,
                    order: order.id,
                    expires_at: offer.expires_at,
                    push,
                });
            }
        }
        let _ = self
            .queue
            .broadcast(&dispatch_channel(placed.org_id.as_str()), &made.payload)
            .await;
        let latency = (Utc::now() - order.created_at).num_milliseconds().max(0) as f64 / 1e3;
        metrics::histogram!("dispatch_order_to_offer_seconds").record(latency);
        metrics::counter!("dispatch_offers_total").increment(1);
        self.offered_at(order.location);
        tracing::info!(order_id = %order.id, nurse_id = %nurse, eta_min, "offer made");
        Ok(Placed::Done)
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
}

/// The nurse an `Offer` command names.
fn offered_nurse(command: &Command) -> Option<NurseId> {
    match command {
        Command::Offer { nurse, .. } => Some(*nurse),
        _ => None,
    }
}
