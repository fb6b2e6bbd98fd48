//! `yixin-load drill`: the simulated district of a fault drill, and the
//! drill's verdict.
//!
//! `scripts/drill` starts a split deployment (order-intake, one or two
//! dispatchers, nurse-tracking) on private PostgreSQL and Redis, runs this
//! driver against it and injects one fault while it runs. The driver:
//!
//! - adds `--nurses` qualified nurses with every skill (coordinator API on
//!   the dispatcher), puts each on shift over her own socket (nurse-tracking),
//!   streams her fixes, accepts every offer and steps through each visit
//!   (`en_route` → `arrived` → `started` with `consent_by` → the visit
//!   record over HTTP → `completed`), reconnecting whenever the socket drops;
//! - places orders at `--rate` a second for `--seconds` (order-intake), each
//!   with its own `Idempotency-Key` that it retries, as a phone would, on a
//!   503, 429, 500, timeout or refused connection, and a marker in `notes`;
//! - writes `load-started` (epoch ms) into `--state` when ordering starts;
//!   the script appends each fault it injects to `faults` there
//!   (`name start_ms end_ms`) and touches `faults.done` after the last;
//! - after the drain, reads PostgreSQL directly and asserts: every order
//!   answered 201 is in the database, none is there twice, no nurse held two
//!   live offers or two live jobs at once (the whole offer and job history,
//!   not only the end state), every order waiting when a fault ended was
//!   offered (or assigned) within `--offer-within` seconds of its end, every
//!   other order within that many seconds of being placed, no 500 (nor an
//!   `internal` error frame) answered, a 503 only during a fault (and with
//!   `Retry-After`), no request hanging past `--hang-secs`.
//!
//! It prints one summary line and writes the JSON summary (`--json-out`);
//! it exits non-zero when an assertion fails, naming it with its numbers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, stream};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::city::{Service, add_nurse, catalogue, token};

/// The demo service area around Shuangfu, kept inside with a margin.
const SOUTH: f64 = 29.37;
const NORTH: f64 = 29.42;
const WEST: f64 = 106.29;
const EAST: f64 = 106.34;

