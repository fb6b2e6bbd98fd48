//! `yixin-load fixes`: simulated nurse phones streaming GPS fixes over the
//! nurse socket, as many phones on shift would.
//!
//! Setup (not measured): a coordinator adds `--nurses` nurses to the roster
//! through the API, each gets a token from the dev login, opens
//! `/v1/nurse/ws` and goes on shift. Then every phone sends a `locations`
//! frame of `--batch` fixes `--frames-per-second` times a second, walking
//! around Shuangfu. The server's own counters give what was indexed and the
//! fix-to-index latency (`nurse_fixes_total`, `nurse_fix_to_index_seconds`
//! from `/metrics`, read before and after the measured window); the latency
//! is from the fix's timestamp, stamped by the phone just before sending, to
//! the moment it is in the index.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use yixin_loadgen::city::add_nurse;
pub(crate) use yixin_loadgen::city::token;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args)]
pub struct FixesArgs {
    /// Base URL of a running platform with dev login on.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = "demo")]
    org: String,
    /// Simulated phones (nurses on shift).
    #[arg(long, default_value_t = 2_000)]
    nurses: usize,
    /// Frames each phone sends per second.
    #[arg(long, default_value_t = 2.0)]
    frames_per_second: f64,
    /// Fixes per frame (`locations` batch; 1 sends single `location` frames).
    #[arg(long, default_value_t = 10)]
    batch: usize,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// A tiny deterministic generator: each phone walks its own path.
pub(crate) struct Walk {
    state: u64,
    lat: f64,
    lng: f64,
}

impl Walk {
    pub(crate) fn new(seed: u64) -> Self {
        let mut w = Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            lat: 0.0,
            lng: 0.0,
        };
        // Somewhere in the demo area around Shuangfu.
        w.lat = 29.37 + 0.04 * w.unit();
        w.lng = 106.29 + 0.05 * w.unit();
        w
    }

    fn unit(&mut self) -> f64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state >> 11) as f64 / (1u64 << 53) as f64
    }

    /// About 10 m a step.
    pub(crate) fn step(&mut self) -> (f64, f64) {
        // Kept well inside the demo service area (29.36–29.43 N, 106.27–106.36 E).
        self.lat = (self.lat + (self.unit() - 0.5) * 0.0002).clamp(29.37, 29.42);
        self.lng = (self.lng + (self.unit() - 0.5) * 0.0002).clamp(106.29, 106.34);
        (self.lat, self.lng)
    }
}

/// Adds `count` nurses with `skills` to the organisation's roster through
/// the coordinator API; their ids.
pub(crate) async fn add_nurses(
    http: &reqwest::Client,
    url: &str,
    org: &str,
    count: usize,
    skills: &[&str],
) -> anyhow::Result<Vec<String>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let coordinator = token(
        http,
        url,
        "coordinator",
        &format!("load-coord-{}", &run[..8]),
        org,
    )
    .await?;
    eprintln!("yixin-load: adding {count} nurses to the roster");
    let coordinator = coordinator.as_str();
    let ids: Vec<anyhow::Result<String>> = stream::iter(0..count)
        .map(|i| async move {
            let name = format!("负载护士{i}");
            let phone = format!("139{:08}", i % 100_000_000);
            add_nurse(http, url, coordinator, &name, &phone, skills).await
        })
        .buffer_unordered(16)
        .collect()
        .await;
    ids.into_iter().collect()
}

/// The server's counters this run reads.
#[derive(Debug, Default, Clone)]
struct Scrape {
    accepted: f64,
    /// (upper bound in seconds, cumulative count)
    buckets: Vec<(f64, f64)>,
}

async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<Scrape> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut s = Scrape::default();
    for line in text.lines() {
        if line.starts_with("nurse_fixes_total") && line.contains("outcome=\"accepted\"") {
            s.accepted = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("nurse_fix_to_index_seconds_bucket{le=\"") {
            let mut parts = rest.splitn(2, "\"}");
            let le = parts.next().unwrap_or("");
            let count = parts
                .next()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0);
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            s.buckets.push((le, count));
        }
    }
    Ok(s)
}

/// The sum of every instance's counters (the histograms share bounds).
async fn scrape_all(http: &reqwest::Client, urls: &[String]) -> anyhow::Result<Scrape> {
    let mut total = Scrape::default();
    for url in urls {
        let s = scrape(http, url).await?;
        total.accepted += s.accepted;
        for (le, count) in s.buckets {
            match total.buckets.iter_mut().find(|(l, _)| *l == le) {
                Some((_, c)) => *c += count,
                None => total.buckets.push((le, count)),
            }
        }
    }
    Ok(total)
}

/// The smallest bucket bound holding quantile `q` of the window's fixes.
fn quantile(before: &Scrape, after: &Scrape, q: f64) -> Option<f64> {
    let deltas: Vec<(f64, f64)> = after
        .buckets
        .iter()
        .map(|(le, c)| {
            let prev = before
                .buckets
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, c - prev)
        })
        .collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    deltas
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map(|(le, _)| *le)
}

