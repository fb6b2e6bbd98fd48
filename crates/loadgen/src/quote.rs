//! `yixin-load quote`: the resident's quote before ordering
//! (`POST /v1/quotes`) with many nurse phones online. Quotes are sent at a
//! fixed rate (open loop) from points spread over Shuangfu; reported: the
//! answer's latency p50/p90/p99/max, the answers that were not 200, and how
//! many quotes said the 30-minute promise holds.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use crate::dispatch::{percentile, phones_on_shift};
use crate::fixes::{Walk, add_nurses, token};

#[derive(clap::Args)]
pub struct QuoteArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = "demo")]
    org: String,
    /// Nurse phones online.
    #[arg(long, default_value_t = 10_000)]
    nurses: usize,
    /// Quotes asked per second (open loop).
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long)]
    json: bool,
}

/// Residents asking (a quote needs a resident's token; minting one is not
/// what is measured).
const RESIDENTS: usize = 50;

pub async fn run(args: QuoteArgs) -> anyhow::Result<()> {
    if args.rate <= 0.0 || args.nurses == 0 {
        bail!("--rate and --nurses must be positive");
    }
    let url = args.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()?;
    let ids = add_nurses(
        &http,
        &url,
        &args.org,
        args.nurses,
        &["neonatal", "wound_care"],
    )
    .await?;
    let phones = phones_on_shift(&http, std::slice::from_ref(&url), &args.org, &ids, None).await?;
    let mut residents = Vec::with_capacity(RESIDENTS);
    for i in 0..RESIDENTS {
        residents.push(token(&http, &url, "resident", &format!("quote-r-{i}"), &args.org).await?);
    }
    // Let the fleet feed reach the dispatcher.
    tokio::time::sleep(Duration::from_secs(2)).await;

    eprintln!("yixin-load: measuring");
    let total = (args.rate * args.seconds as f64).round() as u64;
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let started = Instant::now();
    let mut asking = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = started + period.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (lat, lng) = Walk::new(2_000_000 + i).step();
        let http = http.clone();
        let request = http
            .post(format!("{url}/v1/quotes"))
            .bearer_auth(&residents[i as usize % RESIDENTS])
            .json(&json!({
                "service_code": "infant_jaundice_test",
                "location": {"lat": lat, "lng": lng},
            }));
        asking.push(tokio::spawn(async move {
            let sent = Instant::now();
            let reply = request.send().await?;
            let status = reply.status().as_u16();
            let body: serde_json::Value = reply.json().await.unwrap_or_default();
            let ms = sent.elapsed().as_secs_f64() * 1e3;
            anyhow::Ok((ms, status, body["within_promise"] == true))
        }));
    }
    let mut latencies = Vec::with_capacity(asking.len());
    let (mut failed, mut within) = (0u64, 0u64);
    for a in asking {
        match a.await {
            Ok(Ok((ms, 200, holds))) => {
                latencies.push(ms);
                within += u64::from(holds);
            }
            _ => failed += 1,
        }
    }
    let asked_in = started.elapsed().as_secs_f64();
    eprintln!("yixin-load: measured");
    for p in phones {
        p.abort();
    }
    latencies.sort_by(f64::total_cmp);
    let summary = json!({
        "nurses": args.nurses,
        "rate": args.rate,
        "quotes": latencies.len(),
        "failed": failed,
        "quotes_per_s": latencies.len() as f64 / asked_in,
        "within_promise": within,
        "quote_ms": {"p50": percentile(&latencies, 0.5), "p90": percentile(&latencies, 0.9), "p99": percentile(&latencies, 0.99), "max": latencies.last()},
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "nurses {}  rate {}/s  quotes {} ({} not 200)  {:.0}/s  within 30 min {}\nPOST /v1/quotes: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            args.nurses,
            args.rate,
            latencies.len(),
            failed,
            latencies.len() as f64 / asked_in,
            within,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}
