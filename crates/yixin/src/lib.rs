//! The all-in-one `yixin` process: connects the backends named by the
//! configuration (PostgreSQL or embedded SQLite; Redis or the in-process
//! queue), and runs one service or all three on one HTTP server.
//!
//! The end-to-end tests start the platform through [`Yixin::start`], exactly
//! as `yixin serve` does.

pub mod bootstrap;

use std::{net::TcpListener, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use yixin_auth::Authenticator;
use yixin_domain::{OrgId, ServiceArea};
use yixin_platform::{
    Mount, Readiness, ReadinessCheck, Settings,
    config::{DevLoginExposure, JwtAlgorithm},
    http::{self, RunningServer},
};
use yixin_queue::{MemoryPositions, MemoryQueue, PositionBoard, Queue, QueueConfig, RedisQueue};
use yixin_store::{PoolOptions, Store};

/// Which services this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// All three on one server: the embedded default and small deployments.
    All,
    OrderIntake,
    Dispatcher,
    NurseTracking,
}

impl Role {
    fn runs_order_intake(self) -> bool {
        matches!(self, Role::All | Role::OrderIntake)
    }
    fn runs_dispatcher(self) -> bool {
        matches!(self, Role::All | Role::Dispatcher)
    }
    fn runs_nurse_tracking(self) -> bool {
        matches!(self, Role::All | Role::NurseTracking)
    }
}

/// The connected backends, shared by every service in the process.
#[derive(Clone)]
pub struct Backends {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    /// Latest nurse positions shared between instances.
    pub positions: Arc<dyn PositionBoard>,
    pub auth: Arc<Authenticator>,
}

/// Connects the database (migrating it if configured to), the queue, and
/// the token verifier.
pub async fn connect(settings: &Settings) -> anyhow::Result<Backends> {
    // Configuration mistakes first, before touching any backend.
    let auth = Arc::new(authenticator(settings)?);
    let store = connect_store(settings).await?;
    if settings.database.migrate_on_start {
        store.migrate().await.context("migrating the database")?;
    }
    let (queue, positions) = connect_queue(settings).await?;
    Ok(Backends {
        store,
        queue,
        positions,
        auth,
    })
}

/// The database named by `database.url`, or the embedded SQLite file in
/// `database.data_dir`.
pub async fn connect_store(settings: &Settings) -> anyhow::Result<Store> {
    let url = match &settings.database.url {
        Some(url) => url.expose_secret().to_owned(),
        None => {
            let dir = &settings.database.data_dir;
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
            format!("sqlite://{}?mode=rwc", dir.join("yixin.sqlite").display())
        }
    };
    let db = &settings.database;
    let pool = PoolOptions {
        max_connections: db.max_connections,
        acquire_timeout: Duration::from_millis(db.acquire_timeout_ms),
        connect_timeout: Duration::from_millis(db.connect_timeout_ms),
        statement_timeout: Duration::from_millis(db.statement_timeout_ms),
    };
    let store = Store::connect_with(&url, pool)
        .await
        .context("connecting to the database (database.url)")?;
    Ok(store)
}

/// The queue named by `redis.url`, or the in-process one.
pub async fn connect_queue(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn Queue>, Arc<dyn PositionBoard>)> {
    let config = QueueConfig {
        key_prefix: settings.redis.key_prefix.clone(),
        max_deliveries: settings.redis.max_deliveries,
        command_timeout: Duration::from_millis(settings.redis.command_timeout_ms),
        ..QueueConfig::default()
    };
    let trail_max = settings.tracking.trail_stream_max_len;
    Ok(match &settings.redis.url {
        Some(url) => {
            let redis = RedisQueue::connect(url.expose_secret(), config)
                .await
                .context("connecting to Redis (redis.url)")?;
            let positions = Arc::new(redis.positions(trail_max));
            (Arc::new(redis), positions)
        }
        None => (
            Arc::new(MemoryQueue::new(config)),
            Arc::new(MemoryPositions::new(trail_max)),
        ),
    })
}

