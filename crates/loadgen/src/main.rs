//! `yixin-load`: drives a running platform over HTTP, as many phones would,
//! and reports throughput and latency. Bounded in count and time; it only
//! talks to the address it is given (loopback in our scripts).
//!
//! `yixin-load orders --url http://127.0.0.1:8080 --seconds 20 --concurrency 64`
//! places orders from many residents (each under the per-resident rate
//! limit) and prints orders/s with p50/p90/p99/max latency of `POST /v1/orders`.
//! `yixin-load city` runs a whole simulated district (see [`yixin_loadgen::city`]).
//!
//! It shares the machine with what it measures, so it is kept lean: one
//! runtime thread by default (`--threads`), request bodies and headers built
//! before the clock starts, one shared HTTP client with a kept-alive
//! connection per worker. On stderr it marks the measured window
//! (`yixin-load: measuring` / `yixin-load: measured`) so a script can
//! account the CPU used in it.

mod dispatch;
mod fixes;
mod quote;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures_util::{StreamExt, stream};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::json;

#[derive(Parser)]
#[command(name = "yixin-load")]
struct Cli {
    /// Runtime worker threads; 1 runs everything on the main thread.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Order creation: `POST /v1/orders` from many residents.
    Orders(OrdersArgs),
    /// Location ingest: simulated nurse phones streaming fixes over the socket.
    Fixes(fixes::FixesArgs),
    /// Dispatch latency: order placed → offer frame on the nurse's socket.
    Dispatch(dispatch::DispatchArgs),
    /// The resident's quote (`POST /v1/quotes`) with many nurses online.
    Quote(quote::QuoteArgs),
    /// A simulated district: residents ordering, nurse phones accepting,
    /// riding and stepping through visits; order → offer / accept / arrival.
    City(yixin_loadgen::city::CityArgs),
    /// A fault drill's district against a split deployment, and its verdict
    /// read from PostgreSQL (`scripts/drill` runs it).
    Drill(yixin_loadgen::drill::DrillArgs),
    /// The README's table of recovery times from `scripts/drill`'s summary.json.
    DrillTable {
        /// The JSON array of the drills' summaries.
        summary: std::path::PathBuf,
    },
}

/// The instances in a `--url` that lists several, comma-separated (the
/// same deployment behind no load balancer: requests and phones are spread
/// over them in turn), without trailing slashes. Never empty.
pub(crate) fn split_urls(arg: &str) -> Vec<String> {
    let urls: Vec<String> = arg
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        vec![arg.to_owned()]
    } else {
        urls
    }
}

