//! Simulated phones of a whole district against a running platform, over
//! its public HTTP and WebSocket API: nurses on shift streaming positions,
//! answering offers (accept, decline, or let them lapse), riding to the
//! door and stepping through the visit (`en_route` → `arrived` → `started`
//! → `completed`); residents ordering services of the catalogue at a rate.
//!
//! Measures, from the moment each `POST /v1/orders` is sent: the first
//! offer frame for it on any phone, the `assigned` frame of the nurse who
//! won it, and her `arrived` step. `yixin-load city` prints them; `yixin
//! serve --demo` runs the same phones in-process so the dashboard shows a
//! live district.
//!
//! Time can run faster than the clock (`speedup`): nurses ride and visits
//! last `1/speedup` as long, so a short run sees whole visits. Latencies
//! to offer and accept are not scaled (they are the platform's and the
//! phones' answer delay ÷ speedup); arrival latency is in scaled time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// The demo service area around Shuangfu, kept inside with a margin.
const SOUTH: f64 = 29.37;
const NORTH: f64 = 29.42;
const WEST: f64 = 106.29;
const EAST: f64 = 106.34;
/// Riding speed, km/h (the dispatcher's straight-line ETA default).
const SPEED_KMH: f64 = 25.0;

/// What to simulate.
#[derive(Debug, Clone, clap::Args)]
pub struct CityArgs {
    /// Base URL of a running platform with dev login on.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, default_value = "demo")]
    pub org: String,
    /// Nurse phones on shift.
    #[arg(long, default_value_t = 200)]
    pub nurses: usize,
    /// Orders placed a minute, open loop.
    #[arg(long, default_value_t = 60.0)]
    pub orders_per_minute: f64,
    /// Simulated time ÷ wall time for riding and visits.
    #[arg(long, default_value_t = 10.0)]
    pub speedup: f64,
    /// A phone sends its position this often, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub fix_secs: f64,
    /// Probability a nurse accepts an offer; declines with `--decline`,
    /// else lets it lapse.
    #[arg(long, default_value_t = 0.85)]
    pub accept: f64,
    #[arg(long, default_value_t = 0.10)]
    pub decline: f64,
    /// Measured duration; ordering stops after it, then up to 60 s more
    /// for the last arrivals.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Take over what an earlier run against the organisation left behind:
    /// its open orders are cancelled (completed where the visit had
    /// started), and its simulated nurses this run does not use are put
    /// off shift and deactivated. `yixin serve --demo` does it on every
    /// start. (The simulated nurses themselves are always reused, found
    /// by name and phone number, never added twice.)
    #[arg(long)]
    pub take_over: bool,
}

/// Nurses on shift in the demo district.
pub const DEMO_NURSES: usize = 24;

impl CityArgs {
    /// A live district for `yixin serve --demo` against `url` that looks
    /// like a real daytime in Shuangfu, ten times faster.
    ///
    /// From the simulator's default scenario (`Scenario::shuangfu`): about
    /// 260 orders a day, 6.4 % of them in an average hour between 08:00 and
    /// 20:00, so some 16 an hour; a fleet of 45 whose early and late shifts
    /// put about 20 on at a time, kept near 65 % busy (53 minutes of work an
    /// order). At `speedup` 10 rides and visits take a tenth of the time, so
    /// orders come ten times as often: 2.5 a minute for 24 nurses. That
    /// keeps a dozen orders open (most of them in service), nearly all
    /// reached within 30 minutes, and now and then one escalated when
    /// nobody with the skill is free.
    pub fn demo(url: String) -> Self {
        Self {
            url,
            org: "demo".to_owned(),
            nurses: DEMO_NURSES,
            orders_per_minute: 2.5,
            speedup: 10.0,
            fix_secs: 2.0,
            accept: 0.85,
            decline: 0.10,
            // Ten years: until the platform stops.
            seconds: 10 * 365 * 24 * 3600,
            seed: 1,
            json: false,
            take_over: true,
        }
    }
}

/// The name and phone number of simulated nurse `i` (0-based): her stable
/// identity across runs.
pub fn simulated_nurse(i: usize) -> (String, String) {
    (
        format!("护士{}", i + 1),
        format!("137{:08}", i % 100_000_000),
    )
}

