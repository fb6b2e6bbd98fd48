//! order-intake: the resident's side of the contract (catalogue, placing,
//! following, cancelling and rating orders).
//!
//! Owns the `/v1/catalog` and `/v1/orders` routes and the outbox relay.
//! Writes orders only through the store (order, timeline and outbox in one
//! transaction); never talks to nurses or decides dispatch.

mod booking;
pub mod clinical;
pub mod errors;
pub mod household;
// The limiter moved to the platform (sign-in uses it too); the old path stays.
pub use yixin_platform::limiter;
pub mod live;
pub mod orders;
pub mod relay;
pub mod retention;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use actix_web::{get, web};
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;
use yixin_auth::Caller;
use yixin_domain::{Catalog, OrderId, OrgId, ServiceArea};
use yixin_platform::{ApiError, ErrorBody, Mount};
use yixin_queue::Queue;
use yixin_store::{Store, StoreError};

use crate::{
    limiter::RateLimiter,
    relay::{OutboxRelay, RelayConfig},
};

/// Tunables of the service.
#[derive(Debug, Clone)]
pub struct OrderIntakeConfig {
    /// Orders one resident may attempt per minute (per instance).
    pub orders_per_minute: u32,
    pub relay: RelayConfig,
    /// What the pruner keeps, and how long (`retention.*`).
    pub retention: retention::RetentionConfig,
}

impl Default for OrderIntakeConfig {
    fn default() -> Self {
        Self {
            orders_per_minute: 10,
            relay: RelayConfig::default(),
            retention: retention::RetentionConfig::default(),
        }
    }
}

/// What the service needs, built once by the binary.
#[derive(Clone)]
pub struct OrderIntake {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    pub config: OrderIntakeConfig,
    limiter: Arc<RateLimiter>,
    reference: Arc<ReferenceCache>,
    shutdown: watch::Receiver<bool>,
    /// The dispatcher's ETA model: the en-route nurse's arrival is
    /// recomputed from each new fix with it.
    pub eta: Arc<dyn yixin_dispatch_core::EtaEstimator>,
    /// Latest nurse positions (the en-route nurse's, on the order view).
    pub positions: Option<Arc<dyn yixin_queue::PositionBoard>>,
}

/// Catalogue and service areas, read on every order but changed rarely:
/// kept for a few seconds instead of queried per request. A changed area
/// takes effect within [`REFERENCE_TTL`].
pub(crate) struct ReferenceCache {
    catalog: RwLock<Option<Cached<Catalog>>>,
    areas: RwLock<HashMap<OrgId, Cached<Vec<ServiceArea>>>>,
}

/// A value and when it was read.
type Cached<T> = (Instant, Arc<T>);

pub(crate) const REFERENCE_TTL: Duration = Duration::from_secs(5);