#[derive(clap::Args)]
struct OrdersArgs {
    /// Base URL of a running platform with dev login on.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Organisation whose residents order (its service area must contain
    /// the order locations: the demo area around Shuangfu).
    #[arg(long, default_value = "demo")]
    org: String,
    /// Measured duration.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Unmeasured warm-up before it.
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// Requests in flight at once (closed loop).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Orders one resident may place a minute (the server's limit).
    #[arg(long, default_value_t = 10)]
    per_resident_per_minute: u64,
    /// Upper bound on the orders/s the run can reach; sets how many
    /// residents are needed to stay under their rate limit. Keep the
    /// residents (max rate × seconds ÷ per-resident limit) under 10,000: past
    /// that many callers a minute the server's limiter sweeps its table on
    /// every request, which is not what this measures.
    #[arg(long, default_value_t = 5000)]
    max_rate: u64,
    /// Hard stop on requests, whatever the duration.
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()?
    };
    match cli.command {
        Command::Orders(args) => runtime.block_on(orders(args)),
        Command::Fixes(args) => runtime.block_on(fixes::run(args)),
        Command::Dispatch(args) => runtime.block_on(dispatch::run(args)),
        Command::Quote(args) => runtime.block_on(quote::run(args)),
        Command::City(args) => runtime.block_on(async {
            let json = args.json;
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            let report = yixin_loadgen::city::run(args, stop_rx).await?;
            if json {
                println!("{}", report.summary);
            } else {
                println!("{}", report.text());
            }
            anyhow::Ok(())
        }),
        Command::Drill(args) => {
            let name = args.name.clone();
            if !runtime.block_on(yixin_loadgen::drill::run(args))? {
                bail!("drill {name} failed");
            }
            Ok(())
        }
        Command::DrillTable { summary } => {
            let text = std::fs::read_to_string(&summary)
                .with_context(|| format!("reading {}", summary.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", summary.display()))?;
            print!("{}", yixin_loadgen::drill::table(&value));
            Ok(())
        }
    }
}

/// What one worker measured.
#[derive(Default)]
struct WorkerResult {
    latencies: Vec<Duration>,
    errors: Vec<(u16, String)>,
}

/// Everything a request needs, prepared before the clock starts.
struct Prepared {
    /// `POST /v1/orders` of each instance, used in turn.
    urls: Vec<reqwest::Url>,
    /// `Bearer <token>` of each resident.
    auth: Vec<HeaderValue>,
    /// Encoded order bodies, used in turn.
    bodies: Vec<Vec<u8>>,
    /// Prefix of this run's idempotency keys.
    run: String,
}

async fn orders(args: OrdersArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let urls = split_urls(&args.url);
    let url = urls.join(",");
    let total_seconds = args.seconds + args.warmup_seconds;
    // Each resident places at most `per_resident_per_minute` orders in the
    // run's minutes; enough residents that none is ever limited.
    let minutes = total_seconds.div_ceil(60).max(1);
    let residents = (args.max_rate * total_seconds)
        .div_ceil(args.per_resident_per_minute.max(1) * minutes)
        .max(args.concurrency as u64) as usize;
    eprintln!("minting {residents} resident tokens…");
    let tokens = mint_tokens(&http, &urls[0], &args.org, residents).await?;
    let auth = tokens
        .iter()
        .map(|t| HeaderValue::try_from(format!("Bearer {t}")))
        .collect::<Result<Vec<_>, _>>()
        .context("a token is not a valid header value")?;
    let bodies = (0..1024)
        .map(|i| serde_json::to_vec(&order_body(i % 97, i as u64)))
        .collect::<Result<Vec<_>, _>>()?;
    let prepared = Arc::new(Prepared {
        urls: urls
            .iter()
            .map(|u| reqwest::Url::parse(&format!("{u}/v1/orders")).context("--url"))
            .collect::<anyhow::Result<_>>()?,
        auth,
        bodies,
        run: uuid::Uuid::new_v4().simple().to_string(),
    });

    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let warmup_end = started + Duration::from_secs(args.warmup_seconds);
    let end = warmup_end + Duration::from_secs(args.seconds);
    let marker = tokio::spawn(async move {
        tokio::time::sleep_until(warmup_end.into()).await;
        eprintln!("yixin-load: measuring{}", own_cpu_ticks());
    });

    let workers = (0..args.concurrency).map(|_| {
        let http = http.clone();
        let prepared = prepared.clone();
        let next = next.clone();
        let max_requests = args.max_requests;
        tokio::spawn(async move {
            let key_header = HeaderName::from_static("idempotency-key");
            let json_type = HeaderValue::from_static("application/json");
            let mut result = WorkerResult::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= max_requests || Instant::now() >= end {
                    break;
                }
                let i = n as usize;
                let key = HeaderValue::try_from(format!("{}-{n}", prepared.run));
                let body = prepared.bodies[i % prepared.bodies.len()].clone();
                let began = Instant::now();
                let mut request = http
                    .post(prepared.urls[i % prepared.urls.len()].clone())
                    .header(
                        AUTHORIZATION,
                        prepared.auth[i % prepared.auth.len()].clone(),
                    )
                    .header(CONTENT_TYPE, json_type.clone())
                    .body(body);
                if let Ok(key) = key {
                    request = request.header(key_header.clone(), key);
                }
                let sent = request.send().await;
                let measured = began >= warmup_end;
                match sent {
                    Ok(resp) if resp.status().as_u16() == 201 => {
                        // The request is done when the whole reply is read.
                        let read = resp.bytes().await;
                        let elapsed = began.elapsed();
                        if measured {
                            match read {
                                Ok(_) => result.latencies.push(elapsed),
                                Err(e) => result.errors.push((201, e.to_string())),
                            }
                        }
                    }
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let text = resp.text().await.unwrap_or_default();
                        if measured {
                            result.errors.push((status, text));
                        }
                    }
                    Err(err) => {
                        if measured {
                            result.errors.push((0, err.to_string()));
                        }
                    }
                }
            }
            result
        })
    });
    let results: Vec<_> = stream::iter(workers)
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let finished = Instant::now();
    marker.abort();
    eprintln!("yixin-load: measured{}", own_cpu_ticks());
    let measured_secs = finished
        .min(end)
        .saturating_duration_since(warmup_end)
        .as_secs_f64()
        .max(1e-9);

    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        let r = result.context("a load worker panicked")?;
        latencies.extend(r.latencies);
        errors.extend(r.errors);
    }
    latencies.sort_unstable();
    let ok = latencies.len();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * (ok as f64 - 1.0)).round() as usize;
        latencies[i.min(ok - 1)].as_secs_f64() * 1000.0
    };
    let summary = json!({
        "scenario": "order_creation",
        "url": url,
        "concurrency": args.concurrency,
        "seconds": measured_secs,
        "created": ok,
        "errors": errors.len(),
        "orders_per_sec": ok as f64 / measured_secs,
        "p50_ms": pct(50.0),
        "p90_ms": pct(90.0),
        "p99_ms": pct(99.0),
        "max_ms": pct(100.0),
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "order creation: {ok} created, {} errors in {measured_secs:.1} s at concurrency {}\n  \
             {:.0} orders/s   p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
            errors.len(),
            args.concurrency,
            ok as f64 / measured_secs,
            pct(50.0),
            pct(90.0),
            pct(99.0),
            pct(100.0),
        );
    }
    if let Some((status, text)) = errors.first() {
        eprintln!("first error: {status} {text}");
    }
    if ok == 0 {
        bail!("no order was created");
    }
    Ok(())
}

