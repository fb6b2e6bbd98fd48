//! Typed settings, layered: built-in defaults, then an optional TOML file,
//! then environment variables (`YIXIN_SECTION__KEY`, e.g.
//! `YIXIN_SERVER__ADDR=0.0.0.0:8080`), then the conventional `DATABASE_URL`
//! and `REDIS_URL`. Loaded once in `main` and passed down; tests build their
//! own [`Settings`] directly.
//!
//! Unknown keys and malformed values stop start-up with a message naming the
//! key. Secrets are [`SecretString`]s, so `Debug` never prints them.

use std::{net::SocketAddr, path::PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// Prefix of the environment variables read as configuration.
pub const ENV_PREFIX: &str = "YIXIN";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub demo: DemoSettings,
    pub orders: OrderSettings,
    pub tracking: TrackingSettings,
    pub dispatch: DispatchSettings,
    pub dashboard: DashboardSettings,
    pub signin: SigninSettings,
    pub retention: RetentionSettings,
    pub safety: SafetySettings,
    pub webhooks: WebhookSettings,
    pub notifications: NotificationSettings,
}

/// Webhooks (issue 19): which endpoint URLs coordinators may register, and
/// how the delivery worker sends, retries and keeps deliveries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Run the delivery worker (where the dispatcher runs).
    pub deliver: bool,
    /// Accept `http://` endpoints (development only; production is https).
    pub allow_http: bool,
    /// Accept endpoints on private, loopback and link-local addresses
    /// (the SSRF guard off: development and tests only).
    pub allow_private: bool,
    /// Attempts before a delivery is dead (the first included).
    pub max_attempts: u32,
    /// The back-off after the first failure; it doubles per failure…
    pub backoff_base_ms: u64,
    /// …up to this.
    pub backoff_cap_ms: u64,
    /// One attempt's whole time (connect, send, answer).
    pub timeout_ms: u64,
    /// Attempts under way at once per endpoint, per worker.
    pub per_endpoint_concurrency: usize,
    /// Deliveries claimed per poll.
    pub batch: u64,
    pub poll_interval_ms: u64,
    /// Delivered and dead deliveries are deleted after this.
    pub retention_days: u64,
    /// Endpoints one organisation may register.
    pub max_endpoints_per_org: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            deliver: true,
            allow_http: false,
            allow_private: false,
            max_attempts: 8,
            backoff_base_ms: 5_000,
            backoff_cap_ms: 3_600_000,
            timeout_ms: 5_000,
            per_endpoint_concurrency: 2,
            batch: 100,
            poll_interval_ms: 1_000,
            retention_days: 30,
            max_endpoints_per_org: 20,
        }
    }
}

impl WebhookSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key_err = |key: &str, message: &str| ConfigError::Key {
            key: format!("webhooks.{key}"),
            message: message.to_owned(),
        };
        for (key, v) in [
            ("max_attempts", u64::from(self.max_attempts)),
            ("backoff_base_ms", self.backoff_base_ms),
            ("timeout_ms", self.timeout_ms),
            (
                "per_endpoint_concurrency",
                self.per_endpoint_concurrency as u64,
            ),
            ("batch", self.batch),
            ("poll_interval_ms", self.poll_interval_ms),
        ] {
            if v == 0 {
                return Err(key_err(key, "must be at least 1"));
            }
        }
        if self.backoff_cap_ms < self.backoff_base_ms {
            return Err(key_err(
                "backoff_cap_ms",
                "must be at least backoff_base_ms",
            ));
        }
        Ok(())
    }
}

/// The residents' template notifications (assigned, on the way, arrived,
/// completed) that webhooks carry to the operator's SMS and WeChat
/// gateways: a template id per step; a step left out is not sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    pub sms_templates: std::collections::BTreeMap<String, String>,
    pub wechat_templates: std::collections::BTreeMap<String, String>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        let table = |prefix: &str| {
            yixin_domain::webhooks::NOTIFIED_STEPS
                .iter()
                .map(|s| ((*s).to_owned(), format!("{prefix}_{}", s.to_uppercase())))
                .collect()
        };
        Self {
            sms_templates: table("SMS_YIXIN"),
            wechat_templates: table("WX_YIXIN"),
        }
    }
}