/// Which simulated nurse (0-based) a roster entry is, if it is one.
fn simulated_index(name: &str, phone: &str) -> Option<usize> {
    let n: usize = name.strip_prefix("护士")?.parse().ok()?;
    let i = n.checked_sub(1)?;
    (simulated_nurse(i) == (name.to_owned(), phone.to_owned())).then_some(i)
}

/// One xorshift stream per phone: cheap and reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn point(&mut self) -> (f64, f64) {
        (
            SOUTH + (NORTH - SOUTH) * self.unit(),
            WEST + (EAST - WEST) * self.unit(),
        )
    }
}

/// When each order reached each stage, from the resident's POST.
#[derive(Default)]
struct Timings {
    placed: HashMap<String, Instant>,
    offered: HashMap<String, Instant>,
    accepted: HashMap<String, Instant>,
    arrived: HashMap<String, Instant>,
    completed: usize,
    declined: usize,
    lapsed: usize,
    failed_orders: usize,
    errors: Vec<String>,
}

fn lock(t: &Mutex<Timings>) -> std::sync::MutexGuard<'_, Timings> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a run measured; latencies in ms.
#[derive(Debug, Clone)]
pub struct CityReport {
    pub summary: Value,
}

/// A dev-login token (the target must have dev login on).
pub async fn token(
    http: &reqwest::Client,
    url: &str,
    role: &str,
    sub: &str,
    org: &str,
) -> anyhow::Result<String> {
    let reply: Value = http
        .post(format!("{url}/v1/auth/dev-token"))
        .json(&json!({"role": role, "sub": sub, "org": org}))
        .send()
        .await?
        .error_for_status()
        .context("dev login (is it enabled on the target?)")?
        .json()
        .await?;
    reply["token"]
        .as_str()
        .map(str::to_owned)
        .context("no token in the dev login reply")
}

/// Adds a nurse to the roster through the coordinator API; her id.
pub async fn add_nurse(
    http: &reqwest::Client,
    url: &str,
    coordinator: &str,
    name: &str,
    phone: &str,
    skills: &[impl AsRef<str>],
) -> anyhow::Result<String> {
    let skills: Vec<&str> = skills.iter().map(AsRef::as_ref).collect();
    let reply: Value = http
        .post(format!("{url}/v1/dispatch/nurses"))
        .bearer_auth(coordinator)
        .json(&json!({"name": name, "phone": phone, "skills": skills}))
        .send()
        .await?
        .error_for_status()
        .context("adding a nurse (POST /v1/dispatch/nurses)")?
        .json()
        .await?;
    let id = reply["id"]
        .as_str()
        .map(str::to_owned)
        .context("no id for the new nurse")?;
    qualify_nurse(http, url, coordinator, &id).await?;
    Ok(id)
}

/// Enters credentials that meet every service's requirements (registered
/// in 2015, 主管护师, every certificate kind, none expiring) and verifies
/// them: without, the dispatch gate offers the nurse no work.
pub async fn qualify_nurse(
    http: &reqwest::Client,
    url: &str,
    coordinator: &str,
    id: &str,
) -> anyhow::Result<()> {
    let certificates: Vec<Value> = [
        "picc",
        "wound_stoma",
        "maternal_infant",
        "rehab",
        "oral_care",
    ]
    .iter()
    .map(|code| {
        json!({"code": code, "number": format!("SIM-{code}-{}", &id[..id.len().min(8)]),
                   "issued_on": "2020-01-01", "expires_on": null})
    })
    .collect();
    http.put(format!("{url}/v1/dispatch/nurses/{id}/credentials"))
        .bearer_auth(coordinator)
        .json(&json!({
            "licence_no": format!("SIM{}", &id[..id.len().min(12)]),
            "first_registered_on": "2015-01-01",
            "title": "supervisor_nurse",
            "certificates": certificates,
        }))
        .send()
        .await?
        .error_for_status()
        .context("entering credentials (PUT /v1/dispatch/nurses/{id}/credentials)")?;
    http.post(format!("{url}/v1/dispatch/nurses/{id}/credentials/verify"))
        .bearer_auth(coordinator)
        .send()
        .await?
        .error_for_status()
        .context("verifying credentials (POST /v1/dispatch/nurses/{id}/credentials/verify)")?;
    Ok(())
}