/// The token verifier. The embedded default needs no configuration: it
/// keeps a random HS256 secret in its data directory, so tokens survive a
/// restart. Anywhere else a missing key is a start-up error.
pub fn authenticator(settings: &Settings) -> anyhow::Result<Authenticator> {
    let mut auth = settings.auth.clone();
    if auth.algorithm == JwtAlgorithm::Hs256 && auth.jwt_secret.is_none() {
        anyhow::ensure!(
            settings.is_embedded(),
            "configuration key `auth.jwt_secret` is required when a database or Redis URL is set \
             (or choose auth.algorithm = rs256/eddsa with auth.public_key_pem)"
        );
        auth.jwt_secret = Some(embedded_secret(&settings.database.data_dir)?);
    }
    Authenticator::from_settings(&auth).context("configuring token verification (auth.*)")
}

/// The key of the sign-in codes' HMAC: `signin.code_secret`; else the
/// embedded default keeps a random one in its data directory; else one is
/// derived from the HS256 token secret; else start-up fails.
pub fn code_key(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &settings.signin.code_secret {
        return Ok(secret.expose_secret().as_bytes().to_vec());
    }
    if settings.is_embedded() {
        return Ok(
            secret_file(&settings.database.data_dir, "sign-in-code-secret")?
                .expose_secret()
                .as_bytes()
                .to_vec(),
        );
    }
    match &settings.auth.jwt_secret {
        Some(jwt) => Ok(yixin_signin::rules::hmac_sha256(
            jwt.expose_secret().as_bytes(),
            b"yixin sign-in code key",
        )
        .to_vec()),
        None => anyhow::bail!(
            "configuration key `signin.code_secret` is required when tokens are not HS256"
        ),
    }
}

fn embedded_secret(data_dir: &Path) -> anyhow::Result<SecretString> {
    secret_file(data_dir, "dev-jwt-secret")
}

/// A random secret kept in `data_dir/name` (created on first use, private).
fn secret_file(data_dir: &Path, name: &str) -> anyhow::Result<SecretString> {
    let path = data_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            return Ok(SecretString::from(existing.to_owned()));
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &secret)
        .with_context(|| format!("writing the embedded secret {}", path.display()))?;
    Ok(SecretString::from(secret))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Creates the demo organisation and its Shuangfu service area (idempotent).
pub async fn seed_demo(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    let org = OrgId(settings.demo.org_id.clone());
    store
        .ensure_organization(&org, &settings.demo.org_name)
        .await
        .context("creating the demo organisation")?;
    store
        .upsert_service_area(&ServiceArea::shuangfu_demo(org))
        .await
        .context("creating the demo service area")?;
    Ok(())
}

pub use yixin_loadgen::city::{DEMO_NURSES, TAKEOVER_REASON as DEMO_TAKEOVER_REASON};

/// Runs the simulated district of `serve --demo` against the platform at
/// `addr` until `stop` turns true. Each start takes over from the previous
/// run: the same simulated nurses (by name and phone) come back on shift,
/// the orders a dead run left open are cancelled (or completed, where the
/// visit had started), and simulated nurses this run does not use go off
/// shift.
pub async fn run_demo(
    addr: std::net::SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    // Phones reach the platform the way real ones do: over its own port.
    let city = yixin_loadgen::city::CityArgs::demo(format!("http://{addr}"));
    tracing::info!(
        nurses = city.nurses,
        orders_per_minute = city.orders_per_minute,
        "demo: simulated district starting"
    );
    yixin_loadgen::city::run(city, stop).await?;
    Ok(())
}

/// `GET /healthz` on `addr` (an unspecified address means this machine),
/// within `timeout`: Ok on a 200. No HTTP client needed in the image.
pub fn healthcheck(addr: std::net::SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .context("sending the request")?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).context("reading the answer")?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    anyhow::ensure!(
        status == "200",
        "GET /healthz on {addr} answered {:?}",
        status_line.lines().next().unwrap_or("")
    );
    Ok(())
}