impl NotificationSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, table) in [
            ("sms_templates", &self.sms_templates),
            ("wechat_templates", &self.wechat_templates),
        ] {
            for (step, id) in table {
                if !yixin_domain::webhooks::NOTIFIED_STEPS.contains(&step.as_str()) {
                    return Err(ConfigError::Key {
                        key: format!("notifications.{key}.{step}"),
                        message: format!(
                            "steps are {}",
                            yixin_domain::webhooks::NOTIFIED_STEPS.join(", ")
                        ),
                    });
                }
                if id.trim().is_empty() || id.len() > 100 {
                    return Err(ConfigError::Key {
                        key: format!("notifications.{key}.{step}"),
                        message: "a template id of 1 to 100 characters".to_owned(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// How long old rows are kept, and how the pruner deletes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Published outbox rows older than this are deleted (unpublished ones never).
    pub outbox_hours: u64,
    /// Location-trail samples taken off a visit, older than this, are deleted.
    pub trail_days: u64,
    /// Samples taken on a visit (between the order's assignment to the nurse
    /// and its end) are proof of the visit: kept this long.
    pub visit_trail_days: u64,
    /// How often the pruner runs.
    pub interval_secs: u64,
    /// Rows per DELETE, so a large backlog never holds long locks.
    pub batch: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            outbox_hours: 24,
            trail_days: 30,
            visit_trail_days: 3 * 365,
            interval_secs: 3600,
            batch: 1000,
        }
    }
}

/// Nurse safety and visit checks (issue 17): the arrival geofence, alarms
/// and their escalation, the lone-worker timer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetySettings {
    /// `arrived` is accepted within this distance of the address…
    pub arrival_radius_m: f64,
    /// …widened by the fix's reported accuracy, at most by this much.
    pub arrival_max_widening_m: f64,
    /// The latest fix counts for `arrived` (and an alarm's position) only
    /// if it is at most this old.
    pub fix_max_age_secs: u64,
    /// An alarm nobody acknowledged goes to the escalation webhook after this.
    pub escalate_after_secs: u64,
    /// Each organisation's escalation endpoint (`[[safety.escalation_webhooks]]`
    /// with `org_id` and `url`).
    pub escalation_webhooks: Vec<EscalationWebhook>,
    /// Key of the `X-Yixin-Signature` HMAC of escalation posts (at least 32
    /// bytes; required when an endpoint is configured).
    pub escalation_secret: Option<SecretString>,
    /// Tries per escalation (the first included), `escalation_retry_ms` apart.
    pub escalation_attempts: u32,
    pub escalation_retry_ms: u64,
    pub escalation_timeout_ms: u64,
    /// After the service's expected duration from `arrived`, this much more
    /// before the phone is asked to check in; also the interval after a check-in.
    pub check_in_grace_secs: u64,
    /// Asked to check in and silent this long: a `missed_check_in` alarm.
    pub check_in_answer_secs: u64,
    /// No fix (nor check-in) for this long while at the door or in
    /// service: a `silent_phone` alarm.
    pub silent_after_secs: u64,
    /// How often the safety worker scans alarms and open visits.
    pub scan_interval_ms: u64,
}

/// Where one organisation's unacknowledged alarms are sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationWebhook {
    pub org_id: String,
    pub url: String,
}

impl Default for SafetySettings {
    fn default() -> Self {
        Self {
            arrival_radius_m: 200.0,
            arrival_max_widening_m: 100.0,
            fix_max_age_secs: 120,
            escalate_after_secs: 60,
            escalation_webhooks: Vec::new(),
            escalation_secret: None,
            escalation_attempts: 3,
            escalation_retry_ms: 2_000,
            escalation_timeout_ms: 5_000,
            check_in_grace_secs: 600,
            check_in_answer_secs: 300,
            silent_after_secs: 600,
            scan_interval_ms: 5_000,
        }
    }
}

impl SafetySettings {
    /// Distances are sane; an endpoint has a key to sign with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let key_err = |key: &str, message: &str| ConfigError::Key {
            key: format!("safety.{key}"),
            message: message.to_owned(),
        };
        if !(self.arrival_radius_m.is_finite() && self.arrival_radius_m > 0.0) {
            return Err(key_err(
                "arrival_radius_m",
                "must be a positive number of metres",
            ));
        }
        if !(self.arrival_max_widening_m.is_finite() && self.arrival_max_widening_m >= 0.0) {
            return Err(key_err(
                "arrival_max_widening_m",
                "must be a non-negative number of metres",
            ));
        }
        if self.escalation_attempts == 0 {
            return Err(key_err("escalation_attempts", "must be at least 1"));
        }
        if self.scan_interval_ms == 0 {
            return Err(key_err("scan_interval_ms", "must be at least 1"));
        }
        for hook in &self.escalation_webhooks {
            if !(hook.url.starts_with("https://") || hook.url.starts_with("http://")) {
                return Err(key_err("escalation_webhooks.url", "must be an http(s) URL"));
            }
        }
        if !self.escalation_webhooks.is_empty()
            && self
                .escalation_secret
                .as_ref()
                .is_none_or(|k| k.expose_secret().len() < 32)
        {
            return Err(key_err(
                "escalation_secret",
                "at least 32 bytes are required when an escalation webhook is configured",
            ));
        }
        Ok(())
    }

    /// The escalation endpoint of `org`, if one is configured.
    pub fn escalation_url(&self, org: &str) -> Option<&str> {
        self.escalation_webhooks
            .iter()
            .find(|h| h.org_id == org)
            .map(|h| h.url.as_str())
    }
}

/// The coordinator dashboard (`/dashboard`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardSettings {
    /// Base map tiles, an XYZ template such as
    /// `https://tiles.example.org/{z}/{x}/{y}.png` (`{s}` for the a/b/c
    /// subdomains). Empty (the default): no base map, the page draws the
    /// service areas and H3 cells alone, so it works offline.
    pub tile_url: String,
    /// Credit shown under the map for the tiles (e.g. "© OpenStreetMap").
    pub tile_attribution: String,
}

