//! `cargo run -p yixin-simulator --example ablate -- SEED [ORDERS NURSES] [KEY=VALUE ...]`:
//! `batch+nochain` and `batch+` on one 7-day seed with the risk model's and
//! repositioning's fields overridden by `KEY=VALUE` (e.g. `late_reserve=2`,
//! `reach_s=900`); `only=chain` or `only=nochain` runs one of them;
//! `NOSKILLS=1` turns skill-aware repositioning off, `NOREPO=1` all
//! repositioning (the risk objective alone, as the engine's `risk`
//! policy: `NOREPO=1 ablate SEED only=nochain`), `DIAG=1` prints the
//! outcome per required skill set, `HS=1` the same for hindsight, `HOURS=1`
//! the figures by hour (not part of the report), `WINDOW_MS=N` the batch
//! window (2,000 ms by default).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use yixin_dispatch_core::reposition::RepositionSettings;
use yixin_simulator::metrics::{Outcome, Tally};
use yixin_simulator::online::{self, Features, Online};
use yixin_simulator::{Instance, PolicyFigures, Scenario};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut s = Scenario::shuangfu();
    s.seed = args.first().and_then(|x| x.parse().ok()).unwrap_or(1);
    s.days = 7;
    let mut rest = &args[1.min(args.len())..];
    if rest.len() >= 2 && !rest[0].contains('=') {
        s.orders_per_day = rest[0].parse().unwrap();
        s.nurses = rest[1].parse().unwrap();
        rest = &rest[2..];
    }
    if let Some(ms) = std::env::var("WINDOW_MS").ok().and_then(|v| v.parse().ok()) {
        s.batch_window_ms = ms;
    }
    let inst = Instance::generate(&s, &yixin_domain::Catalog::seed()).unwrap();
    let mut model = online::risk_model(&inst);
    let mut repo = RepositionSettings::default();
    let mut only = String::new();
    for kv in rest {
        let (k, v) = kv.split_once('=').expect("KEY=VALUE");
        let x: f64 = v.parse().unwrap_or(0.0);
        match k {
            "finish_sd_s" => model.finish_sd_s = x,
            "visit_sigma" => model.visit_sigma = x,
            "risk_weight_s" => model.risk_weight_s = x,
            "max_chained_p_late" => model.max_chained_p_late = x,
            "chain_unless_free_p_late_below" => model.chain_unless_free_p_late_below = x,
            "hopeless_p_late" => model.hopeless_p_late = x,
            "late_reserve" => model.late_reserve = Some(x as u32),
            "reach_s" => repo.reach_s = x as u32,
            "idle_busy_prob" => repo.idle_busy_prob = x,
            "busy_busy_prob" => repo.busy_busy_prob = x,
            "max_move_m" => repo.max_move_m = x,
            "only" => only = v.to_string(),
            _ => panic!("unknown key {k}"),
        }
    }
    if std::env::var("HS").is_ok() {
        diag(&inst, &yixin_simulator::hindsight::run(&inst));
    }
    let created: Vec<i64> = inst.orders.iter().map(|o| o.created_ms).collect();
    let patients: Vec<usize> = inst.orders.iter().map(|o| o.patient).collect();
    let skills = std::env::var("NOSKILLS").is_err();
    let reposition = std::env::var("NOREPO").is_err();
    for chain in [false, true] {
        if (only == "chain" && !chain) || (only == "nochain" && chain) {
            continue;
        }
        let features = Features {
            chain,
            skills,
            reposition,
            ..Features::ALL
        };
        let t = online::run_tuned(&inst, Online::Batch, features, &model, &repo);
        if std::env::var("DIAG").is_ok() {
            diag(&inst, &t);
        }
        let f = PolicyFigures::of(&t, &created, &patients);
        let bh = &f.by_hour;
        if std::env::var("HOURS").is_ok() {
            for (h, x) in bh.iter().enumerate() {
                println!(
                    "  {h:02} orders {:4} within {:5.1} unserved {:5.1}",
                    x.orders,
                    x.within_30_min_share.unwrap_or(0.0) * 100.0,
                    x.unserved_share.unwrap_or(0.0) * 100.0
                );
            }
        }
        let po: usize = (9..12).map(|h| bh[h].orders).sum();
        let pw: f64 = (9..12)
            .map(|h| bh[h].within_30_min_share.unwrap_or(0.0) * bh[h].orders as f64)
            .sum();
        println!(
            "seed {} chain {chain}: {:.1} peak {:.1} unserved {:.1} chained {} back {} moves {}",
            s.seed,
            f.within_30_min_share * 100.0,
            pw / po as f64 * 100.0,
            f.unserved_share * 100.0,
            f.chained,
            f.chain_taken_back,
            f.reposition_moves
        );
    }
}

/// Per required skill set: orders, share within 30 min, unserved, and the
/// skill sets of the nurses who served them; and the nurses' time beyond
/// the visits per served order.
fn diag(inst: &Instance, t: &Tally) {
    use std::collections::BTreeMap;
    let busy: i64 = t.jobs.iter().map(|j| j.2 - j.1).sum();
    let served: Vec<usize> = (0..inst.orders.len())
        .filter(|&o| t.served_by[o].is_some())
        .collect();
    let visits: i64 = served.iter().map(|&o| inst.orders[o].duration_ms).sum();
    println!(
        "  served {}, busy beyond visits {:.1} min per served order",
        served.len(),
        (busy - visits) as f64 / served.len().max(1) as f64 / 60_000.0
    );
    let mut by: BTreeMap<u64, (usize, usize, usize, BTreeMap<u64, usize>)> = BTreeMap::new();
    for (o, order) in inst.orders.iter().enumerate() {
        let e = by.entry(order.required).or_default();
        e.0 += 1;
        match t.outcomes[o] {
            Some((_, Outcome::Served { arrival_ms })) => {
                if arrival_ms - order.created_ms <= 30 * 60_000 {
                    e.1 += 1;
                }
            }
            _ => e.2 += 1,
        }
        if let Some(n) = t.served_by[o] {
            *e.3.entry(inst.nurses[n].skills).or_default() += 1;
        }
    }
    for (mask, (n, w, u, who)) in by {
        println!(
            "  skills {mask:#06x}: {n} orders, {:.1} % within 30, {u} unserved, served by {who:x?}",
            w as f64 / n as f64 * 100.0
        );
    }
}
