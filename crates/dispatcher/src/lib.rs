//! dispatcher: finds a qualified nurse for every order (candidates, ETA,
//! greedy and batch matching, offers, escalation) and serves the
//! coordinator API.
//!
//! Owns the `/v1/dispatch` routes (roster, areas, orders with dispatch
//! detail, manual assignment and cancel, overview KPIs, the live feed) and
//! the dispatch [`engine`] (consumer group on the work streams, candidate
//! search, ETA, scoring, greedy and batch matching, offers, expiry,
//! escalation). The pure parts (fleet, candidate rule, ETA model, scoring,
//! matching and the engine's decisions) are `yixin-dispatch-core`'s; the
//! engine is their I/O shell, and [`eta`] adds the OSRM estimator. Claims
//! orders only through the store's conditional updates, so several
//! instances never double-book a nurse.

use std::sync::Arc;

use yixin_platform::Mount;
use yixin_queue::{PositionBoard, Queue};
use yixin_store::Store;

pub mod agents;
pub mod bookings;
pub mod coordinator;
pub mod credentials;
pub mod quotes;
pub mod reposition;
pub mod roster;
pub mod webhooks;

/// What the service needs, built once by the binary.
#[derive(Clone)]
pub struct Dispatcher {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    pub positions: Arc<dyn PositionBoard>,
    /// Travel times for the coordinator's candidate list (manual
    /// assignment); straight-line with the default settings unless
    /// [`Dispatcher::with_eta`] gives the engine's estimator.
    pub eta: Arc<dyn EtaEstimator>,
    /// A nurse whose latest fix is older than this is shown as stale.
    pub stale_after: std::time::Duration,
    /// The engine whose fleet and rules answer quotes (none when automatic
    /// dispatch is off: quotes are then 503).
    pub engine: Option<Arc<engine::Engine>>,
    /// The demand forecast and the waiting spots suggested (the default
    /// settings unless [`Dispatcher::with_forecast`] gives the worker's).
    pub forecast: Arc<reposition::ForecastBoard>,
    /// Chained jobs: a coordinator may give a nurse finishing a visit her
    /// next job, under the engine's rule.
    pub chain: yixin_dispatch_core::ChainRules,
    /// Which webhook URLs are acceptable, how many per organisation.
    pub webhooks: yixin_platform::config::WebhookSettings,
}

impl Dispatcher {
    pub fn new(store: Store, queue: Arc<dyn Queue>, positions: Arc<dyn PositionBoard>) -> Self {
        Self {
            store,
            queue,
            positions,
            eta: Arc::new(StraightLineEta::default()),
            stale_after: std::time::Duration::from_secs(
                yixin_platform::config::TrackingSettings::default().stale_after_secs,
            ),
            engine: None,
            forecast: reposition::ForecastBoard::new(reposition::RepositionConfig::default()),
            chain: yixin_dispatch_core::ChainRules::default(),
            webhooks: yixin_platform::config::WebhookSettings::default(),
        }
    }

    /// The forecast board the reposition worker keeps.
    pub fn with_forecast(mut self, board: Arc<reposition::ForecastBoard>) -> Self {
        self.forecast = board;
        self
    }

    /// The chaining rules (`dispatch.chain_horizon_s`).
    pub fn with_chain(mut self, chain: yixin_dispatch_core::ChainRules) -> Self {
        self.chain = chain;
        self
    }

    /// The ETA estimator the candidate list uses (the engine's, as configured).
    pub fn with_eta(mut self, eta: Arc<dyn EtaEstimator>) -> Self {
        self.eta = eta;
        self
    }

    /// The engine that answers quotes.
    pub fn with_engine(mut self, engine: Arc<engine::Engine>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// The webhook rules (`webhooks.*`).
    pub fn with_webhooks(mut self, settings: yixin_platform::config::WebhookSettings) -> Self {
        self.webhooks = settings;
        self
    }

    /// When a nurse's latest fix counts as stale (`tracking.stale_after_secs`).
    pub fn with_stale_after(mut self, stale_after: std::time::Duration) -> Self {
        self.stale_after = stale_after;
        self
    }

    /// The routes and app data of this service; `shutdown` closes the
    /// coordinators' live feeds when the platform stops.
    pub fn mount(self, shutdown: tokio::sync::watch::Receiver<bool>) -> Mount {
        let data = actix_web::web::Data::new(self);
        let live_shutdown = actix_web::web::Data::new(coordinator::live::LiveShutdown(shutdown));
        Arc::new(move |cfg| {
            cfg.app_data(data.clone());
            cfg.app_data(live_shutdown.clone());
            cfg.service(agents::add_agent);
            cfg.service(agents::list_agents);
            cfg.service(agents::change_agent);
            cfg.service(roster::add_nurse);
            cfg.service(roster::list_nurses);
            cfg.service(roster::change_nurse);
            cfg.service(coordinator::areas::list_areas);
            cfg.service(coordinator::areas::save_area);
            cfg.service(coordinator::orders::list_orders);
            cfg.service(coordinator::orders::get_order);
            cfg.service(coordinator::orders::assign_order);
            cfg.service(coordinator::orders::cancel_order);
            cfg.service(coordinator::reviews::list_reviews);
            cfg.service(coordinator::reviews::approve_order);
            cfg.service(coordinator::reviews::reject_order);
            cfg.service(coordinator::records::export_records);
            cfg.service(coordinator::candidates::list_candidates);
            cfg.service(coordinator::cells::list_cells);
            cfg.service(coordinator::regions::list_regions);
            cfg.service(reposition::get_forecast);
            cfg.service(coordinator::overview::get_overview);
            cfg.service(coordinator::live::live);
            cfg.service(quotes::create_quote);
            cfg.service(bookings::list_slots);
            cfg.service(bookings::add_shift);
            cfg.service(bookings::list_shifts);
            cfg.service(credentials::get_credentials);
            cfg.service(credentials::put_credentials);
            cfg.service(credentials::verify_credentials);
            cfg.service(credentials::reject_credentials);
            cfg.service(credentials::expiring_certificates);
            cfg.service(credentials::audit_trail);
            cfg.service(coordinator::safety::list_alarms);
            cfg.service(coordinator::safety::ack_alarm);
            cfg.service(coordinator::safety::resolve_alarm);
            cfg.service(coordinator::safety::override_arrival);
            cfg.service(coordinator::safety::list_visit_flags);
            cfg.service(coordinator::safety::clear_visit_flag);
            cfg.service(webhooks::create_webhook);
            cfg.service(webhooks::list_webhooks);
            cfg.service(webhooks::get_webhook);
            cfg.service(webhooks::change_webhook);
            cfg.service(webhooks::delete_webhook);
            cfg.service(webhooks::rotate_webhook_secret);
            cfg.service(webhooks::test_webhook);
            cfg.service(webhooks::list_deliveries);
            cfg.service(webhooks::replay_delivery);
        })
    }
}

pub mod engine;
pub mod eta;
// The pure parts live in the dispatch core; re-exported under their old paths.
pub use yixin_dispatch_core::{decision, eligibility, matching, scoring, settings};

pub use eta::{
    AreaEtaSettings, Eta, EtaError, EtaEstimator, EtaSettings, FallbackEta, OsrmEta, OsrmSettings,
    StraightLineConfig, StraightLineEta,
};
pub use matching::{
    BatchCost, CandidateLists, MatchingPolicy, PolicyKind, WaitingOrder, assign_batch,
    assign_greedy, best_candidate,
};
pub use scoring::{Candidate, ScoringWeights, rank};
pub use settings::InvalidSettings;