impl DashboardSettings {
    /// Checks the tile template: empty, or `http(s)://` with `{z}`, `{x}`
    /// and `{y}`, and nothing that could break out of the page's
    /// Content-Security-Policy (spaces, quotes, `;`, `,`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.tile_url.trim();
        if url.is_empty() {
            return Ok(());
        }
        let key_err = |message: &str| ConfigError::Key {
            key: "dashboard.tile_url".to_owned(),
            message: message.to_owned(),
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(key_err("must start with https:// or http://"));
        }
        if !["{z}", "{x}", "{y}"].iter().all(|p| url.contains(p)) {
            return Err(key_err("must contain {z}, {x} and {y}"));
        }
        if url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | ',' | '\'' | '"'))
        {
            return Err(key_err("must not contain spaces, quotes, `;` or `,`"));
        }
        Ok(())
    }
}

/// Sign-in by phone and one-time SMS code (`POST /v1/auth/otp`, `…/verify`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigninSettings {
    /// Key of the codes' HMAC (at least 32 bytes). Unset: the embedded
    /// default keeps a random one in its data directory; elsewhere a key is
    /// derived from `auth.jwt_secret`, and without either the platform
    /// refuses to start.
    pub code_secret: Option<SecretString>,
    /// How codes are sent: `log` (written to the server log only; the
    /// embedded default) or `webhook` (an HMAC-signed POST to `webhook_url`).
    pub sender: String,
    /// The SMS gateway's endpoint for `webhook`.
    pub webhook_url: Option<String>,
    /// Key of the `X-Yixin-Signature` HMAC of webhook posts (at least 32 bytes).
    pub webhook_secret: Option<SecretString>,
    pub webhook_timeout_ms: u64,
    /// The gateway's template id sent with each code.
    pub template: String,
    /// A code's lifetime.
    pub code_ttl_secs: u64,
    /// Wrong codes tried before the code is void.
    pub max_attempts: u32,
    /// A phone waits this long between two codes.
    pub resend_after_secs: u64,
    /// Codes one phone may request per hour (per instance).
    pub per_phone_per_hour: u32,
    /// Codes one client address may request per hour (per instance).
    pub per_address_per_hour: u32,
}

impl Default for SigninSettings {
    fn default() -> Self {
        Self {
            code_secret: None,
            sender: "log".to_owned(),
            webhook_url: None,
            webhook_secret: None,
            webhook_timeout_ms: 5_000,
            template: "SMS_LOGIN_CODE".to_owned(),
            code_ttl_secs: 300,
            max_attempts: 5,
            resend_after_secs: 60,
            per_phone_per_hour: 5,
            per_address_per_hour: 30,
        }
    }
}

impl SigninSettings {
    /// The sender is known, a webhook has its URL and secret, keys are long enough.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let key_err = |key: &str, message: &str| ConfigError::Key {
            key: format!("signin.{key}"),
            message: message.to_owned(),
        };
        match self.sender.as_str() {
            "log" => {}
            "webhook" => {
                let url = self.webhook_url.as_deref().unwrap_or("").trim();
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(key_err(
                        "webhook_url",
                        "required for sender = webhook; must start with https:// or http://",
                    ));
                }
                if self
                    .webhook_secret
                    .as_ref()
                    .is_none_or(|s| s.expose_secret().len() < 32)
                {
                    return Err(key_err(
                        "webhook_secret",
                        "required for sender = webhook; at least 32 bytes",
                    ));
                }
            }
            _ => return Err(key_err("sender", "must be `log` or `webhook`")),
        }
        if self
            .code_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().len() < 32)
        {
            return Err(key_err("code_secret", "at least 32 bytes"));
        }
        if self.code_ttl_secs == 0 || self.max_attempts == 0 {
            return Err(key_err(
                "code_ttl_secs",
                "code_ttl_secs and max_attempts must be positive",
            ));
        }
        Ok(())
    }
}