/// One roster entry as the takeover needs it.
struct RosterNurse {
    id: String,
    on_shift: bool,
    active: bool,
    /// Which simulated nurse she is, if one.
    simulated: Option<usize>,
    raw: Value,
}

/// The organisation's roster, read once at the start.
struct Roster {
    nurses: Vec<RosterNurse>,
}

impl Roster {
    async fn read(http: &reqwest::Client, url: &str, coordinator: &str) -> anyhow::Result<Self> {
        let list: Value = http
            .get(format!("{url}/v1/dispatch/nurses"))
            .bearer_auth(coordinator)
            .send()
            .await?
            .error_for_status()
            .context("reading the roster (GET /v1/dispatch/nurses)")?
            .json()
            .await?;
        let mut nurses: Vec<RosterNurse> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| {
                let id = n["id"].as_str()?.to_owned();
                let name = n["name"].as_str().unwrap_or_default();
                let phone = n["phone"].as_str().unwrap_or_default();
                Some(RosterNurse {
                    id,
                    on_shift: n["shift"] == "on",
                    active: n["active"].as_bool().unwrap_or(true),
                    simulated: simulated_index(name, phone),
                    raw: n.clone(),
                })
            })
            .collect();
        // Of duplicates (earlier versions added the fleet again on every
        // start), the active one first, then the oldest id, is reused.
        nurses.sort_by(|a, b| b.active.cmp(&a.active).then_with(|| a.id.cmp(&b.id)));
        Ok(Self { nurses })
    }
}

/// Makes an existing simulated nurse fit for this run (active, this run's
/// skills); her id.
async fn reuse_nurse(
    http: &reqwest::Client,
    url: &str,
    coordinator: &str,
    nurse: &Value,
    skills: &[String],
) -> anyhow::Result<String> {
    let id = nurse["id"].as_str().context("a roster entry without id")?;
    let mut has: Vec<&str> = nurse["skills"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    has.sort_unstable();
    let same_skills = has.iter().copied().eq(skills.iter().map(String::as_str));
    if !same_skills || nurse["active"] != true {
        http.patch(format!("{url}/v1/dispatch/nurses/{id}"))
            .bearer_auth(coordinator)
            .json(&json!({"skills": skills, "active": true}))
            .send()
            .await?
            .error_for_status()
            .context("updating a simulated nurse (PATCH /v1/dispatch/nurses/{id})")?;
    }
    if nurse["verification"] != "verified" {
        qualify_nurse(http, url, coordinator, id).await?;
    }
    Ok(id.to_owned())
}

/// Order statuses that are neither completed nor cancelled.
const OPEN: &str =
    "awaiting_review,scheduled,pending,offered,escalated,assigned,en_route,arrived,in_service";
/// Why the takeover cancels an earlier run's orders.
pub const TAKEOVER_REASON: &str = "演示重启：上一轮模拟的订单已关闭 (demo restarted: the previous run's simulated order was closed)";

/// Closes out what an earlier run left: every open order of the
/// organisation is cancelled with [`TAKEOVER_REASON`], or completed by its
/// nurse if the visit had started (a started visit cannot be cancelled);
/// then the simulated nurses not in `keep` that are still on shift go off
/// shift and are deactivated. Orders are closed first because a nurse with
/// a job cannot go off shift.
async fn take_over(
    http: &reqwest::Client,
    url: &str,
    coordinator: &str,
    org: &str,
    roster: &Roster,
    keep: &[&str],
    services: &[Service],
) -> anyhow::Result<()> {
    let mut closed = 0usize;
    // A few rounds: an order may move (an offer accepted by a phone of
    // the dead run's platform state) while it is being closed.
    for _ in 0..5 {
        let open: Value = http
            .get(format!("{url}/v1/dispatch/orders?status={OPEN}&limit=500"))
            .bearer_auth(coordinator)
            .send()
            .await?
            .error_for_status()
            .context("listing open orders (GET /v1/dispatch/orders)")?
            .json()
            .await?;
        let open = open.as_array().cloned().unwrap_or_default();
        if open.is_empty() {
            break;
        }
        for o in &open {
            let Some(id) = o["id"].as_str() else { continue };
            let reply = if o["status"] == "in_service" {
                let Some(nurse) = o["nurse_id"].as_str() else {
                    continue;
                };
                let token = token(http, url, "nurse", nurse, org).await?;
                // The visit record first (else 422 `record_required`); one
                // may already exist (then this is an amendment).
                let template = services
                    .iter()
                    .find(|s| Some(s.code.as_str()) == o["service_code"].as_str())
                    .map(|s| s.record.clone())
                    .unwrap_or_else(|| json!({"values": {}}));
                http.post(format!("{url}/v1/nurse/orders/{id}/record"))
                    .bearer_auth(&token)
                    .json(&template)
                    .send()
                    .await?;
                http.post(format!("{url}/v1/nurse/orders/{id}/progress"))
                    .bearer_auth(token)
                    .json(&json!({"step": "completed"}))
                    .send()
                    .await?
            } else {
                http.post(format!("{url}/v1/dispatch/orders/{id}/cancel"))
                    .bearer_auth(coordinator)
                    .json(&json!({"reason": TAKEOVER_REASON}))
                    .send()
                    .await?
            };
            if reply.status().is_success() {
                closed += 1;
            } else {
                // Moved meanwhile: the next round sees where it is now.
                tracing::debug!(order_id = id, status = %reply.status(), "order not closed this round");
            }
        }
    }
    let mut retired = 0usize;
    for n in roster
        .nurses
        .iter()
        .filter(|n| n.simulated.is_some() && !keep.contains(&n.id.as_str()))
    {
        if n.on_shift {
            let token = token(http, url, "nurse", &n.id, org).await?;
            let reply = http
                .post(format!("{url}/v1/nurse/shift"))
                .bearer_auth(token)
                .json(&json!({"state": "off"}))
                .send()
                .await?;
            if !reply.status().is_success() {
                tracing::warn!(nurse_id = %n.id, status = %reply.status(), "an old simulated nurse stays on shift");
            }
        }
        if n.active {
            http.patch(format!("{url}/v1/dispatch/nurses/{}", n.id))
                .bearer_auth(coordinator)
                .json(&json!({"active": false}))
                .send()
                .await?
                .error_for_status()
                .context("deactivating an old simulated nurse")?;
        }
        retired += 1;
    }
    tracing::info!(
        orders_closed = closed,
        nurses_retired = retired,
        "took over from the previous run"
    );
    Ok(())
}

/// A service residents can order: code, minutes, skills, the consent
/// version an order accepts, whether a coordinator screens its orders, and
/// a plausible visit record of it.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) code: String,
    category: String,
    minutes: f64,
    pub(crate) skills: Vec<String>,
    pub(crate) consent: String,
    pub(crate) screened: bool,
    pub(crate) record: Value,
}

