//! `yixin-load dispatch`: dispatch latency end to end. Many nurse phones on
//! shift (sockets open, one fix each, spread over Shuangfu) and residents
//! placing orders at a fixed rate (open loop); each phone accepts the offers
//! it gets. Reported: order placed → offer frame on the nurse's socket,
//! p50/p90/p99/max, counted from the moment the `POST /v1/orders` was sent
//! (so it includes creating the order) and from its 201.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::fixes::{Walk, add_nurses, token};

#[derive(clap::Args)]
pub struct DispatchArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = "demo")]
    org: String,
    /// Nurse phones online.
    #[arg(long, default_value_t = 10_000)]
    nurses: usize,
    /// Orders placed per second (open loop).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Default)]
pub(crate) struct Timings {
    /// order id → (sent, answered 201)
    placed: HashMap<String, (Instant, Instant)>,
    /// order id → first offer frame seen
    offered: HashMap<String, Instant>,
}

pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(args: DispatchArgs) -> anyhow::Result<()> {
    if args.rate <= 0.0 || args.nurses == 0 {
        bail!("--rate and --nurses must be positive");
    }
    let urls = crate::split_urls(&args.url);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()?;
    let ids = add_nurses(
        &http,
        &urls[0],
        &args.org,
        args.nurses,
        &["neonatal", "wound_care"],
    )
    .await?;
    let timings = Arc::new(Mutex::new(Timings::default()));
    let tasks = phones_on_shift(&http, &urls, &args.org, &ids, Some(timings.clone())).await?;
    // Let the fleet feed reach the dispatcher.
    tokio::time::sleep(Duration::from_secs(2)).await;

    eprintln!("yixin-load: measuring");
    let total = (args.rate * args.seconds as f64).round() as u64;
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let started = Instant::now();
    let mut placing = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = started + period.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        // Orders spread over the district, as residents are.
        let (lat, lng) = Walk::new(1_000_000 + i).step();
        let http = http.clone();
        let url = urls[i as usize % urls.len()].clone();
        let org = args.org.clone();
        let timings = timings.clone();
        placing.push(tokio::spawn(async move {
            let resident = token(
                &http,
                &url,
                "resident",
                &format!("load-r-{i}-{}", uuid::Uuid::new_v4().simple()),
                &org,
            )
            .await?;
            let sent = Instant::now();
            let reply: serde_json::Value = http
                .post(format!("{url}/v1/orders"))
                .bearer_auth(resident)
                .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                .json(&json!({
                    "service_code": "infant_jaundice_test",
                    "location": {"lat": lat, "lng": lng},
                    "address": {"text": "双福街道 福城大道 88 号"},
                    "contact": {"name": "王女士", "phone": "13812345678"},
                    // The seed catalogue's consent version (an order must accept it).
                    "consent_version": "2026-11-30",
                }))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let answered = Instant::now();
            if let Some(id) = reply["id"].as_str() {
                timings
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .placed
                    .insert(id.to_owned(), (sent, answered));
            }
            anyhow::Ok(())
        }));
    }
    let mut failed = 0;
    for p in placing {
        if !matches!(p.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let placed_in = started.elapsed().as_secs_f64();
    // Offers for the last orders (or a dispatcher that fell behind): wait
    // until every placed order has one, up to 30 s.
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(30) {
        let all_offered = {
            let t = timings.lock().unwrap_or_else(|p| p.into_inner());
            t.placed.keys().all(|o| t.offered.contains_key(o))
        };
        if all_offered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("yixin-load: measured");
    for t in tasks {
        t.abort();
    }
    let t = timings.lock().unwrap_or_else(|p| p.into_inner());
    let mut from_sent = Vec::new();
    let mut from_201 = Vec::new();
    for (order, (sent, answered)) in &t.placed {
        if let Some(offered) = t.offered.get(order) {
            from_sent.push(offered.saturating_duration_since(*sent).as_secs_f64() * 1e3);
            from_201.push(offered.saturating_duration_since(*answered).as_secs_f64() * 1e3);
        }
    }
    from_sent.sort_by(f64::total_cmp);
    from_201.sort_by(f64::total_cmp);
    let summary = json!({
        "nurses": args.nurses,
        "rate": args.rate,
        "orders_placed": t.placed.len(),
        "orders_failed": failed,
        "placed_per_s": t.placed.len() as f64 / placed_in,
        "orders_offered": from_sent.len(),
        "offer_ms_from_post": {"p50": percentile(&from_sent, 0.5), "p90": percentile(&from_sent, 0.9), "p99": percentile(&from_sent, 0.99), "max": from_sent.last()},
        "offer_ms_from_201": {"p50": percentile(&from_201, 0.5), "p90": percentile(&from_201, 0.9), "p99": percentile(&from_201, 0.99), "max": from_201.last()},
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "nurses {}  rate {}/s  placed {} ({} failed)  offered {}\norder → offer frame, from POST: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms\n                  from 201:  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms",
            args.nurses,
            args.rate,
            t.placed.len(),
            failed,
            from_sent.len(),
            percentile(&from_sent, 0.5),
            percentile(&from_sent, 0.9),
            percentile(&from_sent, 0.99),
            percentile(&from_201, 0.5),
            percentile(&from_201, 0.9),
            percentile(&from_201, 0.99),
        );
    }
    Ok(())
}

/// Nurse phones on shift for `ids`: sockets open (phone `n` to instance
/// `urls[n % len]`), one fix each, then a fix every 15 s at each phone's own
/// phase; every offer is accepted, and its first sighting recorded in
/// `timings` when given. Abort the tasks to hang up.
pub(crate) async fn phones_on_shift(
    http: &reqwest::Client,
    urls: &[String],
    org: &str,
    ids: &[String],
    timings: Option<Arc<Mutex<Timings>>>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    eprintln!("yixin-load: connecting {} phones", ids.len());
    let sockets: Vec<anyhow::Result<_>> = stream::iter(ids.iter().cloned().enumerate())
        .map(|(n, id)| {
            let http = http.clone();
            let url = urls[n % urls.len()].clone();
            let ws_base = url.replacen("http", "ws", 1);
            let org = org.to_owned();
            async move {
                let token = token(&http, &url, "nurse", &id, &org).await?;
                let (mut ws, _) = tokio_tungstenite::connect_async(format!("{ws_base}/v1/nurse/ws?token={token}"))
                    .await
                    .context("opening the nurse socket")?;
                ws.send(Message::text(r#"{"type":"shift","state":"on"}"#)).await?;
                let mut walk = Walk::new(n as u64 + 7);
                let (lat, lng) = walk.step();
                ws.send(Message::text(
                    json!({"type":"location","lat":lat,"lng":lng,"accuracy_m":8,"ts":chrono::Utc::now()}).to_string(),
                ))
                .await?;
                anyhow::Ok(ws)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let sockets: Vec<_> = sockets.into_iter().collect::<anyhow::Result<_>>()?;
    let mut tasks = Vec::new();
    let phones = sockets.len().max(1);
    let started_phones = tokio::time::Instant::now();
    for (n, ws) in sockets.into_iter().enumerate() {
        let timings = timings.clone();
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            // A phone on shift keeps sending fixes (a stale one is not a
            // candidate), every 15 s at its own phase: phones are not in step,
            // and ten thousand fixes in the same instant every 15 s would be
            // a burst no real fleet sends.
            let mut walk = Walk::new(n as u64 + 7);
            let period = Duration::from_secs(15);
            let phase = period.mul_f64(n as f64 / phones as f64);
            let mut fixes = tokio::time::interval_at(started_phones + phase, period);
            loop {
                let frame = tokio::select! {
                    f = rx.next() => match f {
                        Some(Ok(f)) => f,
                        _ => break,
                    },
                    _ = fixes.tick() => {
                        let (lat, lng) = walk.step();
                        let fix = json!({"type":"location","lat":lat,"lng":lng,"accuracy_m":8,"ts":chrono::Utc::now()});
                        if tx.send(Message::text(fix.to_string())).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                let Message::Text(text) = frame else { continue };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                    continue;
                };
                if v["type"] == "offer" {
                    let seen = Instant::now();
                    if let Some(timings) = &timings
                        && let Some(order) = v["order_id"].as_str()
                    {
                        timings
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .offered
                            .entry(order.to_owned())
                            .or_insert(seen);
                    }
                    let accept = json!({"type":"accept","offer_id": v["offer_id"]}).to_string();
                    if tx.send(Message::text(accept)).await.is_err() {
                        break;
                    }
                }
            }
        }));
    }
    Ok(tasks)
}