impl ReferenceCache {
    fn new() -> Self {
        Self {
            catalog: RwLock::new(None),
            areas: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) async fn catalog(&self, store: &Store) -> Result<Arc<Catalog>, StoreError> {
        if let Ok(guard) = self.catalog.read()
            && let Some((at, cached)) = guard.as_ref()
            && at.elapsed() < REFERENCE_TTL
        {
            return Ok(cached.clone());
        }
        let fresh = Arc::new(store.catalog().await?);
        if let Ok(mut guard) = self.catalog.write() {
            *guard = Some((Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    pub(crate) async fn service_areas(
        &self,
        store: &Store,
        org: &OrgId,
    ) -> Result<Arc<Vec<ServiceArea>>, StoreError> {
        if let Ok(guard) = self.areas.read()
            && let Some((at, areas)) = guard.get(org)
            && at.elapsed() < REFERENCE_TTL
        {
            return Ok(areas.clone());
        }
        let areas = Arc::new(store.service_areas(org).await?);
        if let Ok(mut guard) = self.areas.write() {
            guard.insert(org.clone(), (Instant::now(), areas.clone()));
        }
        Ok(areas)
    }
}

impl OrderIntake {
    /// The service; `shutdown` turning true closes its live feeds.
    pub fn new(
        store: Store,
        queue: Arc<dyn Queue>,
        config: OrderIntakeConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let limiter = Arc::new(RateLimiter::new(
            config.orders_per_minute,
            Duration::from_secs(60),
        ));
        Self {
            store,
            queue,
            config,
            limiter,
            reference: Arc::new(ReferenceCache::new()),
            shutdown,
            eta: Arc::new(yixin_dispatch_core::StraightLineEta::default()),
            positions: None,
        }
    }

    /// The ETA model of the dispatcher (as configured).
    pub fn with_eta(mut self, eta: Arc<dyn yixin_dispatch_core::EtaEstimator>) -> Self {
        self.eta = eta;
        self
    }

    /// Where the en-route nurse's latest position is read.
    pub fn with_positions(mut self, positions: Arc<dyn yixin_queue::PositionBoard>) -> Self {
        self.positions = Some(positions);
        self
    }

    /// The routes and app data of this service.
    pub fn mount(self) -> Mount {
        let data = web::Data::new(self);
        Arc::new(move |cfg| {
            cfg.app_data(data.clone());
            cfg.service(catalog);
            cfg.service(orders::create_order);
            cfg.service(orders::list_orders);
            cfg.service(live::live);
            cfg.service(orders::get_order);
            cfg.service(clinical::get_record);
            cfg.service(orders::cancel_order);
            cfg.service(orders::rate_order);
            cfg.service(household::list_addresses);
            cfg.service(household::add_address);
            cfg.service(household::change_address);
            cfg.service(household::delete_address);
            cfg.service(household::list_patients);
            cfg.service(household::add_patient);
            cfg.service(household::change_patient);
            cfg.service(household::delete_patient);
        })
    }

    /// The background workers (the outbox relay, which also purges old
    /// idempotency keys; the retention pruner), supervised by `workers`,
    /// running until `shutdown`
    /// turns true.
    pub fn spawn_workers(
        &self,
        workers: &yixin_platform::Workers,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let (store, queue, config) = (
            self.store.clone(),
            self.queue.clone(),
            self.config.relay.clone(),
        );
        let (prune_store, retention) = (self.store.clone(), self.config.retention);
        let stop = shutdown.clone();
        let prune_stop = shutdown.clone();
        vec![
            workers.supervise(
                "order-intake.relay",
                true,
                shutdown.clone(),
                move |health| {
                    let relay = OutboxRelay {
                        store: store.clone(),
                        queue: queue.clone(),
                        config: config.clone(),
                    };
                    relay.run_reporting(Some(health), stop.clone())
                },
            ),
            workers.supervise("order-intake.retention", false, shutdown, move |_| {
                let pruner = retention::Pruner {
                    store: prune_store.clone(),
                    config: retention,
                };
                pruner.run(prune_stop.clone())
            }),
        ]
    }

    /// Tells live feeds (on every instance) that the order changed. Best
    /// effort: the relay broadcasts again when it publishes the event.
    pub(crate) async fn notify(&self, id: OrderId) {
        if let Err(e) = self
            .queue
            .broadcast(&yixin_contracts::order_channel(id), b"changed")
            .await
        {
            tracing::debug!(order_id = %id, error = %e, "live broadcast failed");
        }
    }
}

/// One category of the catalogue with its services.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogCategory {
    #[schema(example = "maternal_infant")]
    pub code: String,
    #[schema(example = "母婴健康服务")]
    pub name_zh: String,
    pub name_en: String,
    pub services: Vec<CatalogService>,
}

/// A service a resident can order.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogService {
    #[schema(example = "infant_jaundice_test")]
    pub code: String,
    #[schema(example = "婴儿黄疸测定")]
    pub name_zh: String,
    pub name_en: String,
    pub duration_min: u32,
    pub price_cents: u32,
    /// Skills a nurse must hold to be offered this service.
    pub required_skills: Vec<String>,
    /// Every order waits for a coordinator's screening (`awaiting_review`).
    pub requires_review: bool,
    /// The order must carry `doctor_order_ref`.
    pub requires_doctor_order: bool,
    /// Questions asked when ordering (answers go in the order's `answers`).
    pub intake: Vec<clinical::IntakeQuestionView>,
    /// The consent text; the order carries its `version` as `consent_version`.
    pub consent: Option<clinical::ConsentView>,
    /// The visit-record form the nurse fills in.
    pub record_template: Vec<clinical::RecordFieldView>,
    /// A package: booking it books this many visits (a course).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub course_visits: Option<u32>,
    /// Days between a course's visits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub course_interval_days: Option<u32>,
}

/// A skill code in words.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogSkill {
    #[schema(example = "wound_care")]
    pub code: String,
    #[schema(example = "伤口护理")]
    pub name_zh: String,
    pub name_en: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogResponse {
    pub categories: Vec<CatalogCategory>,
    /// The names of the skill codes the services require.
    pub skills: Vec<CatalogSkill>,
    /// How many days ahead a visit can be booked (the domain's one booking
    /// horizon; the apps read it here rather than hard-coding it).
    pub booking_horizon_days: i64,
}

/// The catalogue: categories with their active services, as stored.
#[utoipa::path(
    tag = "resident",
    security(("bearer" = [])),
    responses((status = 200, body = CatalogResponse), (status = 401, body = ErrorBody))
)]
#[get("/v1/catalog")]
async fn catalog(
    _caller: Caller,
    svc: web::Data<OrderIntake>,
) -> Result<web::Json<CatalogResponse>, ApiError> {
    let catalog = svc
        .reference
        .catalog(&svc.store)
        .await
        .map_err(ApiError::internal)?;
    let mut categories = catalog.categories.clone();
    categories.sort_by_key(|c| c.sort);
    let categories = categories
        .into_iter()
        .map(|c| CatalogCategory {
            services: catalog
                .services
                .iter()
                .filter(|s| s.active && s.category_code == c.code)
                .map(|s| (s, clinical::ServiceClinicalView::from(s)))
                .map(|(s, clinical)| CatalogService {
                    code: s.code.clone(),
                    name_zh: s.name_zh.clone(),
                    name_en: s.name_en.clone(),
                    duration_min: s.duration_min,
                    price_cents: s.price_cents,
                    required_skills: s
                        .required_skills
                        .iter()
                        .map(|k| k.as_str().to_owned())
                        .collect(),
                    requires_review: clinical.requires_review,
                    requires_doctor_order: clinical.requires_doctor_order,
                    intake: clinical.intake,
                    consent: clinical.consent,
                    record_template: clinical.record_template,
                    course_visits: s.clinical.course_visits,
                    course_interval_days: s.clinical.course_interval_days,
                })
                .collect(),
            code: c.code,
            name_zh: c.name_zh,
            name_en: c.name_en,
        })
        .collect();
    let skills = Catalog::seed_skill_names()
        .into_iter()
        .map(|k| CatalogSkill {
            code: k.code.as_str().to_owned(),
            name_zh: k.name_zh,
            name_en: k.name_en,
        })
        .collect();
    Ok(web::Json(CatalogResponse {
        categories,
        skills,
        booking_horizon_days: yixin_domain::MAX_BOOKING_AHEAD_DAYS,
    }))
}