/// How the dispatcher matches orders to nurses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchSettings {
    /// Automatic dispatch. Off, orders wait for a coordinator's manual
    /// assignment (an organisation that dispatches by phone, or tests of
    /// the nurse side alone).
    pub auto: bool,
    /// `risk` (the default: every window, the min-cost assignment that least
    /// risks missing the promise), `batch` (least total arrival every
    /// window) or `greedy` (each order at once to its best-ranked nurse).
    pub policy: String,
    /// The batch window.
    pub batch_window_ms: u64,
    /// Time a nurse has to answer an offer.
    pub offer_ttl_secs: u64,
    /// Candidate search radius; an escalated order is searched wider.
    pub search_radius_m: f64,
    pub escalated_radius_m: f64,
    /// Nearest candidates scored per order.
    pub candidates: usize,
    /// An order without a candidate is tried again this often.
    pub retry_secs: u64,
    /// An order that has had no free candidate for this long is escalated
    /// (with a candidate, it is escalated as soon as the best one would be
    /// late).
    pub escalate_after_secs: u64,
    /// Straight-line ETA: distance × detour factor ÷ speed + overhead.
    pub detour_factor: f64,
    pub speed_kmh: f64,
    pub fixed_overhead_s: u32,
    /// Per service area overrides of the three above.
    pub area_eta: Vec<AreaEtaOverride>,
    /// An OSRM-compatible server (`http://host:5000`): its table API gives
    /// road ETAs, straight-line when it fails. Unset: straight-line only.
    pub osrm_url: Option<String>,
    pub osrm_profile: String,
    pub osrm_timeout_ms: u64,
    /// Continuity: seconds of arrival credited, in ranking, to the patient's
    /// nurse from before (0 disables; at most 600).
    pub continuity_credit_s: u32,
    /// A booked order is released to dispatch at its time minus the
    /// predicted travel of its reserved nurse (or `booking_max_travel_secs`
    /// when unknown) minus this buffer.
    pub booking_buffer_secs: u64,
    /// The longest travel counted in a booking's lead.
    pub booking_max_travel_secs: u64,
    /// How often the booking worker looks for due bookings.
    pub booking_poll_ms: u64,
    /// Sharded dispatch: empty (the default) dispatches every order in
    /// every instance; `auto` takes an even share of the known regions;
    /// a comma-separated list of H3 cells (at `region_resolution`) takes
    /// those first. Either way a dead instance's regions are taken over
    /// when its lease runs out. The outbox relay routes `OrderCreated` to
    /// the region's stream when this is set: every instance of a
    /// deployment must agree on it being set and on the resolution.
    pub regions: String,
    /// H3 resolution of a region (0–7; 4 is about 1,800 km²).
    pub region_resolution: u8,
    /// A region lease's length; renewed every third of it, and its holder
    /// stops serving a fifth of it before it runs out.
    pub lease_ttl_s: u64,
    /// Demand forecast and repositioning: how often idle nurses get
    /// waiting-spot suggestions (seconds; 0 turns suggestions off).
    pub reposition_every_s: u64,
    /// How often each organisation's forecast is learnt again from its
    /// order history (seconds).
    pub reposition_relearn_s: u64,
    /// Days of order history the forecast learns from, and the most orders
    /// one learning reads (the newest).
    pub reposition_history_days: u32,
    pub reposition_history_max: u64,
    /// Exponential smoothing weight of the newest day, in (0, 1].
    pub reposition_alpha: f64,
    /// A cell counts as reachable from a spot within this travel time
    /// (straight-line ETA; the promise less a margin).
    pub reposition_reach_s: u32,
    /// Farthest a nurse is asked to move, and the nearest move worth a
    /// suggestion (metres).
    pub reposition_max_move_m: f64,
    pub reposition_min_move_m: f64,
    /// How long a suggestion holds (its `until`) before it is made again.
    pub reposition_hold_s: u64,
    /// Chained offers: a nurse whose visit is predicted to end within this
    /// many seconds is a candidate, her ETA counted from its end (0 off;
    /// at most 7200). Off by default: in the simulator, committing a busy
    /// nurse early costs on-time share (README, Simulator).
    pub chain_horizon_s: u32,
    /// The `risk` policy's late reserve: an order no candidate can reach
    /// in time any more is offered only while more than this many free
    /// candidates are left for it (0 off, the default). The simulator
    /// measures the trade (README, Simulator): with 2, more orders on time
    /// and at the morning peak, but more residents never served.
    pub risk_late_reserve: u32,
    /// A next job chosen already past its promise is taken back once the
    /// predicted arrival is this much later than the arrival it was chosen
    /// for (at most 3600); otherwise the promise itself is the limit.
    pub chain_overrun_tolerance_s: u32,
}

/// ETA settings for orders inside one service area.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaEtaOverride {
    pub area_id: String,
    pub detour_factor: Option<f64>,
    pub speed_kmh: Option<f64>,
    pub fixed_overhead_s: Option<u32>,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            auto: true,
            policy: "risk".to_owned(),
            batch_window_ms: 2_000,
            offer_ttl_secs: yixin_domain::DEFAULT_OFFER_TTL_SECS.unsigned_abs(),
            search_radius_m: 8_000.0,
            escalated_radius_m: 25_000.0,
            candidates: 20,
            retry_secs: 5,
            escalate_after_secs: 120,
            detour_factor: 1.4,
            speed_kmh: 25.0,
            fixed_overhead_s: 60,
            area_eta: Vec::new(),
            osrm_url: None,
            osrm_profile: "driving".to_owned(),
            osrm_timeout_ms: 1_500,
            continuity_credit_s: 300,
            booking_buffer_secs: 900,
            booking_max_travel_secs: 1_800,
            booking_poll_ms: 2_000,
            regions: String::new(),
            region_resolution: 4,
            lease_ttl_s: 15,
            reposition_every_s: 60,
            reposition_relearn_s: 3_600,
            reposition_history_days: 28,
            reposition_history_max: 100_000,
            reposition_alpha: 0.3,
            reposition_reach_s: 20 * 60,
            reposition_max_move_m: 4_000.0,
            reposition_min_move_m: 600.0,
            reposition_hold_s: 30 * 60,
            // Off, as `yixin_dispatch_core::ChainRules::default()`.
            chain_horizon_s: 0,
            chain_overrun_tolerance_s: 300,
            risk_late_reserve: 0,
        }
    }
}