/// A plausible visit record for a record form (`record_template` of the
/// catalogue): the middle of each number's range, the first choice, yes,
/// and a word for text.
fn sample_record(template: &Value) -> Value {
    let mut values = serde_json::Map::new();
    for f in template.as_array().into_iter().flatten() {
        let Some(code) = f["code"].as_str() else {
            continue;
        };
        let value = match f["type"].as_str() {
            Some("number") => {
                let (lo, hi) = (
                    f["min"].as_f64().unwrap_or(0.0),
                    f["max"].as_f64().unwrap_or(1.0),
                );
                json!(((lo + hi) / 2.0).round())
            }
            Some("choice") => f["choices"][0].clone(),
            Some("bool") => json!(true),
            _ => json!("ok"),
        };
        values.insert(code.to_owned(), value);
    }
    json!({"values": values, "notes": "simulated visit"})
}

pub(crate) async fn catalogue(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> anyhow::Result<Vec<Service>> {
    let v: Value = http
        .get(format!("{url}/v1/catalog"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()
        .context("GET /v1/catalog")?
        .json()
        .await?;
    // Either categories with their services, or a flat list of services.
    let mut services = Vec::new();
    let mut visit = |s: &Value, category: &str| {
        if let Some(code) = s["code"].as_str() {
            services.push(Service {
                code: code.to_owned(),
                category: s["category_code"].as_str().unwrap_or(category).to_owned(),
                minutes: s["duration_min"].as_f64().unwrap_or(30.0),
                skills: s["required_skills"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                consent: s["consent"]["version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                screened: s["requires_review"].as_bool().unwrap_or(false)
                    || s["requires_doctor_order"].as_bool().unwrap_or(false),
                record: sample_record(&s["record_template"]),
            });
        }
    };
    let categories = v["categories"].as_array().or_else(|| v.as_array());
    for c in categories.into_iter().flatten() {
        let code = c["code"].as_str().unwrap_or_default();
        for s in c["services"].as_array().into_iter().flatten() {
            visit(s, code);
        }
    }
    for s in v["services"].as_array().into_iter().flatten() {
        visit(s, "");
    }
    if services.is_empty() {
        bail!("the catalogue lists no service");
    }
    Ok(services)
}

/// Skills of nurse `i`: those of one category's services (round robin over
/// categories), every third nurse all of them, so every service has nurses.
fn skills_of(i: usize, services: &[Service]) -> Vec<String> {
    let mut categories: Vec<&str> = services.iter().map(|s| s.category.as_str()).collect();
    categories.sort_unstable();
    categories.dedup();
    let mut skills: Vec<String> = services
        .iter()
        .filter(|s| i.is_multiple_of(3) || s.category == categories[i % categories.len().max(1)])
        .flat_map(|s| s.skills.iter().cloned())
        .collect();
    skills.sort();
    skills.dedup();
    skills
}

/// Runs the district until `args.seconds` pass (plus the drain) or `stop`
/// turns true; the summary of what was measured.
pub async fn run(args: CityArgs, mut stop: watch::Receiver<bool>) -> anyhow::Result<CityReport> {
    if args.nurses == 0 || args.orders_per_minute <= 0.0 || args.speedup <= 0.0 {
        bail!("--nurses, --orders-per-minute and --speedup must be positive");
    }
    let url = args.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(32)
        .build()?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = &run[..8];
    let coordinator = token(
        &http,
        &url,
        "coordinator",
        &format!("city-{run}"),
        &args.org,
    )
    .await?;
    let services = Arc::new(catalogue(&http, &url, &coordinator).await?);

    // The roster: the simulated nurses already on it are reused.
    let roster = Roster::read(&http, &url, &coordinator).await?;
    let mut chosen: HashMap<usize, &Value> = HashMap::new();
    for n in &roster.nurses {
        if let Some(i) = n.simulated.filter(|i| *i < args.nurses) {
            chosen.entry(i).or_insert(&n.raw);
        }
    }
    let ids: Vec<anyhow::Result<(usize, String)>> = stream::iter(0..args.nurses)
        .map(|i| {
            let http = http.clone();
            let url = url.clone();
            let coordinator = coordinator.clone();
            let skills = skills_of(i, &services);
            let existing = chosen.get(&i).copied();
            async move {
                let id = match existing {
                    Some(n) => reuse_nurse(&http, &url, &coordinator, n, &skills).await?,
                    None => {
                        let (name, phone) = simulated_nurse(i);
                        add_nurse(&http, &url, &coordinator, &name, &phone, &skills).await?
                    }
                };
                anyhow::Ok((i, id))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let ids: Vec<(usize, String)> = ids.into_iter().collect::<anyhow::Result<_>>()?;
    if args.take_over {
        let keep: Vec<&str> = ids.iter().map(|(_, id)| id.as_str()).collect();
        take_over(
            &http,
            &url,
            &coordinator,
            &args.org,
            &roster,
            &keep,
            &services,
        )
        .await?;
    }

    let timings = Arc::new(Mutex::new(Timings::default()));
    let ws_base = url.replacen("http", "ws", 1);
    let mut phones = Vec::with_capacity(ids.len());
    for (i, id) in ids {
        let token = token(&http, &url, "nurse", &id, &args.org).await?;
        let phone = Phone {
            url: format!("{ws_base}/v1/nurse/ws?token={token}"),
            http: http.clone(),
            base: url.clone(),
            token: token.clone(),
            rng: Rng::new(args.seed.wrapping_mul(1_000_003).wrapping_add(i as u64)),
            args: args.clone(),
            services: services.clone(),
            timings: timings.clone(),
        };
        phones.push(tokio::spawn(phone.run(stop.clone())));
    }
    // Let the fleet feed reach the dispatcher before the first order.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Residents: a pool, each well under the per-resident rate limit.
    let pool = ((args.orders_per_minute / 5.0).ceil() as usize).max(8);
    let mut residents = Vec::with_capacity(pool);
    for r in 0..pool {
        residents.push(
            token(
                &http,
                &url,
                "resident",
                &format!("city-{run}-r{r}"),
                &args.org,
            )
            .await?,
        );
    }
    let period = Duration::from_secs_f64(60.0 / args.orders_per_minute);
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let mut rng = Rng::new(args.seed ^ 0xC17);
    let mut n: u64 = 0;
    let mut placing = Vec::new();
    loop {
        let due = started + period.mul_f64(n as f64);
        if due >= until {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        // Services a coordinator screens first are left out: the simulated
        // residents order what dispatches at once.
        let orderable: Vec<&Service> = services.iter().filter(|s| !s.screened).collect();
        let Some(service) = orderable
            .get((rng.unit() * orderable.len() as f64) as usize % orderable.len().max(1))
            .copied()
        else {
            bail!("the catalogue lists no service that dispatches without screening");
        };
        let (lat, lng) = rng.point();
        let body = json!({
            "service_code": service.code,
            "location": {"lat": lat, "lng": lng},
            "address": {"text": "重庆市江津区双福街道", "detail": format!("{} 栋 {} 号", n % 40 + 1, n % 300 + 1)},
            "contact": {"name": "王女士", "phone": "13812345678"},
            "notes": "simulated resident",
            "consent_version": service.consent,
        });
        let http = http.clone();
        let url = url.clone();
        let resident = residents[n as usize % residents.len()].clone();
        let timings = timings.clone();
        placing.push(tokio::spawn(async move {
            let sent = Instant::now();
            let reply = http
                .post(format!("{url}/v1/orders"))
                .bearer_auth(resident)
                .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                .json(&body)
                .send()
                .await;
            let id = match reply {
                Ok(r) if r.status().is_success() => r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned)),
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    lock(&timings)
                        .errors
                        .push(format!("order: {status} {text}"));
                    None
                }
                Err(e) => {
                    lock(&timings).errors.push(format!("order: {e}"));
                    None
                }
            };
            let mut t = lock(&timings);
            match id {
                Some(id) => {
                    t.placed.insert(id, sent);
                }
                None => t.failed_orders += 1,
            }
        }));
        placing.retain(|p| !p.is_finished());
        n += 1;
    }
    for p in placing {
        let _ = p.await;
    }
    // The last orders' nurses are still on the way: wait for them a while.
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_secs(60) && !*stop.borrow() {
        let done = {
            let t = lock(&timings);
            t.placed.keys().all(|o| t.arrived.contains_key(o))
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for p in &phones {
        p.abort();
    }
    Ok(CityReport {
        summary: summary(&args, &lock(&timings), started.elapsed()),
    })
}

fn percentiles(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| -> Value {
        if v.is_empty() {
            return Value::Null;
        }
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        json!((v[i.min(v.len() - 1)] * 10.0).round() / 10.0)
    };
    json!({"count": v.len(), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0)})
}

fn summary(args: &CityArgs, t: &Timings, elapsed: Duration) -> Value {
    let since = |stage: &HashMap<String, Instant>| -> Vec<f64> {
        t.placed
            .iter()
            .filter_map(|(o, sent)| {
                stage
                    .get(o)
                    .map(|at| at.saturating_duration_since(*sent).as_secs_f64() * 1e3)
            })
            .collect()
    };
    json!({
        "scenario": "city",
        "nurses": args.nurses,
        "orders_per_minute": args.orders_per_minute,
        "speedup": args.speedup,
        "seconds": elapsed.as_secs_f64(),
        "orders_placed": t.placed.len(),
        "orders_failed": t.failed_orders,
        "offers_declined": t.declined,
        "offers_lapsed": t.lapsed,
        "visits_completed": t.completed,
        "order_to_offer_ms": percentiles(since(&t.offered)),
        "order_to_accept_ms": percentiles(since(&t.accepted)),
        "order_to_arrival_ms": percentiles(since(&t.arrived)),
        "first_error": t.errors.first(),
    })
}

impl CityReport {
    /// The summary as a few readable lines.
    pub fn text(&self) -> String {
        let s = &self.summary;
        let line = |name: &str, key: &str| {
            let v = &s[key];
            format!(
                "  {name:<16} n={:<6} p50 {} ms  p90 {} ms  p99 {} ms",
                v["count"], v["p50"], v["p90"], v["p99"]
            )
        };
        format!(
            "city: {} nurses, {} orders/min, speedup {}: {} orders placed ({} failed), {} visits completed, {} declined, {} lapsed\n{}\n{}\n{}",
            s["nurses"],
            s["orders_per_minute"],
            s["speedup"],
            s["orders_placed"],
            s["orders_failed"],
            s["visits_completed"],
            s["offers_declined"],
            s["offers_lapsed"],
            line("order → offer", "order_to_offer_ms"),
            line("order → accept", "order_to_accept_ms"),
            line("order → arrival", "order_to_arrival_ms"),
        )
    }
}

/// The job a phone is on.
struct Job {
    order_id: String,
    target: (f64, f64),
    /// `Some(end)` once the visit started.
    visit_until: Option<Instant>,
    minutes: f64,
    service_code: String,
}

struct Phone {
    url: String,
    http: reqwest::Client,
    /// The platform's HTTP base (the visit record goes over HTTP).
    base: String,
    token: String,
    rng: Rng,
    args: CityArgs,
    services: Arc<Vec<Service>>,
    timings: Arc<Mutex<Timings>>,
}

/// Metres between two points (equirectangular: the district is small).
fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
    let k = 111_320.0;
    let dy = (a.0 - b.0) * k;
    let dx = (a.1 - b.1) * k * a.0.to_radians().cos();
    (dx * dx + dy * dy).sqrt()
}

impl Phone {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        // A dropped socket (server restart, eviction) is reopened.
        while !*stop.borrow() {
            if let Err(e) = self.session(&mut stop).await {
                lock(&self.timings).errors.push(format!("phone: {e:#}"));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn session(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let (ws, _) = tokio_tungstenite::connect_async(self.url.as_str())
            .await
            .context("opening the nurse socket")?;
        let (mut tx, mut rx) = ws.split();
        tx.send(Message::text(r#"{"type":"shift","state":"on"}"#))
            .await?;
        let mut pos = self.rng.point();
        let mut job: Option<Job> = None;
        // Answers wait out the nurse's reading time here: (when, frame).
        let mut pending: Vec<(Instant, String)> = Vec::new();
        let step_secs = self.args.fix_secs.max(0.2);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(step_secs));
        let speed_mps = SPEED_KMH / 3.6 * self.args.speedup;
        loop {
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                frame = rx.next() => {
                    let Some(frame) = frame else { bail!("socket closed") };
                    let Message::Text(text) = frame? else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    self.on_frame(&v, &mut job, &mut pending);
                    // A won job: set off at once.
                    if let Some(j) = job.as_ref()
                        && v["type"] == "assigned"
                        && j.visit_until.is_none()
                    {
                        let step = json!({"type":"progress","order_id": j.order_id,"step":"en_route"});
                        if v["status"] == "assigned" || v["status"].is_null() {
                            tx.send(Message::text(step.to_string())).await?;
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    let mut due = Vec::new();
                    pending.retain(|(at, frame)| {
                        if *at <= now { due.push(frame.clone()); false } else { true }
                    });
                    for frame in due {
                        tx.send(Message::text(frame)).await?;
                    }
                    let mut steps: Vec<&str> = Vec::new();
                    if let Some(j) = job.as_mut() {
                        match j.visit_until {
                            None => {
                                let left = metres(pos, j.target);
                                let stride = speed_mps * step_secs;
                                if left <= stride {
                                    pos = j.target;
                                    steps.extend(["arrived", "started"]);
                                    let secs = j.minutes * 60.0 / self.args.speedup;
                                    j.visit_until = Some(now + Duration::from_secs_f64(secs));
                                    let mut t = lock(&self.timings);
                                    t.arrived.entry(j.order_id.clone()).or_insert(now);
                                } else {
                                    let f = stride / left;
                                    pos = (pos.0 + (j.target.0 - pos.0) * f, pos.1 + (j.target.1 - pos.1) * f);
                                }
                            }
                            Some(until) if until <= now => {
                                // The visit record before `completed` (else 422 `record_required`).
                                let record = self
                                    .services
                                    .iter()
                                    .find(|s| s.code == j.service_code)
                                    .map(|s| s.record.clone())
                                    .unwrap_or_else(|| json!({"values": {}}));
                                self.http
                                    .post(format!("{}/v1/nurse/orders/{}/record", self.base, j.order_id))
                                    .bearer_auth(&self.token)
                                    .json(&record)
                                    .send()
                                    .await?
                                    .error_for_status()
                                    .context("POST /v1/nurse/orders/{id}/record")?;
                                steps.push("completed");
                                lock(&self.timings).completed += 1;
                            }
                            Some(_) => {}
                        }
                    } else {
                        // Idle: drift a little around the block.
                        pos.0 = (pos.0 + (self.rng.unit() - 0.5) * 0.0004).clamp(SOUTH, NORTH);
                        pos.1 = (pos.1 + (self.rng.unit() - 0.5) * 0.0004).clamp(WEST, EAST);
                    }
                    if let Some(j) = job.as_ref() {
                        for step in &steps {
                            let mut frame = json!({"type":"progress","order_id": j.order_id,"step": step});
                            if *step == "started" {
                                frame["consent_by"] = json!("王女士");
                            }
                            tx.send(Message::text(frame.to_string())).await?;
                        }
                    }
                    if steps.contains(&"completed") {
                        job = None;
                    }
                    let fix = json!({"type":"location","lat":pos.0,"lng":pos.1,"accuracy_m":8,"ts":chrono::Utc::now()});
                    tx.send(Message::text(fix.to_string())).await?;
                }
            }
        }
    }

    fn on_frame(&mut self, v: &Value, job: &mut Option<Job>, pending: &mut Vec<(Instant, String)>) {
        let now = Instant::now();
        match v["type"].as_str() {
            Some("offer") => {
                let order = v["order_id"].as_str().unwrap_or_default().to_owned();
                lock(&self.timings).offered.entry(order).or_insert(now);
                if job.is_some() {
                    return; // cannot happen: busy nurses get no offers
                }
                let offer = v["offer_id"].clone();
                // A person reads and answers in a few seconds (scaled).
                let delay =
                    Duration::from_secs_f64((2.0 + 8.0 * self.rng.unit()) / self.args.speedup);
                let u = self.rng.unit();
                if u < self.args.accept {
                    pending.push((
                        now + delay,
                        json!({"type":"accept","offer_id": offer}).to_string(),
                    ));
                } else if u < self.args.accept + self.args.decline {
                    lock(&self.timings).declined += 1;
                    pending.push((
                        now + delay,
                        json!({"type":"decline","offer_id": offer,"reason":"busy"}).to_string(),
                    ));
                } else {
                    lock(&self.timings).lapsed += 1;
                }
            }
            Some("assigned") => {
                let order = v["order_id"].as_str().unwrap_or_default().to_owned();
                let lat = v["location"]["lat"].as_f64();
                let lng = v["location"]["lng"].as_f64();
                let (Some(lat), Some(lng)) = (lat, lng) else {
                    return;
                };
                lock(&self.timings)
                    .accepted
                    .entry(order.clone())
                    .or_insert(now);
                let minutes = self
                    .services
                    .iter()
                    .find(|s| Some(s.code.as_str()) == v["service_code"].as_str())
                    .map_or(30.0, |s| s.minutes);
                if job.as_ref().is_none_or(|j| j.order_id != order) {
                    *job = Some(Job {
                        order_id: order,
                        target: (lat, lng),
                        visit_until: None,
                        minutes,
                        service_code: v["service_code"].as_str().unwrap_or_default().to_owned(),
                    });
                }
            }
            Some("order_cancelled")
                if job.as_ref().map(|j| j.order_id.as_str()) == v["order_id"].as_str() =>
            {
                *job = None;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_nurse_is_known_again_by_name_and_phone() {
        for i in [0, 1, 23, 39, 1234] {
            let (name, phone) = simulated_nurse(i);
            assert_eq!(simulated_index(&name, &phone), Some(i), "{name} {phone}");
        }
        assert_eq!(
            simulated_nurse(0),
            ("护士1".to_owned(), "13700000000".to_owned())
        );
        // A person of the same name with another phone is not taken over,
        // nor anyone named otherwise.
        assert_eq!(simulated_index("护士3", "13912345678"), None);
        assert_eq!(simulated_index("护士0", "13799999999"), None);
        assert_eq!(simulated_index("李护士", "13700000000"), None);
        assert_eq!(simulated_index("护士x", "13700000000"), None);
    }
}