/// What to drive and how to judge it.
#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    /// Drill name, for the summary.
    #[arg(long)]
    pub name: String,
    /// order-intake's base URL (orders, catalogue, dev login).
    #[arg(long)]
    pub intake: String,
    /// A dispatcher's base URL (coordinator API: the roster).
    #[arg(long)]
    pub dispatcher: String,
    /// nurse-tracking's base URL (the nurses' socket and HTTP).
    #[arg(long)]
    pub tracking: String,
    #[arg(long, default_value = "demo")]
    pub org: String,
    /// Nurse phones on shift, every skill, accepting every offer.
    #[arg(long, default_value_t = 20)]
    pub nurses: usize,
    /// Orders placed a second, open loop.
    #[arg(long, default_value_t = 3.0)]
    pub rate: f64,
    /// How long orders are placed.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// After ordering, how long to wait at most for every order to be
    /// assigned (and for the script's `faults.done`).
    #[arg(long, default_value_t = 60)]
    pub drain_seconds: u64,
    /// A visit, riding included, takes this long (wall time).
    #[arg(long, default_value_t = 1.5)]
    pub visit_secs: f64,
    /// An order must be offered within this many seconds of being placed,
    /// or of the end of a fault it waited through.
    #[arg(long, default_value_t = 20.0)]
    pub offer_within: f64,
    /// A request answered later than this counts as a hang.
    #[arg(long, default_value_t = 5.0)]
    pub hang_secs: f64,
    /// A 503 this long after a fault's end still counts as part of it.
    #[arg(long, default_value_t = 5.0)]
    pub unavailable_grace_secs: f64,
    /// Directory shared with the script: `load-started`, `faults`, `faults.done`.
    #[arg(long)]
    pub state: std::path::PathBuf,
    /// The drill's PostgreSQL, read directly for the verdict.
    #[arg(long)]
    pub database_url: String,
    /// Where the JSON summary goes (also printed on stdout).
    #[arg(long)]
    pub json_out: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A fault the script injected: `[start_ms, end_ms]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub name: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Parses the script's `faults` file: `name start_ms end_ms` a line.
pub fn parse_faults(text: &str) -> anyhow::Result<Vec<Fault>> {
    let mut faults = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [name, start, end] = parts[..] else {
            bail!("a fault line is `name start_ms end_ms`, not {line:?}");
        };
        faults.push(Fault {
            name: name.to_owned(),
            start_ms: start.parse().context("fault start")?,
            end_ms: end.parse().context("fault end")?,
        });
    }
    Ok(faults)
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Orders answered 2xx: marker → (order id, first attempt ms, answered ms).
    created: BTreeMap<String, (String, i64, i64)>,
    /// Orders never created (gave up): marker → last status.
    abandoned: BTreeMap<String, String>,
    attempts: u64,
    /// Per order id: times a phone received an offer frame for it.
    offers: HashMap<String, Vec<i64>>,
    /// Per order id: when a phone received its `assigned` frame.
    assigned: HashMap<String, i64>,
    completed: u64,
    /// "endpoint status" → count (status 0: no answer).
    statuses: BTreeMap<String, u64>,
    /// 503s: (at ms, had Retry-After, endpoint).
    unavailable: Vec<(i64, bool, String)>,
    /// Requests slower than the hang bound: (at ms, secs, endpoint).
    slow: Vec<(i64, f64, String)>,
    /// Answers that must never be: 500s (and `internal` error frames).
    internal: Vec<String>,
    /// Error frames on the sockets, by code.
    frame_errors: BTreeMap<String, u64>,
    /// Socket (re)connections and failed attempts.
    ws_connects: u64,
    ws_failures: u64,
    /// Offers a phone received while it was on a job.
    offers_while_busy: u64,
}

type Shared = Arc<Mutex<Seen>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Seen {
    fn answered(&mut self, endpoint: &str, status: u16, began: Instant, hang: f64) {
        *self
            .statuses
            .entry(format!("{endpoint} {status}"))
            .or_default() += 1;
        let secs = began.elapsed().as_secs_f64();
        if secs > hang {
            self.slow.push((now_ms(), secs, endpoint.to_owned()));
        }
    }
}

/// One HTTP call, counted: the status (0 when no answer came), whether a
/// `Retry-After` came with it, its seconds to wait, and the body.
async fn call(
    seen: &Shared,
    hang: f64,
    endpoint: &str,
    request: reqwest::RequestBuilder,
) -> (u16, Option<u64>, Value) {
    let began = Instant::now();
    match request.send().await {
        Ok(reply) => {
            let status = reply.status().as_u16();
            let retry_after = reply
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let text = reply.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let mut s = lock(seen);
            s.answered(endpoint, status, began, hang);
            if status == 503 {
                s.unavailable
                    .push((now_ms(), retry_after.is_some(), endpoint.to_owned()));
            }
            if status >= 500 && status != 503 {
                let body: String = body.to_string().chars().take(300).collect();
                s.internal.push(format!("{endpoint} {status} {body}"));
            }
            (status, retry_after, body)
        }
        Err(e) => {
            let mut s = lock(seen);
            s.answered(endpoint, 0, began, hang);
            if e.is_timeout() {
                s.slow
                    .push((now_ms(), began.elapsed().as_secs_f64(), endpoint.to_owned()));
            }
            (0, None, Value::Null)
        }
    }
}

/// xorshift: cheap, reproducible.
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

/// Runs the drill's district, then judges it; `Ok(false)` when an
/// assertion failed (the summary says which).
pub async fn run(args: DrillArgs) -> anyhow::Result<bool> {
    let intake = args.intake.trim_end_matches('/').to_owned();
    let dispatcher = args.dispatcher.trim_end_matches('/').to_owned();
    let tracking = args.tracking.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(16)
        .build()?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let coordinator = token(
        &http,
        &intake,
        "coordinator",
        &format!("drill-{run}"),
        &args.org,
    )
    .await
    .context("a coordinator token from order-intake's dev login")?;
    let services = catalogue(&http, &intake, &coordinator).await?;
    let mut skills: Vec<String> = services.iter().flat_map(|s| s.skills.clone()).collect();
    skills.sort();
    skills.dedup();
    let ids: Vec<anyhow::Result<String>> = stream::iter(0..args.nurses)
        .map(|i| {
            let (http, dispatcher, coordinator, skills) = (
                http.clone(),
                dispatcher.clone(),
                coordinator.clone(),
                skills.clone(),
            );
            let run = run.clone();
            async move {
                add_nurse(
                    &http,
                    &dispatcher,
                    &coordinator,
                    &format!("演练护士{}-{run}", i + 1),
                    &format!("136{:08}", i),
                    skills.as_slice(),
                )
                .await
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let ids: Vec<String> = ids.into_iter().collect::<anyhow::Result<_>>()?;
    let services = Arc::new(services);
    let seen: Shared = Arc::new(Mutex::new(Seen::default()));
    let (stop_tx, stop) = watch::channel(false);
    let ws_base = tracking.replacen("http", "ws", 1);
    let mut phones = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let token = token(&http, &intake, "nurse", id, &args.org).await?;
        let phone = Phone {
            ws_url: format!("{ws_base}/v1/nurse/ws?token={token}"),
            base: tracking.clone(),
            token,
            http: http.clone(),
            services: services.clone(),
            seen: seen.clone(),
            rng: Rng::new(args.seed.wrapping_mul(1_000_003).wrapping_add(i as u64)),
            visit_secs: args.visit_secs,
            hang: args.hang_secs,
        };
        phones.push(tokio::spawn(phone.run(stop.clone())));
    }
    // Residents: many, so the per-resident limit is never what answers.
    let mut residents = Vec::new();
    for r in 0..40 {
        residents.push(
            token(
                &http,
                &intake,
                "resident",
                &format!("drill-{run}-r{r}"),
                &args.org,
            )
            .await?,
        );
    }
    // Let the fleet feed reach the dispatcher before the first order.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let orderable: Vec<Service> = services.iter().filter(|s| !s.screened).cloned().collect();
    if orderable.is_empty() {
        bail!("the catalogue lists no service that dispatches without screening");
    }

    std::fs::write(args.state.join("load-started"), now_ms().to_string())
        .context("writing load-started")?;
    eprintln!(
        "drill {}: ordering for {} s at {}/s",
        args.name, args.seconds, args.rate
    );
    let period = Duration::from_secs_f64(1.0 / args.rate.max(0.01));
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let mut rng = Rng::new(args.seed ^ 0xD811);
    let mut placing = Vec::new();
    let mut n: u64 = 0;
    loop {
        let due = started + period.mul_f64(n as f64);
        if due >= until {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let service = &orderable[(rng.unit() * orderable.len() as f64) as usize % orderable.len()];
        let (lat, lng) = rng.point();
        let marker = format!("drill {run} #{n}");
        let body = json!({
            "service_code": service.code,
            "location": {"lat": lat, "lng": lng},
            "address": {"text": "重庆市江津区双福街道", "detail": format!("{} 栋 {} 号", n % 40 + 1, n % 300 + 1)},
            "contact": {"name": "王女士", "phone": "13812345678"},
            "notes": marker,
            "consent_version": service.consent,
        });
        let resident = residents[n as usize % residents.len()].clone();
        placing.push(tokio::spawn(place(
            http.clone(),
            format!("{intake}/v1/orders"),
            resident,
            body,
            marker,
            seen.clone(),
            args.hang_secs,
        )));
        n += 1;
    }
    for p in placing {
        let _ = p.await;
    }
    eprintln!("drill {}: {n} orders placed; draining", args.name);
    // Drain: every created order assigned, and the script done with its faults.
    let drain = Instant::now();
    let done_file = args.state.join("faults.done");
    while drain.elapsed() < Duration::from_secs(args.drain_seconds) {
        let all_assigned = {
            let s = lock(&seen);
            s.created
                .values()
                .all(|(id, _, _)| s.assigned.contains_key(id))
        };
        if all_assigned && done_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A little more, so the last visits finish and offers are answered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    for p in phones {
        p.abort();
    }
    let faults = match std::fs::read_to_string(args.state.join("faults")) {
        Ok(text) => parse_faults(&text)?,
        Err(_) => Vec::new(),
    };
    let db = sea_orm::Database::connect(args.database_url.as_str())
        .await
        .context("connecting to the drill's PostgreSQL for the verdict")?;
    let history = History::read(&db, &args.org, &format!("drill {run} #%")).await?;
    let s = lock(&seen);
    let verdict = judge(&args, &faults, &s, &history, n);
    let ok = verdict["failures"].as_array().is_none_or(|f| f.is_empty());
    println!("{}", summary_line(&verdict));
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&verdict)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{verdict}");
    Ok(ok)
}

/// Places one order, retrying with the same key as a phone would.
async fn place(
    http: reqwest::Client,
    url: String,
    resident: String,
    body: Value,
    marker: String,
    seen: Shared,
    hang: f64,
) {
    let key = uuid::Uuid::new_v4().to_string();
    let first = now_ms();
    let give_up = Instant::now() + Duration::from_secs(150);
    let mut last = String::new();
    while Instant::now() < give_up {
        lock(&seen).attempts += 1;
        let request = http
            .post(&url)
            .bearer_auth(&resident)
            .header("Idempotency-Key", &key)
            .json(&body);
        let (status, retry_after, reply) = call(&seen, hang, "POST /v1/orders", request).await;
        match status {
            200..=299 => {
                if let Some(id) = reply["id"].as_str() {
                    lock(&seen)
                        .created
                        .insert(marker, (id.to_owned(), first, now_ms()));
                    return;
                }
                last = format!("{status} without an id");
                break;
            }
            0 | 429 | 500..=599 => {
                last = status.to_string();
                let wait = retry_after.unwrap_or(1).clamp(1, 5);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            _ => {
                last = format!("{status} {reply}");
                break;
            }
        }
    }
    lock(&seen).abandoned.insert(marker, last);
}

/// The job a phone is on, as the server last said.
struct Job {
    order_id: String,
    service_code: String,
    location: (f64, f64),
    status: String,
    /// A step sent and not yet answered: (status it asks for, when).
    asked: Option<(String, Instant)>,
    /// When the current status was reached.
    since: Instant,
    recorded: bool,
}

struct Phone {
    ws_url: String,
    base: String,
    token: String,
    http: reqwest::Client,
    services: Arc<Vec<Service>>,
    seen: Shared,
    rng: Rng,
    visit_secs: f64,
    hang: f64,
}

/// The step that moves a job on from `status`, and the status it reaches.
fn next_step(status: &str) -> Option<(&'static str, &'static str)> {
    match status {
        "assigned" => Some(("en_route", "en_route")),
        "en_route" => Some(("arrived", "arrived")),
        "arrived" => Some(("started", "in_service")),
        "in_service" => Some(("completed", "completed")),
        _ => None,
    }
}

impl Phone {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut home = self.rng.point();
        while !*stop.borrow() {
            match tokio_tungstenite::connect_async(self.ws_url.as_str()).await {
                Ok((ws, _)) => {
                    lock(&self.seen).ws_connects += 1;
                    let _ = self.session(ws, &mut home, &mut stop).await;
                }
                Err(_) => lock(&self.seen).ws_failures += 1,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500 + (self.rng.unit() * 1000.0) as u64)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn session(
        &mut self,
        ws: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        home: &mut (f64, f64),
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let (mut tx, mut rx) = ws.split();
        tx.send(Message::text(r#"{"type":"shift","state":"on"}"#))
            .await?;
        let mut job: Option<Job> = None;
        // The offer held: (offer id, order id, answer at, accept sent at).
        let mut offer: Option<(String, String, Instant, Option<Instant>)> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last_fix = Instant::now() - Duration::from_secs(10);
        loop {
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                frame = rx.next() => {
                    let Some(frame) = frame else { bail!("socket closed") };
                    let Message::Text(text) = frame? else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    let at = now_ms();
                    match v["type"].as_str() {
                        Some("offer") => {
                            let order = v["order_id"].as_str().unwrap_or_default().to_owned();
                            let id = v["offer_id"].as_str().unwrap_or_default().to_owned();
                            let mut s = lock(&self.seen);
                            s.offers.entry(order.clone()).or_default().push(at);
                            if job.is_some() {
                                s.offers_while_busy += 1;
                            }
                            drop(s);
                            let think = Duration::from_millis(150 + (self.rng.unit() * 350.0) as u64);
                            offer = Some((id, order, Instant::now() + think, None));
                        }
                        Some("offer_closed")
                            if offer.as_ref().is_some_and(|o| v["offer_id"] == o.0.as_str()) =>
                        {
                            offer = None;
                        }
                        Some("assigned") => {
                            let order = v["order_id"].as_str().unwrap_or_default().to_owned();
                            lock(&self.seen).assigned.entry(order.clone()).or_insert(at);
                            if offer.as_ref().is_some_and(|o| o.1 == order) {
                                offer = None;
                            }
                            let status = v["status"].as_str().unwrap_or("assigned").to_owned();
                            if job.as_ref().is_none_or(|j| j.order_id != order) {
                                job = Some(Job {
                                    order_id: order,
                                    service_code: v["service_code"].as_str().unwrap_or_default().to_owned(),
                                    location: (
                                        v["location"]["lat"].as_f64().unwrap_or(home.0),
                                        v["location"]["lng"].as_f64().unwrap_or(home.1),
                                    ),
                                    status,
                                    asked: None,
                                    since: Instant::now(),
                                    recorded: false,
                                });
                            }
                        }
                        Some("ack") if v["request"] == "progress" => {
                            if let Some(j) = job.as_mut()
                                && v["id"] == j.order_id.as_str()
                            {
                                let status = v["status"].as_str().unwrap_or_default().to_owned();
                                if status == "completed" {
                                    lock(&self.seen).completed += 1;
                                    *home = j.location;
                                    job = None;
                                } else if status != j.status {
                                    j.status = status;
                                    j.since = Instant::now();
                                    j.asked = None;
                                } else {
                                    j.asked = None;
                                }
                            }
                        }
                        Some("order_cancelled")
                            if job.as_ref().is_some_and(|j| v["order_id"] == j.order_id.as_str()) =>
                        {
                            job = None;
                        }
                        Some("error") => {
                            let code = v["code"].as_str().unwrap_or_default().to_owned();
                            let mut s = lock(&self.seen);
                            if code == "internal" {
                                s.internal.push(format!("socket error frame {v}"));
                            }
                            *s.frame_errors.entry(code).or_default() += 1;
                            drop(s);
                            // Whatever was asked is asked again shortly.
                            let later = Instant::now() + Duration::from_secs(1);
                            if let Some(o) = offer.as_mut() {
                                o.2 = later;
                                o.3 = None;
                            }
                            if let Some(j) = job.as_mut() {
                                j.asked = None;
                                j.since = Instant::now();
                            }
                        }
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    // Accept the held offer once read; again if unanswered.
                    if job.is_none()
                        && let Some(o) = offer.as_mut()
                        && o.2 <= now
                        && o.3.is_none_or(|sent| now.duration_since(sent) > Duration::from_secs(3))
                    {
                        o.3 = Some(now);
                        tx.send(Message::text(json!({"type":"accept","offer_id": o.0}).to_string())).await?;
                    }
                    if let Some(j) = job.as_mut() {
                        let pause = match j.status.as_str() {
                            "en_route" => self.visit_secs * 0.2,
                            "in_service" => self.visit_secs * 0.6,
                            _ => 0.1,
                        };
                        let resend = j.asked.as_ref().is_some_and(|(_, at)| now.duration_since(*at) > Duration::from_secs(3));
                        if (j.asked.is_none() || resend)
                            && now.duration_since(j.since).as_secs_f64() >= pause
                            && let Some((step, reaches)) = next_step(&j.status)
                        {
                            if step == "completed" && !j.recorded {
                                let record = self.services.iter()
                                    .find(|s| s.code == j.service_code)
                                    .map(|s| s.record.clone())
                                    .unwrap_or_else(|| json!({"values": {}}));
                                let request = self.http
                                    .post(format!("{}/v1/nurse/orders/{}/record", self.base, j.order_id))
                                    .bearer_auth(&self.token)
                                    .json(&record);
                                let (status, _, _) = call(&self.seen, self.hang, "POST /v1/nurse/orders/{id}/record", request).await;
                                if (200..300).contains(&status) {
                                    j.recorded = true;
                                } else {
                                    j.since = Instant::now() + Duration::from_secs(1);
                                    continue;
                                }
                            }
                            let mut frame = json!({"type":"progress","order_id": j.order_id,"step": step});
                            if step == "started" {
                                frame["consent_by"] = json!("王女士");
                            }
                            j.asked = Some((reaches.to_owned(), now));
                            tx.send(Message::text(frame.to_string())).await?;
                        }
                    }
                    if now.duration_since(last_fix) >= Duration::from_secs(2) {
                        last_fix = now;
                        let pos = match job.as_ref() {
                            Some(j) if j.status != "assigned" => j.location,
                            _ => *home,
                        };
                        let fix = json!({"type":"location","lat":pos.0,"lng":pos.1,"accuracy_m":8,"ts":chrono::Utc::now()});
                        tx.send(Message::text(fix.to_string())).await?;
                    }
                }
            }
        }
    }
}

/// What PostgreSQL holds about the drill's orders.
pub struct History {
    /// marker → order ids carrying it.
    pub by_marker: HashMap<String, Vec<String>>,
    /// (nurse, order, from ms, to ms) of every offer: created → answered
    /// (or now when still open).
    pub offers: Vec<(String, String, i64, i64)>,
    /// (nurse, order, from ms, to ms) of every job: assigned → completed
    /// or cancelled (or now).
    pub jobs: Vec<(String, String, i64, i64)>,
    /// Orders with more than one accepted offer: (order, count).
    pub double_accepts: Vec<(String, i64)>,
    /// Orders and their status, for those not assigned at the end.
    pub unassigned: Vec<(String, String)>,
}

impl History {
    async fn read(
        db: &sea_orm::DatabaseConnection,
        org: &str,
        pattern: &str,
    ) -> anyhow::Result<Self> {
        let q = |sql: &str| {
            Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                sql,
                [org.into(), pattern.into()],
            )
        };
        let mut by_marker: HashMap<String, Vec<String>> = HashMap::new();
        let mut unassigned = Vec::new();
        for row in db
            .query_all_raw(q(
                "SELECT id::text, notes, status FROM orders WHERE org_id = $1 AND notes LIKE $2",
            ))
            .await?
        {
            let id: String = row.try_get_by_index(0)?;
            let notes: String = row.try_get_by_index(1)?;
            let status: String = row.try_get_by_index(2)?;
            if matches!(status.as_str(), "pending" | "offered" | "escalated") {
                unassigned.push((id.clone(), status));
            }
            by_marker.entry(notes).or_default().push(id);
        }
        let interval_rows =
            |rows: Vec<sea_orm::QueryResult>| -> anyhow::Result<Vec<(String, String, i64, i64)>> {
                rows.into_iter()
                    .map(|row| {
                        Ok((
                            row.try_get_by_index(0)?,
                            row.try_get_by_index(1)?,
                            row.try_get_by_index(2)?,
                            row.try_get_by_index(3)?,
                        ))
                    })
                    .collect()
            };
        let offers = interval_rows(
            db.query_all_raw(q("SELECT f.nurse_id::text, f.order_id::text, \
                 (extract(epoch FROM f.created_at) * 1000)::bigint, \
                 (extract(epoch FROM coalesce(f.answered_at, now())) * 1000)::bigint \
                 FROM offers f JOIN orders o ON o.id = f.order_id \
                 WHERE o.org_id = $1 AND o.notes LIKE $2"))
                .await?,
        )?;
        let jobs = interval_rows(
            db.query_all_raw(q(
                "SELECT o.nurse_id::text, o.id::text, \
                 (extract(epoch FROM a.at) * 1000)::bigint, \
                 (extract(epoch FROM coalesce((SELECT min(e.at) FROM order_events e \
                   WHERE e.order_id = o.id AND e.status IN ('completed', 'cancelled') AND e.at >= a.at), now())) * 1000)::bigint \
                 FROM orders o JOIN order_events a ON a.order_id = o.id AND a.status = 'assigned' \
                 WHERE o.org_id = $1 AND o.notes LIKE $2 AND o.nurse_id IS NOT NULL",
            ))
            .await?,
        )?;
        let mut double_accepts = Vec::new();
        for row in db
            .query_all_raw(q(
                "SELECT f.order_id::text, count(*) FROM offers f JOIN orders o ON o.id = f.order_id \
                 WHERE o.org_id = $1 AND o.notes LIKE $2 AND f.status = 'accepted' \
                 GROUP BY f.order_id HAVING count(*) > 1",
            ))
            .await?
        {
            double_accepts.push((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
        }
        Ok(Self {
            by_marker,
            offers,
            jobs,
            double_accepts,
            unassigned,
        })
    }
}

/// Pairs of intervals of one holder that overlap: (holder, a, b, overlap ms).
/// Intervals are half-open, `[from, to)`, so one ending as the next begins
/// does not overlap.
pub fn overlaps(intervals: &[(String, String, i64, i64)]) -> Vec<(String, String, String, i64)> {
    let mut by_holder: HashMap<&str, Vec<&(String, String, i64, i64)>> = HashMap::new();
    for i in intervals {
        by_holder.entry(i.0.as_str()).or_default().push(i);
    }
    let mut found = Vec::new();
    for (holder, mut list) in by_holder {
        list.sort_by_key(|i| (i.2, i.3));
        // Sweep: the interval reaching furthest so far.
        let mut reach: Option<&(String, String, i64, i64)> = None;
        for i in list {
            if let Some(r) = reach
                && i.2 < r.3
            {
                found.push((
                    holder.to_owned(),
                    r.1.clone(),
                    i.1.clone(),
                    r.3.min(i.3) - i.2,
                ));
            }
            if reach.is_none_or(|r| i.3 > r.3) {
                reach = Some(i);
            }
        }
    }
    found.sort();
    found
}

/// When each order was attended to (offered or assigned) as the phones saw
/// it, and the orders a fault left waiting.
pub struct Attention<'a> {
    /// order id → (placed ms, sorted times a phone got an offer for it or its job).
    pub orders: HashMap<&'a str, (i64, Vec<i64>)>,
    /// order id → when its `assigned` frame came.
    pub assigned: &'a HashMap<String, i64>,
}

impl Attention<'_> {
    /// Orders waiting when `fault` ended (placed before its end and not
    /// assigned by then), each with the seconds from the end to its next
    /// offer or assignment (None: never).
    pub fn waiting_at_end(&self, fault: &Fault) -> Vec<(&str, Option<f64>)> {
        let mut out: Vec<(&str, Option<f64>)> = self
            .orders
            .iter()
            .filter(|(id, (placed, _))| {
                *placed <= fault.end_ms && self.assigned.get(**id).is_none_or(|a| *a > fault.end_ms)
            })
            .map(|(id, (_, times))| {
                let next = times.iter().find(|t| **t >= fault.end_ms);
                (*id, next.map(|t| (t - fault.end_ms) as f64 / 1000.0))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Seconds from placing to the first offer (or assignment), for orders
    /// no fault caught waiting (None: never).
    pub fn first_offer_outside(&self, faults: &[Fault]) -> Vec<(&str, Option<f64>)> {
        let mut out: Vec<(&str, Option<f64>)> = self
            .orders
            .iter()
            .filter(|(_, (placed, times))| {
                let first = times.first().copied().unwrap_or(i64::MAX);
                // Caught by a fault: placed before it ended, first attended after it began.
                !faults
                    .iter()
                    .any(|f| *placed <= f.end_ms && first >= f.start_ms)
            })
            .map(|(id, (placed, times))| (*id, times.first().map(|t| (t - placed) as f64 / 1000.0)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
}

fn pct(mut v: Vec<f64>, q: f64) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    json!((v[i.min(v.len() - 1)] * 100.0).round() / 100.0)
}

/// The first few orders never offered, or offered later than `within`
/// seconds, joined for a failure message: their story can then be read in
/// the logs kept (scripts/drill prints their lines) and the database.
fn not_offered_within(orders: &[(&str, Option<f64>)], within: f64) -> String {
    orders
        .iter()
        .filter(|(_, t)| t.is_none_or(|t| t > within))
        .map(|(id, _)| *id)
        .take(5)
        .collect::<Vec<_>>()
        .join(", ")
}

fn judge(args: &DrillArgs, faults: &[Fault], s: &Seen, h: &History, placed: u64) -> Value {
    let mut failures: Vec<String> = Vec::new();
    // 1. Every order answered 201 is in the database.
    let missing: Vec<&String> = s
        .created
        .iter()
        .filter(|(marker, (id, _, _))| h.by_marker.get(*marker).is_none_or(|ids| !ids.contains(id)))
        .map(|(m, _)| m)
        .collect();
    if !missing.is_empty() {
        failures.push(format!(
            "orders_kept: {} of {} orders answered 201 are not in the database (first: {})",
            missing.len(),
            s.created.len(),
            missing[0]
        ));
    }
    // 2. None duplicated.
    let dup: Vec<(&String, usize)> = h
        .by_marker
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(m, ids)| (m, ids.len()))
        .collect();
    if !dup.is_empty() || !h.double_accepts.is_empty() {
        failures.push(format!(
            "no_duplicates: {} orders stored more than once, {} orders with more than one accepted offer",
            dup.len(),
            h.double_accepts.len()
        ));
    }
    // 3. No nurse with two live offers or two live jobs at once.
    let offer_overlaps = overlaps(&h.offers);
    let job_overlaps = overlaps(&h.jobs);
    if !offer_overlaps.is_empty() || !job_overlaps.is_empty() {
        let first = offer_overlaps
            .first()
            .or(job_overlaps.first())
            .map(|o| format!("nurse {} orders {} and {} for {} ms", o.0, o.1, o.2, o.3))
            .unwrap_or_default();
        failures.push(format!(
            "no_double_booking: {} overlapping offers, {} overlapping jobs (first: {first})",
            offer_overlaps.len(),
            job_overlaps.len()
        ));
    }
    // 4. Offered in time: after each fault, and when no fault intervened.
    let mut attention: HashMap<&str, (i64, Vec<i64>)> = HashMap::new();
    for (id, first, _) in s.created.values() {
        let mut times = s.offers.get(id).cloned().unwrap_or_default();
        if let Some(a) = s.assigned.get(id) {
            times.push(*a);
        }
        times.sort_unstable();
        attention.insert(id.as_str(), (*first, times));
    }
    let att = Attention {
        orders: attention,
        assigned: &s.assigned,
    };
    let mut fault_reports = Vec::new();
    for f in faults {
        let waiting = att.waiting_at_end(f);
        let never = waiting.iter().filter(|(_, t)| t.is_none()).count();
        let late: Vec<f64> = waiting
            .iter()
            .filter_map(|(_, t)| *t)
            .filter(|t| *t > args.offer_within)
            .collect();
        let backlog_s = if never > 0 {
            None
        } else {
            waiting.iter().filter_map(|(_, t)| *t).reduce(f64::max)
        };
        // Orders flowing again: the first offer any phone got after the end.
        let first_offer = s
            .offers
            .values()
            .flatten()
            .filter(|t| **t >= f.end_ms)
            .min()
            .map(|t| (t - f.end_ms) as f64 / 1000.0);
        if never > 0 || !late.is_empty() {
            let named = not_offered_within(&waiting, args.offer_within);
            failures.push(format!(
                "offered_after_fault: {} of {} orders waiting when `{}` ended were not offered within {} s ({} never, slowest {}; orders {})",
                never + late.len(),
                waiting.len(),
                f.name,
                args.offer_within,
                never,
                late.iter().copied().reduce(f64::max).map_or("-".into(), |t| format!("{t:.1} s")),
                named
            ));
        }
        fault_reports.push(json!({
            "name": f.name,
            "start_ms": f.start_ms,
            "end_ms": f.end_ms,
            "duration_s": (f.end_ms - f.start_ms) as f64 / 1000.0,
            "waiting_at_end": waiting.len(),
            "never_offered": never,
            "offered_late": late.len(),
            "first_offer_after_end_s": first_offer,
            "backlog_offered_s": backlog_s,
        }));
    }
    let outside = att.first_offer_outside(faults);
    let outside_late: Vec<f64> = outside
        .iter()
        .filter_map(|(_, t)| *t)
        .filter(|t| *t > args.offer_within)
        .collect();
    let outside_never = outside.iter().filter(|(_, t)| t.is_none()).count();
    if outside_never > 0 || !outside_late.is_empty() {
        let named = not_offered_within(&outside, args.offer_within);
        failures.push(format!(
            "offered_in_time: {} of {} orders no fault caught were not offered within {} s of being placed ({} never, slowest {}; orders {})",
            outside_never + outside_late.len(),
            outside.len(),
            args.offer_within,
            outside_never,
            outside_late.iter().copied().reduce(f64::max).map_or("-".into(), |t| format!("{t:.1} s")),
            named
        ));
    }
    // Every order assigned in the end.
    if !h.unassigned.is_empty() {
        failures.push(format!(
            "all_assigned: {} orders still wait for a nurse at the end (first: {} {})",
            h.unassigned.len(),
            h.unassigned[0].0,
            h.unassigned[0].1
        ));
    }
    // 5. No 500; a 503 only during a fault and with Retry-After; no hang.
    if !s.internal.is_empty() {
        failures.push(format!(
            "no_500: {} answers were 500 or `internal` (first: {})",
            s.internal.len(),
            s.internal[0]
        ));
    }
    let grace = (args.unavailable_grace_secs * 1000.0) as i64;
    let in_fault = |t: i64| {
        faults
            .iter()
            .any(|f| t >= f.start_ms && t <= f.end_ms + grace)
    };
    let bad_503: Vec<&(i64, bool, String)> = s
        .unavailable
        .iter()
        .filter(|(t, retry, _)| !*retry || !in_fault(*t))
        .collect();
    if !bad_503.is_empty() {
        failures.push(format!(
            "unavailable_only_in_fault: {} answers were 503 outside a fault or without Retry-After (first: {})",
            bad_503.len(),
            bad_503[0].2
        ));
    }
    if !s.slow.is_empty() {
        let worst = s.slow.iter().map(|x| x.1).reduce(f64::max).unwrap_or(0.0);
        let mut by_endpoint: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, _, endpoint) in &s.slow {
            *by_endpoint.entry(endpoint.as_str()).or_default() += 1;
        }
        let by_endpoint: Vec<String> = by_endpoint
            .iter()
            .map(|(e, n)| format!("{n} × {e}"))
            .collect();
        failures.push(format!(
            "no_hang: {} requests took longer than {} s (or timed out at 10 s); slowest {worst:.1} s ({})",
            s.slow.len(),
            args.hang_secs,
            by_endpoint.join(", ")
        ));
    }
    let offer_latency: Vec<f64> = outside.iter().filter_map(|(_, t)| *t).collect();
    json!({
        "drill": args.name,
        "ok": failures.is_empty(),
        "failures": failures,
        "orders": {
            "placed": placed,
            "created": s.created.len(),
            "abandoned": s.abandoned.len(),
            "attempts": s.attempts,
            "in_database": h.by_marker.len(),
            "assigned_seen": s.assigned.len(),
            "visits_completed": s.completed,
        },
        "faults": fault_reports,
        "order_to_offer_s": {
            "count": offer_latency.len(),
            "p50": pct(offer_latency.clone(), 0.5),
            "p90": pct(offer_latency.clone(), 0.9),
            "max": pct(offer_latency, 1.0),
        },
        "statuses": s.statuses,
        "unavailable_503": s.unavailable.len(),
        "frame_errors": s.frame_errors,
        "ws_connects": s.ws_connects,
        "ws_failures": s.ws_failures,
        "offers_while_busy": s.offers_while_busy,
        "offer_overlaps": offer_overlaps.len(),
        "job_overlaps": job_overlaps.len(),
    })
}

/// `drill NAME: ok|FAILED — recovery …; orders …; failures`.
pub fn summary_line(v: &Value) -> String {
    let recovery: Vec<String> = v["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let secs = |x: &Value| {
                x.as_f64()
                    .map_or("never".to_owned(), |t| format!("{t:.1} s"))
            };
            format!(
                "{} ({:.0} s): first offer after {}, backlog of {} offered after {}",
                f["name"].as_str().unwrap_or_default(),
                f["duration_s"].as_f64().unwrap_or_default(),
                secs(&f["first_offer_after_end_s"]),
                f["waiting_at_end"],
                secs(&f["backlog_offered_s"]),
            )
        })
        .collect();
    let o = &v["orders"];
    let mut line = format!(
        "drill {}: {} — {} orders created of {} placed, order→offer p50 {} s max {} s",
        v["drill"].as_str().unwrap_or_default(),
        if v["ok"] == true { "ok" } else { "FAILED" },
        o["created"],
        o["placed"],
        v["order_to_offer_s"]["p50"],
        v["order_to_offer_s"]["max"],
    );
    if !recovery.is_empty() {
        line.push_str("; ");
        line.push_str(&recovery.join("; "));
    }
    for f in v["failures"].as_array().into_iter().flatten() {
        line.push_str("\n  FAILED ");
        line.push_str(f.as_str().unwrap_or_default());
    }
    line
}

/// The README's table of recovery times from the drills' JSON summaries
/// (an array of what [`run`] writes to `--json-out`).
pub fn table(summaries: &Value) -> String {
    let secs = |x: &Value| {
        x.as_f64()
            .map_or("never".to_owned(), |t| format!("{t:.1} s"))
    };
    let mut out = String::from(
        "| drill | fault (length) | result | orders 201 / placed | first offer after the fault | waiting at its end → all offered after | order → offer p50 / max (no fault) | 503s | failed assertions |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for v in summaries.as_array().into_iter().flatten() {
        let faults: Vec<&Value> = v["faults"].as_array().into_iter().flatten().collect();
        let fault = if faults.is_empty() {
            "none".to_owned()
        } else {
            faults
                .iter()
                .map(|f| {
                    format!(
                        "{} ({:.0} s)",
                        f["name"].as_str().unwrap_or_default(),
                        f["duration_s"].as_f64().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let first = faults
            .iter()
            .map(|f| secs(&f["first_offer_after_end_s"]))
            .collect::<Vec<_>>()
            .join(", ");
        let backlog = faults
            .iter()
            .map(|f| {
                format!(
                    "{} → {}",
                    f["waiting_at_end"],
                    secs(&f["backlog_offered_s"])
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let failed: Vec<&str> = v["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .map(|f| f.split(':').next().unwrap_or(f))
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} / {} | {} | {} | {} / {} | {} | {} |\n",
            v["drill"].as_str().unwrap_or_default(),
            fault,
            if v["ok"] == true { "pass" } else { "**fail**" },
            v["orders"]["created"],
            v["orders"]["placed"],
            if first.is_empty() { "-".into() } else { first },
            if backlog.is_empty() {
                "-".into()
            } else {
                backlog
            },
            secs(&v["order_to_offer_s"]["p50"]),
            secs(&v["order_to_offer_s"]["max"]),
            v["unavailable_503"],
            if failed.is_empty() {
                "-".into()
            } else {
                failed.join(", ")
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(holder: &str, what: &str, from: i64, to: i64) -> (String, String, i64, i64) {
        (holder.into(), what.into(), from, to)
    }

    #[test]
    fn a_failure_names_the_orders_not_offered_in_time() {
        let orders = [
            ("a", Some(1.0)),
            ("b", None),
            ("c", Some(25.0)),
            ("d", Some(20.0)),
        ];
        assert_eq!(not_offered_within(&orders, 20.0), "b, c");
        assert_eq!(not_offered_within(&orders[..1], 20.0), "");
    }

    #[test]
    fn overlapping_intervals_of_one_holder_are_found() {
        let list = vec![
            iv("n1", "a", 0, 10),
            iv("n1", "b", 10, 20), // touches a: no overlap
            iv("n1", "c", 15, 18), // inside b
            iv("n2", "d", 0, 100), // another nurse
            iv("n2", "e", 100, 101),
        ];
        let found = overlaps(&list);
        assert_eq!(found, vec![("n1".into(), "b".into(), "c".into(), 3)]);
        // A long interval still reaches past a short one in between.
        let list = vec![
            iv("n", "a", 0, 100),
            iv("n", "b", 10, 20),
            iv("n", "c", 50, 60),
        ];
        assert_eq!(overlaps(&list).len(), 2);
    }

    #[test]
    fn faults_are_read_from_the_scripts_lines() {
        let f = parse_faults("redis-nosave 1000 11000\n\nsigterm-intake 20000 21000\n").unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].name, "sigterm-intake");
        assert_eq!(f[0].end_ms, 11000);
        assert!(parse_faults("broken 1").is_err());
    }

    #[test]
    fn orders_waiting_at_a_faults_end_are_judged_from_the_end() {
        let assigned: HashMap<String, i64> =
            [("a".to_owned(), 5_000), ("b".to_owned(), 30_000)].into();
        let orders: HashMap<&str, (i64, Vec<i64>)> = [
            // Placed and assigned before the fault: not waiting at its end.
            ("a", (1_000, vec![2_000, 5_000])),
            // Offered before the end (lost), offered again 8 s after it.
            ("b", (9_000, vec![9_500, 28_000, 30_000])),
            // Placed during the fault, never offered.
            ("c", (15_000, vec![])),
            // Placed after the fault: judged from its own placing.
            ("d", (40_000, vec![41_000])),
        ]
        .into();
        let att = Attention {
            orders,
            assigned: &assigned,
        };
        let fault = Fault {
            name: "x".into(),
            start_ms: 8_000,
            end_ms: 20_000,
        };
        assert_eq!(
            att.waiting_at_end(&fault),
            vec![("b", Some(8.0)), ("c", None)]
        );
        // Outside the fault: a (first offer 1 s after placing) and d (1 s).
        assert_eq!(
            att.first_offer_outside(std::slice::from_ref(&fault)),
            vec![("a", Some(1.0)), ("d", Some(1.0))]
        );
    }
}