/// Nurse phones: their connection, position ingest and presence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingSettings {
    /// A nurse with no fix for this long is stale: not a candidate.
    pub stale_after_secs: u64,
    /// A dropped connection keeps the nurse a candidate this long.
    pub disconnect_grace_secs: u64,
    /// How often the server pings a phone.
    pub heartbeat_secs: u64,
    /// A phone silent (not even a pong) this long is disconnected.
    pub client_timeout_secs: u64,
    /// Largest frame a phone may send; larger ones close the socket (1009).
    pub max_frame_bytes: usize,
    /// Sustained frames per second per connection, and the burst allowed
    /// above it; a flood past them closes the socket (1008).
    pub frames_per_second: u32,
    pub frames_burst: u32,
    /// Most fixes in one `locations` frame or HTTP call.
    pub max_fixes_per_batch: usize,
    /// Fixes less accurate than this (metres) are refused.
    pub max_accuracy_m: f64,
    /// The trail (proof of visit) keeps at most one fix per nurse per this
    /// many seconds, in Redis (bounded stream) and the database.
    pub trail_interval_secs: u64,
    /// Length bound of the trail stream in Redis.
    pub trail_stream_max_len: usize,
    /// How often latest positions are written to Redis (coalesced).
    pub flush_interval_ms: u64,
}