struct DatabaseReady(Store);

#[async_trait]
impl ReadinessCheck for DatabaseReady {
    fn name(&self) -> &'static str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

struct QueueReady(Arc<dyn Queue>);

#[async_trait]
impl ReadinessCheck for QueueReady {
    fn name(&self) -> &'static str {
        "queue"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// The order-intake service over the shared backends; `shutdown` closes its live feeds.
pub fn order_intake(
    settings: &Settings,
    backends: &Backends,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> yixin_order_intake::OrderIntake {
    yixin_order_intake::OrderIntake::new(
        backends.store.clone(),
        backends.queue.clone(),
        yixin_order_intake::OrderIntakeConfig {
            orders_per_minute: settings.orders.per_resident_per_minute,
            retention: retention_config(&settings.retention),
            relay: yixin_order_intake::relay::RelayConfig {
                // Sharded dispatch: orders to their region's stream.
                regions: (!settings.dispatch.regions.trim().is_empty()).then(|| {
                    yixin_order_intake::relay::RegionRouting::new(
                        settings.dispatch.region_resolution,
                    )
                }),
                notification_templates: notification_templates(&settings.notifications),
                ..Default::default()
            },
        },
        shutdown,
    )
}

/// The residents' notification templates from `notifications.*`.
fn notification_templates(
    n: &yixin_platform::config::NotificationSettings,
) -> yixin_store::NotificationTemplates {
    yixin_store::NotificationTemplates {
        sms: n.sms_templates.clone(),
        wechat: n.wechat_templates.clone(),
    }
}

/// The pruner's configuration from `retention.*`.
fn retention_config(
    r: &yixin_platform::config::RetentionSettings,
) -> yixin_order_intake::retention::RetentionConfig {
    const HOUR: u64 = 3600;
    yixin_order_intake::retention::RetentionConfig {
        outbox: Duration::from_secs(r.outbox_hours.saturating_mul(HOUR)),
        trail: Duration::from_secs(r.trail_days.saturating_mul(24 * HOUR)),
        visit_trail: Duration::from_secs(r.visit_trail_days.saturating_mul(24 * HOUR)),
        interval: Duration::from_secs(r.interval_secs),
        batch: r.batch,
    }
}

/// What the routes of one process are built from.
struct Parts {
    order_intake: yixin_order_intake::OrderIntake,
    tracking: yixin_nurse_tracking::NurseTracking,
    dispatch_eta: Option<Arc<dyn yixin_dispatcher::EtaEstimator>>,
    engine: Option<Arc<yixin_dispatcher::engine::Engine>>,
    /// The demand forecast and the suggestions standing (issue 18).
    forecast: Arc<yixin_dispatcher::reposition::ForecastBoard>,
    signin: Mount,
    resident_app: yixin_resident_app::AppConfig,
}

/// The routes of `role`, plus what every service shares (token verification,
/// and dev login where it is on).
fn mounts(
    settings: &Settings,
    role: Role,
    backends: &Backends,
    parts: Parts,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<Mount> {
    let Parts {
        order_intake,
        tracking,
        dispatch_eta,
        engine,
        forecast,
        signin,
        resident_app,
    } = parts;
    let auth = actix_web::web::Data::from(backends.auth.clone());
    let mut mounts: Vec<Mount> = vec![Arc::new(move |cfg| {
        cfg.app_data(auth.clone());
    })];
    if settings.dev_login_enabled() {
        if backends.auth.can_mint() {
            mounts.push(Arc::new(|cfg| {
                cfg.service(yixin_auth::dev_token);
            }));
        } else {
            tracing::warn!(
                "dev login is on but the configured key cannot mint tokens; not mounted"
            );
        }
    }
    // Phone sign-in, for residents and nurses alike, wherever the platform runs.
    mounts.push(signin);
    if role.runs_order_intake() {
        mounts.push(order_intake.mount());
        // The residents' phone app, served where their API is.
        mounts.push(yixin_resident_app::mount(resident_app));
    }
    if role.runs_dispatcher() {
        let mut dispatcher = yixin_dispatcher::Dispatcher::new(
            backends.store.clone(),
            backends.queue.clone(),
            backends.positions.clone(),
        )
        .with_stale_after(Duration::from_secs(settings.tracking.stale_after_secs))
        .with_webhooks(settings.webhooks.clone());
        if let Some(eta) = dispatch_eta {
            dispatcher = dispatcher.with_eta(eta);
        }
        if let Some(engine) = engine {
            dispatcher = dispatcher.with_engine(engine);
        }
        dispatcher = dispatcher.with_forecast(forecast);
        // Validated at startup (`serve` refuses a bad horizon).
        if let Ok(chain) = yixin_dispatcher::engine::chain_rules(&settings.dispatch) {
            dispatcher = dispatcher.with_chain(chain);
        }
        mounts.push(dispatcher.mount(shutdown));
        // The coordinators' web page, served where their API is.
        mounts.push(yixin_dashboard::mount(
            yixin_dashboard::DashboardConfig::from_settings(settings),
        ));
    }
    if role.runs_nurse_tracking() {
        mounts.push(tracking.mount());
        // The nurses' phone web app, served where their socket is.
        mounts.push(yixin_nurse_app::mount(
            yixin_nurse_app::NurseAppConfig::from_settings(settings),
        ));
    }
    mounts
}

/// A running platform: its HTTP server and background workers.
pub struct Yixin {
    pub addr: std::net::SocketAddr,
    pub backends: Backends,
    /// Nurse tracking (its fleet is what candidate search reads).
    pub tracking: yixin_nurse_tracking::NurseTracking,
    server: RunningServer,
    shutdown: tokio::sync::watch::Sender<bool>,
    shutdown_timeout: Duration,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Yixin {
    /// Connects everything and starts serving on `listener`.
    pub async fn start(
        settings: Settings,
        role: Role,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        // Dev login on a public address is refused unless asked for.
        let bound = listener
            .local_addr()
            .context("reading the listen address")?;
        if settings.dev_login_exposure(bound)? == DevLoginExposure::Public {
            tracing::warn!(
                addr = %bound,
                "DEV LOGIN IS PUBLIC: anyone reaching {bound} can mint a token for any role \
                 and organisation (POST /v1/auth/dev-token) because auth.dev_login_public = true. \
                 Never run this with real patients' data."
            );
        }
        let backends = connect(&settings).await?;
        if settings.demo_enabled() {
            seed_demo(&backends.store, &settings).await?;
        }
        let signin = yixin_signin::Signin::from_settings(
            &settings.signin,
            backends.store.clone(),
            backends.auth.clone(),
            &code_key(&settings)?,
        )?
        .mount();
        // Background workers are supervised (restarted when they end, counted
        // in /metrics); a critical one down makes /readyz say so.
        let supervised = yixin_platform::Workers::new();
        let mut readiness = Readiness::new()
            .with(Arc::new(DatabaseReady(backends.store.clone())))
            .with(Arc::new(QueueReady(backends.queue.clone())))
            .with(supervised.readiness());
        let (shutdown, _) = tokio::sync::watch::channel(false);
        // The dispatcher's ETA model, as configured: the engine's, the
        // coordinators' candidate list's, and the resident's live arrival.
        let areas = backends
            .store
            .all_service_areas()
            .await
            .context("reading service areas for the ETA overrides")?;
        let (engine_config, eta) =
            yixin_dispatcher::engine::engine_config(&settings.dispatch, &areas)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        let chain_rules = yixin_dispatcher::engine::chain_rules(&settings.dispatch)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let intake = order_intake(&settings, &backends, shutdown.subscribe())
            .with_eta(eta.clone())
            .with_positions(backends.positions.clone());
        let tracking = yixin_nurse_tracking::NurseTracking::new(
            backends.store.clone(),
            backends.queue.clone(),
            backends.positions.clone(),
            settings.tracking.clone(),
            shutdown.subscribe(),
        )
        .with_safety(settings.safety.clone());
        let mut workers = Vec::new();
        if role.runs_order_intake() {
            workers.extend(intake.spawn_workers(&supervised, shutdown.subscribe()));
        }
        if role.runs_nurse_tracking() {
            workers.extend(tracking.spawn_workers(&supervised, shutdown.subscribe()));
        }
        // The engine's ETA estimator also ranks the coordinators' manual
        // candidates, automatic dispatch on or off.
        let mut dispatch_eta = None;
        let mut dispatch_engine = None;
        let forecast = yixin_dispatcher::reposition::ForecastBoard::new(
            yixin_dispatcher::reposition::RepositionConfig::from_settings(&settings.dispatch)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        if role.runs_dispatcher() {
            let config = engine_config;
            dispatch_eta = Some(eta.clone());
            if settings.dispatch.auto {
                // The dispatcher's own candidate index, kept from the fleet feed
                // of every nurse-tracking instance (not only this process's).
                let fleet = Arc::new(std::sync::RwLock::new(yixin_nurse_tracking::Fleet::new(
                    yixin_nurse_tracking::presence_rules(&settings.tracking),
                )));
                let shard = yixin_dispatcher::engine::regions::shard_settings(&settings.dispatch)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let engine = yixin_dispatcher::engine::Engine::configured(
                    backends.store.clone(),
                    backends.queue.clone(),
                    eta.clone(),
                    config,
                    fleet,
                    shard,
                    chain_rules,
                );
                workers.extend(engine.spawn(&supervised, shutdown.subscribe()));
                readiness = readiness.with(Arc::new(
                    yixin_dispatcher::engine::regions::RegionsReady(engine.clone()),
                ));
                // Waiting-spot suggestions for idle nurses (from the engine's fleet).
                let repositioner = Arc::new(yixin_dispatcher::reposition::Repositioner {
                    store: backends.store.clone(),
                    queue: backends.queue.clone(),
                    fleet: engine.fleet.clone(),
                    board: forecast.clone(),
                });
                workers.extend(repositioner.spawn(&supervised, shutdown.subscribe()));
                dispatch_engine = Some(engine);
            }
            // Bookings are released to dispatch whether or not it is automatic
            // (a manual coordinator assigns `pending` orders).
            let worker = yixin_dispatcher::bookings::BookingWorker {
                store: backends.store.clone(),
                queue: backends.queue.clone(),
                eta: eta.clone(),
                fleet: dispatch_engine.as_ref().map(|e| e.fleet.clone()),
                release: yixin_dispatcher::bookings::BookingRelease::from_settings(
                    &settings.dispatch,
                ),
            };
            workers.push(worker.spawn(shutdown.subscribe()));
            // The organisations' webhooks (and the residents' notifications).
            if settings.webhooks.deliver {
                let worker = yixin_dispatcher::webhooks::worker::DeliveryWorker::new(
                    backends.store.clone(),
                    settings.webhooks.clone(),
                )
                .context("building the webhook client")?;
                let stop = shutdown.subscribe();
                workers.push(supervised.supervise(
                    "dispatcher.webhooks",
                    false,
                    shutdown.subscribe(),
                    move |health| worker.clone().run(Some(health), stop.clone()),
                ));
            }
        }
        let server = http::start(
            listener,
            &settings.server,
            readiness,
            mounts(
                &settings,
                role,
                &backends,
                Parts {
                    order_intake: intake,
                    tracking: tracking.clone(),
                    dispatch_eta,
                    engine: dispatch_engine,
                    forecast,
                    signin,
                    resident_app: yixin_resident_app::AppConfig::from_settings(
                        &settings,
                        areas
                            .iter()
                            .filter(|a| a.org_id.as_str() == settings.demo.org_id)
                            .filter_map(|a| a.to_geojson().coordinates.into_iter().next())
                            .collect(),
                    ),
                },
                shutdown.subscribe(),
            ),
        )
        .context("starting the HTTP server")?;
        tracing::info!(
            addr = %server.addr,
            ?role,
            embedded = settings.is_embedded(),
            dev_login = settings.dev_login_enabled(),
            "yixin is serving"
        );
        Ok(Self {
            addr: server.addr,
            backends,
            tracking,
            shutdown,
            shutdown_timeout: Duration::from_secs(settings.server.shutdown_timeout_secs),
            server,
            workers,
        })
    }

    /// A receiver that turns `true` when the platform is stopping; background
    /// workers select on it.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Serves until SIGINT/SIGTERM, then stops gracefully: no new
    /// connections, in-flight requests get `server.shutdown_timeout_secs`.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        let handle = self.server.handle.clone();
        let shutdown = self.shutdown.clone();
        let timeout = self.shutdown_timeout;
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping: finishing in-flight requests");
            let _ = shutdown.send(true);
            // The server's own timeout bounds this; the outer one is a guard.
            let _ = tokio::time::timeout(timeout + Duration::from_secs(5), handle.stop(true)).await;
        });
        self.server.server.await.context("HTTP server failed")?;
        let _ = self.shutdown.send(true);
        join_workers(self.workers, timeout).await;
        tracing::info!("stopped");
        Ok(())
    }

    /// Runs the server in the background (tests).
    pub fn spawn(self) -> RunningYixin {
        let handle = self.server.handle.clone();
        let task = tokio::spawn(self.server.server);
        RunningYixin {
            addr: self.addr,
            backends: self.backends,
            tracking: self.tracking,
            handle,
            shutdown: self.shutdown,
            task,
            workers: self.workers,
            shutdown_timeout: self.shutdown_timeout,
        }
    }
}

/// Waits for the background workers to finish (they watch the shutdown
/// signal), at most `timeout`; stragglers are aborted.
async fn join_workers(workers: Vec<tokio::task::JoinHandle<()>>, timeout: Duration) {
    for worker in workers {
        let abort = worker.abort_handle();
        if tokio::time::timeout(timeout, worker).await.is_err() {
            abort.abort();
        }
    }
}

/// A platform serving in a background task.
pub struct RunningYixin {
    pub addr: std::net::SocketAddr,
    pub backends: Backends,
    pub tracking: yixin_nurse_tracking::NurseTracking,
    handle: actix_web::dev::ServerHandle,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl RunningYixin {
    /// Graceful stop, as on SIGTERM.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.handle.stop(true).await;
        let _ = self.task.await;
        join_workers(self.workers, self.shutdown_timeout).await;
    }

    /// Stops everything at once, as a crash would (tests of takeover):
    /// every worker aborted where it stands, nothing released or flushed,
    /// the listener closed.
    pub async fn kill(self) {
        for worker in &self.workers {
            worker.abort();
        }
        self.task.abort();
        self.handle.stop(false).await;
        for worker in self.workers {
            let _ = worker.await;
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_without_a_secret_refuses_to_start() {
        let mut settings = Settings::default();
        settings.database.url = Some(SecretString::from("postgres://db/yixin".to_owned()));
        let err = authenticator(&settings).unwrap_err().to_string();
        assert!(err.contains("auth.jwt_secret"), "{err}");
    }

    #[test]
    fn embedded_secret_is_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = embedded_secret(dir.path()).unwrap();
        let second = embedded_secret(dir.path()).unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert!(first.expose_secret().len() >= 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("dev-jwt-secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "secret file readable by others");
        }
    }
}