/// ` cpu_ticks=N`: the user + system CPU time this process used so far, in
/// clock ticks, where `/proc` tells it (Linux); else nothing.
fn own_cpu_ticks() -> String {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return String::new();
    };
    // Fields after the command name (which may hold spaces) start at `state`;
    // utime and stime are the 12th and 13th of them.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return String::new();
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    match (
        fields.get(11).and_then(|f| f.parse::<u64>().ok()),
        fields.get(12).and_then(|f| f.parse::<u64>().ok()),
    ) {
        (Some(user), Some(system)) => format!(" cpu_ticks={}", user + system),
        _ => String::new(),
    }
}

/// A valid order at a point spread over the demo area around Shuangfu.
fn order_body(worker: usize, n: u64) -> serde_json::Value {
    let spread = ((worker as u64 * 7919 + n * 104_729) % 10_000) as f64 / 10_000.0;
    let lat = 29.375 + 0.03 * spread;
    let lng = 106.295 + 0.04 * ((spread * 7.0) % 1.0);
    let services = [
        "infant_jaundice_test",
        "wound_care",
        "urinary_catheter_replacement",
        "cervical_package",
        "acute_low_back_pain_package",
        "dental_plaque_check",
    ];
    json!({
        "service_code": services[(n as usize + worker) % services.len()],
        "location": {"lat": lat, "lng": lng},
        "address": {"text": "重庆市江津区双福街道", "detail": format!("{} 栋 {} 号", worker % 40 + 1, n % 300 + 1)},
        "contact": {"name": "王女士", "phone": "13800138000"},
        "notes": "load test",
        // The seed catalogue's consent version, and a doctor's order for the
        // services that need one (catheter replacement; those orders then
        // wait for screening, which this benchmark of placing does not mind).
        "consent_version": "2026-11-30",
        "doctor_order_ref": format!("RX-LOAD-{worker}-{n}"),
    })
}

async fn mint_tokens(
    http: &reqwest::Client,
    url: &str,
    org: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let tokens: Vec<anyhow::Result<String>> = stream::iter(0..count)
        .map(|i| {
            let http = http.clone();
            let run = run.clone();
            async move {
                fixes::token(
                    &http,
                    url,
                    "resident",
                    &format!("load-{}-{i}", &run[..8]),
                    org,
                )
                .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    tokens.into_iter().collect()
}