pub async fn run(args: FixesArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.nurses == 0 || args.frames_per_second <= 0.0 {
        bail!("--nurses, --batch and --frames-per-second must be positive");
    }
    let urls = crate::split_urls(&args.url);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let ids = add_nurses(&http, &urls[0], &args.org, args.nurses, &["wound_care"]).await?;

    eprintln!("yixin-load: connecting {} phones", ids.len());
    let sockets: Vec<anyhow::Result<_>> = stream::iter(ids.iter().cloned().enumerate())
        .map(|(n, id)| {
            let http = http.clone();
            // Phone n to instance n (mod): sticky, as a load balancer keeps
            // a socket on the instance it reached.
            let url = urls[n % urls.len()].clone();
            let ws_base = url.replacen("http", "ws", 1);
            let org = args.org.clone();
            async move {
                let token = token(&http, &url, "nurse", &id, &org).await?;
                let (mut ws, _) = tokio_tungstenite::connect_async(format!(
                    "{ws_base}/v1/nurse/ws?token={token}"
                ))
                .await
                .context("opening the nurse socket")?;
                ws.send(Message::text(r#"{"type":"shift","state":"on"}"#))
                    .await?;
                anyhow::Ok(ws)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let sockets: Vec<_> = sockets.into_iter().collect::<anyhow::Result<_>>()?;

    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(args.warmup_seconds + args.seconds);
    let period = Duration::from_secs_f64(1.0 / args.frames_per_second);
    let mut tasks = Vec::with_capacity(sockets.len());
    for (n, ws) in sockets.into_iter().enumerate() {
        let (mut tx, mut rx) = ws.split();
        let errors = errors.clone();
        let closed = closed.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(frame) = rx.next().await {
                match frame {
                    Ok(Message::Text(t)) if t.as_str().contains("\"error\"") => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Message::Close(_)) | Err(_) => {
                        // Closes at the end of the run are ours.
                        if Instant::now() < stop_at {
                            closed.fetch_add(1, Ordering::Relaxed);
                        }
                        break;
                    }
                    _ => {}
                }
            }
        }));
        let sent = sent.clone();
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            let mut walk = Walk::new(n as u64 + 1);
            // Spread the phones over the period, as real ones are.
            let phase = period.mul_f64(n as f64 / 1_000.0 % 1.0);
            tokio::time::sleep(phase).await;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < stop_at {
                tick.tick().await;
                let now = chrono::Utc::now();
                let fixes: Vec<serde_json::Value> = (0..batch)
                    .map(|i| {
                        let (lat, lng) = walk.step();
                        // Oldest first, the newest stamped now.
                        let ts =
                            now - chrono::TimeDelta::microseconds(((batch - 1 - i) * 100) as i64);
                        json!({"lat": lat, "lng": lng, "accuracy_m": 8.0, "ts": ts})
                    })
                    .collect();
                let frame = if batch == 1 {
                    let mut f = fixes[0].clone();
                    f["type"] = json!("location");
                    f
                } else {
                    json!({"type": "locations", "fixes": fixes})
                };
                if tx.send(Message::text(frame.to_string())).await.is_err() {
                    break;
                }
                sent.fetch_add(batch as u64, Ordering::Relaxed);
            }
            let _ = tx.close().await;
        }));
    }

    tokio::time::sleep(Duration::from_secs(args.warmup_seconds)).await;
    let before = scrape_all(&http, &urls).await?;
    let sent_before = sent.load(Ordering::Relaxed);
    let started = Instant::now();
    eprintln!("yixin-load: measuring");
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let after = scrape_all(&http, &urls).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let sent_in_window = sent.load(Ordering::Relaxed) - sent_before;
    eprintln!("yixin-load: measured");
    for t in tasks {
        t.abort();
    }

    let indexed = (after.accepted - before.accepted) / elapsed;
    let p50 = quantile(&before, &after, 0.50);
    let p99 = quantile(&before, &after, 0.99);
    let ms = |v: Option<f64>| v.map(|s| s * 1_000.0);
    let summary = json!({
        "phones": args.nurses,
        "batch": args.batch,
        "frames_per_second_per_phone": args.frames_per_second,
        "seconds": elapsed,
        "fixes_sent_per_s": sent_in_window as f64 / elapsed,
        "fixes_indexed_per_s": indexed,
        "fix_to_index_p50_ms_at_most": ms(p50),
        "fix_to_index_p99_ms_at_most": ms(p99),
        "error_frames": errors.load(Ordering::Relaxed),
        "sockets_closed": closed.load(Ordering::Relaxed),
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "phones {}  batch {}  {:.1} frames/s each\nsent     {:>10.0} fixes/s\nindexed  {:>10.0} fixes/s\nfix→index p50 ≤ {} ms, p99 ≤ {} ms (bucket bounds)\nerror frames {}, sockets closed {}",
            args.nurses,
            args.batch,
            args.frames_per_second,
            sent_in_window as f64 / elapsed,
            indexed,
            ms(p50).map_or("n/a".to_owned(), |v| v.to_string()),
            ms(p99).map_or("n/a".to_owned(), |v| v.to_string()),
            summary["error_frames"],
            summary["sockets_closed"],
        );
    }
    Ok(())
}