impl Default for TrackingSettings {
    fn default() -> Self {
        Self {
            stale_after_secs: 60,
            disconnect_grace_secs: 120,
            heartbeat_secs: 15,
            client_timeout_secs: 45,
            max_frame_bytes: 16 * 1024,
            frames_per_second: 20,
            frames_burst: 60,
            max_fixes_per_batch: 100,
            max_accuracy_m: 500.0,
            trail_interval_secs: 5,
            trail_stream_max_len: 100_000,
            flush_interval_ms: 100,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrderSettings {
    /// Orders one resident may place per minute, per order-intake instance;
    /// more get a 429 with `Retry-After`.
    pub per_resident_per_minute: u32,
}

impl Default for OrderSettings {
    fn default() -> Self {
        Self {
            per_resident_per_minute: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// Largest request body accepted; larger ones get a 413.
    pub body_limit_bytes: usize,
    /// How long in-flight requests get to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// HTTP worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// `Retry-After` (seconds) of a 503 answered while a backend is unavailable.
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://…` for production, `sqlite://…` for a chosen file. Unset:
    /// the embedded SQLite database in `data_dir`.
    pub url: Option<SecretString>,
    /// Where the embedded backend keeps its files.
    pub data_dir: PathBuf,
    pub max_connections: u32,
    /// Apply pending migrations at start-up. Turn off where a release step
    /// runs `yixin migrate` instead (several replicas starting at once).
    pub migrate_on_start: bool,
    /// Longest wait for a pooled connection (or a new one); past it a
    /// request gets 503 `unavailable`.
    pub acquire_timeout_ms: u64,
    /// Longest wait to open a connection.
    pub connect_timeout_ms: u64,
    /// PostgreSQL `statement_timeout` of every connection (0: none).
    pub statement_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://…` (one server) or `redis+cluster://host:port,host:port`
    /// (a Redis Cluster, through seed nodes). Unset: the in-process queue.
    pub url: Option<SecretString>,
    /// Prefix of every key, stream and channel, so several deployments (or
    /// tests) can share one Redis.
    pub key_prefix: String,
    /// A stream entry delivered this many times without an ack goes to the
    /// dead-letter stream.
    pub max_deliveries: u32,
    /// Longest wait for a Redis command's reply, or for a connection.
    pub command_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JwtAlgorithm {
    /// Shared secret (`auth.jwt_secret`).
    Hs256,
    /// RSA public key (`auth.public_key_pem`), private key only to mint.
    Rs256,
    /// Ed25519 public key (`auth.public_key_pem`), private key only to mint.
    EdDsa,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub algorithm: JwtAlgorithm,
    /// HS256 signing secret; at least 32 bytes.
    pub jwt_secret: Option<SecretString>,
    /// RS256/EdDSA: the PEM public key tokens are verified with.
    pub public_key_pem: Option<String>,
    /// RS256/EdDSA: the PEM private key, only where tokens are minted.
    pub private_key_pem: Option<SecretString>,
    /// Lifetime of minted tokens.
    pub token_ttl_secs: u64,
    /// Clock skew tolerated when checking `exp`.
    pub leeway_secs: u64,
    /// `POST /v1/auth/dev-token`. Unset: on for the embedded default, off
    /// when a database or Redis URL is configured.
    pub dev_login: Option<bool>,
    /// Lets dev login run on an address other than loopback (anyone who
    /// reaches the port can then mint any token). Off: such a start is
    /// refused. On: it starts, with a warning in the log at every start.
    pub dev_login_public: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info,yixin=debug`. `RUST_LOG` wins.
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoSettings {
    /// Create the demo organisation and its Shuangfu service area at start-up.
    /// Unset: on for the embedded default only.
    pub enabled: Option<bool>,
    pub org_id: String,
    pub org_name: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 64 * 1024,
            shutdown_timeout_secs: 30,
            workers: None,
            retry_after_secs: 5,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            data_dir: PathBuf::from("data"),
            max_connections: 20,
            migrate_on_start: true,
            acquire_timeout_ms: 1500,
            connect_timeout_ms: 1500,
            statement_timeout_ms: 5000,
        }
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "yixin:".to_owned(),
            max_deliveries: 5,
            command_timeout_ms: 1000,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::Hs256,
            jwt_secret: None,
            public_key_pem: None,
            private_key_pem: None,
            token_ttl_secs: 24 * 3600,
            leeway_secs: 30,
            dev_login: None,
            dev_login_public: false,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

impl Default for DemoSettings {
    fn default() -> Self {
        Self {
            enabled: None,
            org_id: "demo".to_owned(),
            org_name: "双福街道示范机构 Shuangfu demo".to_owned(),
        }
    }
}

impl Settings {
    /// True when neither a database nor a Redis URL is configured: SQLite in
    /// `data_dir` and the in-process queue, the one-command default.
    pub fn is_embedded(&self) -> bool {
        self.database.url.is_none() && self.redis.url.is_none()
    }

    pub fn dev_login_enabled(&self) -> bool {
        self.auth.dev_login.unwrap_or_else(|| self.is_embedded())
    }

    /// Whether dev login may run on the address the server is bound to:
    /// see [`dev_login_exposure`].
    pub fn dev_login_exposure(&self, bound: SocketAddr) -> Result<DevLoginExposure, ConfigError> {
        dev_login_exposure(self.dev_login_enabled(), bound, self.auth.dev_login_public)
    }

    pub fn demo_enabled(&self) -> bool {
        self.demo.enabled.unwrap_or_else(|| self.is_embedded())
    }

    /// Defaults, then `file` (when given, it must exist), then the
    /// environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// [`Settings::load`] with the environment passed in, for tests.
    pub fn load_from(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut prefixed = config::Map::new();
        let mut database_url = None;
        let mut redis_url = None;
        let prefix = format!("{ENV_PREFIX}_");
        for (key, value) in env {
            if key == "DATABASE_URL" {
                database_url = Some(value);
            } else if key == "REDIS_URL" {
                redis_url = Some(value);
            } else if let Some(rest) = key.strip_prefix(&prefix) {
                // `YIXIN_SERVER__BODY_LIMIT_BYTES` → `server.body_limit_bytes`
                let path = rest.to_ascii_lowercase().replace("__", ".");
                if !path.is_empty() {
                    prefixed.insert(path, value);
                }
            }
        }

        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(
                config::File::from(file)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        for (path, value) in prefixed {
            builder = builder
                .set_override(path.as_str(), value)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        // The conventional variables win over everything: that is what
        // container platforms and managed databases set.
        if let Some(url) = database_url.filter(|u| !u.is_empty()) {
            builder = builder
                .set_override("database.url", url)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        if let Some(url) = redis_url.filter(|u| !u.is_empty()) {
            builder = builder
                .set_override("redis.url", url)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        let raw = builder
            .build()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let settings: Settings = serde_path_to_error::deserialize(raw).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Key {
                key,
                message: e.into_inner().to_string(),
            }
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Rules serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key_err = |key: &str, message: &str| ConfigError::Key {
            key: key.to_owned(),
            message: message.to_owned(),
        };
        if self.server.body_limit_bytes == 0 {
            return Err(key_err("server.body_limit_bytes", "must be at least 1"));
        }
        if self.server.workers == Some(0) {
            return Err(key_err("server.workers", "must be at least 1"));
        }
        if self.database.max_connections == 0 {
            return Err(key_err("database.max_connections", "must be at least 1"));
        }
        if self.redis.max_deliveries == 0 {
            return Err(key_err("redis.max_deliveries", "must be at least 1"));
        }
        for (key, value) in [
            (
                "database.acquire_timeout_ms",
                self.database.acquire_timeout_ms,
            ),
            (
                "database.connect_timeout_ms",
                self.database.connect_timeout_ms,
            ),
            ("redis.command_timeout_ms", self.redis.command_timeout_ms),
            ("retention.outbox_hours", self.retention.outbox_hours),
            ("retention.trail_days", self.retention.trail_days),
            ("retention.interval_secs", self.retention.interval_secs),
            ("retention.batch", self.retention.batch),
        ] {
            if value == 0 {
                return Err(key_err(key, "must be at least 1"));
            }
        }
        if self.retention.visit_trail_days < self.retention.trail_days {
            return Err(key_err(
                "retention.visit_trail_days",
                "must be at least retention.trail_days (a visit's trail is its proof)",
            ));
        }
        if self.auth.token_ttl_secs == 0 {
            return Err(key_err("auth.token_ttl_secs", "must be at least 1"));
        }
        if self.orders.per_resident_per_minute == 0 {
            return Err(key_err(
                "orders.per_resident_per_minute",
                "must be at least 1",
            ));
        }
        if self.demo.org_id.trim().is_empty() {
            return Err(key_err("demo.org_id", "must not be empty"));
        }
        self.dashboard.validate()?;
        self.signin.validate()?;
        self.safety.validate()?;
        self.webhooks.validate()?;
        self.notifications.validate()?;
        for (key, url) in [
            ("database.url", &self.database.url),
            ("redis.url", &self.redis.url),
        ] {
            if let Some(url) = url {
                check_url_scheme(key, url)?;
            }
        }
        Ok(())
    }
}

/// Where dev login (a password-less token for any role) would be reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevLoginExposure {
    /// Dev login is off.
    Off,
    /// On, reachable from this machine only.
    Loopback,
    /// On, on a non-loopback address, because `auth.dev_login_public` says
    /// so: the caller logs a loud warning.
    Public,
}

/// The rule for dev login and the bound address: off is always fine; on a
/// loopback address (127.0.0.0/8, ::1) too; on any other address
/// (including 0.0.0.0 and ::) only with `auth.dev_login_public = true`,
/// otherwise an error naming both keys.
pub fn dev_login_exposure(
    dev_login: bool,
    bound: SocketAddr,
    public_allowed: bool,
) -> Result<DevLoginExposure, ConfigError> {
    if !dev_login {
        return Ok(DevLoginExposure::Off);
    }
    if bound.ip().is_loopback() {
        return Ok(DevLoginExposure::Loopback);
    }
    if public_allowed {
        return Ok(DevLoginExposure::Public);
    }
    Err(ConfigError::Key {
        key: "auth.dev_login".to_owned(),
        message: format!(
            "dev login (a token for any role without a password) is on and the server listens \
             on {bound}, which is not a loopback address: turn it off (auth.dev_login = false), \
             listen on 127.0.0.1, or set auth.dev_login_public = true to expose it on purpose"
        ),
    })
}

fn check_url_scheme(key: &str, url: &SecretString) -> Result<(), ConfigError> {
    use secrecy::ExposeSecret;
    let url = url.expose_secret();
    let allowed: &[&str] = if key == "database.url" {
        &["postgres://", "postgresql://", "sqlite:"]
    } else {
        &[
            "redis://",
            "rediss://",
            "unix://",
            "redis+unix://",
            "redis+cluster://",
            "rediss+cluster://",
        ]
    };
    if allowed.iter().any(|scheme| url.starts_with(scheme)) {
        Ok(())
    } else {
        // Never echo the URL: it usually holds a password.
        Err(ConfigError::Key {
            key: key.to_owned(),
            message: format!("must start with one of {}", allowed.join(", ")),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration key `{key}`: {message}")]
    Key { key: String, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn an_escalation_webhook_needs_a_signing_key() {
        let mut s = Settings::default();
        assert_eq!(s.safety.arrival_radius_m, 200.0);
        assert_eq!(s.safety.escalate_after_secs, 60);
        s.safety.escalation_webhooks = vec![EscalationWebhook {
            org_id: "demo".into(),
            url: "https://alarms.example.org/hook".into(),
        }];
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("safety.escalation_secret"), "{err}");
        s.safety.escalation_secret = Some(SecretString::from("k".repeat(32)));
        s.validate().unwrap();
        assert_eq!(
            s.safety.escalation_url("demo"),
            Some("https://alarms.example.org/hook")
        );
        assert_eq!(s.safety.escalation_url("other"), None);
        s.safety.arrival_radius_m = -1.0;
        assert!(s.validate().is_err());
    }

    #[test]
    fn defaults_are_the_embedded_platform() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.server.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.body_limit_bytes, 65536);
        assert!(s.is_embedded());
        assert!(s.dev_login_enabled());
        assert!(s.demo_enabled());
    }

    #[test]
    fn waits_and_retention_are_bounded_and_configurable() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.database.acquire_timeout_ms, 1500);
        assert_eq!(s.database.statement_timeout_ms, 5000);
        assert_eq!(s.redis.command_timeout_ms, 1000);
        assert_eq!(s.retention.outbox_hours, 24);
        let s = Settings::load_from(
            None,
            env(&[
                ("YIXIN_DATABASE__ACQUIRE_TIMEOUT_MS", "800"),
                ("YIXIN_RETENTION__TRAIL_DAYS", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(s.database.acquire_timeout_ms, 800);
        assert_eq!(s.retention.trail_days, 7);
        for (key, value, named) in [
            (
                "YIXIN_DATABASE__ACQUIRE_TIMEOUT_MS",
                "0",
                "database.acquire_timeout_ms",
            ),
            (
                "YIXIN_RETENTION__VISIT_TRAIL_DAYS",
                "3",
                "retention.visit_trail_days",
            ),
        ] {
            let err = Settings::load_from(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{err}");
        }
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let s = Settings::load_from(
            None,
            env(&[
                ("YIXIN_SERVER__ADDR", "0.0.0.0:9000"),
                ("YIXIN_SERVER__BODY_LIMIT_BYTES", "1024"),
                ("YIXIN_LOG__FORMAT", "json"),
                ("DATABASE_URL", "postgres://u:p@db/yixin"),
                ("UNRELATED", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.addr.port(), 9000);
        assert_eq!(s.server.body_limit_bytes, 1024);
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(
            s.database.url.as_ref().unwrap().expose_secret(),
            "postgres://u:p@db/yixin"
        );
        assert!(!s.is_embedded());
        assert!(!s.dev_login_enabled(), "dev login is off in production");
    }

    #[test]
    fn dev_login_can_be_forced_on() {
        let s = Settings::load_from(
            None,
            env(&[
                ("REDIS_URL", "redis://127.0.0.1"),
                ("YIXIN_AUTH__DEV_LOGIN", "true"),
            ]),
        )
        .unwrap();
        assert!(s.dev_login_enabled());
    }

    #[test]
    fn dev_login_on_a_public_address_needs_an_explicit_yes() {
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        // Off: any address.
        for addr in ["0.0.0.0:8080", "10.1.2.3:80", "[::]:8080", "127.0.0.1:8080"] {
            assert_eq!(
                dev_login_exposure(false, at(addr), false).unwrap(),
                DevLoginExposure::Off
            );
        }
        // On, loopback: fine without the opt-in.
        for addr in ["127.0.0.1:8080", "127.9.9.9:1", "[::1]:8080"] {
            assert_eq!(
                dev_login_exposure(true, at(addr), false).unwrap(),
                DevLoginExposure::Loopback
            );
        }
        // On, anything else: refused, unless opted in.
        for addr in [
            "0.0.0.0:8080",
            "[::]:8080",
            "192.168.1.5:8080",
            "[2001:db8::1]:80",
        ] {
            let err = dev_login_exposure(true, at(addr), false)
                .unwrap_err()
                .to_string();
            assert!(err.contains("auth.dev_login_public"), "{err}");
            assert!(err.contains(addr), "{err}");
            assert_eq!(
                dev_login_exposure(true, at(addr), true).unwrap(),
                DevLoginExposure::Public
            );
        }
    }

    #[test]
    fn the_embedded_default_refuses_a_public_address_until_told() {
        let public = "0.0.0.0:8080".parse::<SocketAddr>().unwrap();
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert!(s.dev_login_exposure(public).is_err());
        let s = Settings::load_from(None, env(&[("YIXIN_AUTH__DEV_LOGIN", "false")])).unwrap();
        assert_eq!(s.dev_login_exposure(public).unwrap(), DevLoginExposure::Off);
        let s =
            Settings::load_from(None, env(&[("YIXIN_AUTH__DEV_LOGIN_PUBLIC", "true")])).unwrap();
        assert_eq!(
            s.dev_login_exposure(public).unwrap(),
            DevLoginExposure::Public
        );
    }

    #[test]
    fn malformed_value_names_the_key() {
        let err = Settings::load_from(None, env(&[("YIXIN_SERVER__BODY_LIMIT_BYTES", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.body_limit_bytes"), "{err}");
    }

    #[test]
    fn unknown_key_names_the_key() {
        let err = Settings::load_from(None, env(&[("YIXIN_SERVER__PORTT", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("portt"), "{err}");
        let err = Settings::load_from(None, env(&[("YIXIN_NOPE", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn bad_url_scheme_is_refused_without_echoing_the_url() {
        let err = Settings::load_from(None, env(&[("DATABASE_URL", "mysql://u:secret@h/db")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.url"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn a_redis_cluster_url_is_accepted() {
        let url = "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000";
        let s = Settings::load_from(None, env(&[("REDIS_URL", url)])).unwrap();
        assert_eq!(s.redis.url.as_ref().unwrap().expose_secret(), url);
        let err = Settings::load_from(None, env(&[("REDIS_URL", "cluster://:pw@h:1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis+cluster://"), "{err}");
    }

    #[test]
    fn file_layer_sits_under_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("yixin.toml");
        std::fs::write(
            &path,
            "[server]\naddr = \"127.0.0.1:7000\"\nworkers = 3\n[log]\nfilter = \"debug\"\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&path), env(&[("YIXIN_SERVER__WORKERS", "5")])).unwrap();
        assert_eq!(s.server.addr.port(), 7000);
        assert_eq!(s.server.workers, Some(5));
        assert_eq!(s.log.filter, "debug");
    }

    #[test]
    fn the_tile_url_is_empty_by_default_and_checked() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.dashboard.tile_url, "");
        let ok = "https://{s}.tiles.example.org/{z}/{x}/{y}.png";
        let s = Settings::load_from(None, env(&[("YIXIN_DASHBOARD__TILE_URL", ok)])).unwrap();
        assert_eq!(s.dashboard.tile_url, ok);
        for bad in [
            "ftp://tiles.example.org/{z}/{x}/{y}.png",
            "https://tiles.example.org/{z}/{x}.png",
            "https://tiles.example.org/{z}/{x}/{y}.png; script-src *",
            "https://tiles.example.org/{z}/{x}/{y}.png 'unsafe-inline'",
        ] {
            let err = Settings::load_from(None, env(&[("YIXIN_DASHBOARD__TILE_URL", bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("dashboard.tile_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = Settings::load_from(None, env(&[("YIXIN_AUTH__JWT_SECRET", "topsecretvalue")]))
            .unwrap();
        assert!(!format!("{s:?}").contains("topsecretvalue"));
        assert_eq!(
            s.auth.jwt_secret.as_ref().unwrap().expose_secret(),
            "topsecretvalue"
        );
    }
}
