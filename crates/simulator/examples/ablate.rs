//! `cargo run -p yixin-simulator --example ablate -- SEED`: `batch` with
//! subsets of the plus features on one 7-day seed (not part of the report).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use yixin_simulator::online::{self, Features, Online};
use yixin_simulator::{Instance, PolicyFigures, Scenario};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut s = Scenario::shuangfu();
    s.seed = args.first().and_then(|x| x.parse().ok()).unwrap_or(1);
    s.days = 7;
    let inst = Instance::generate(&s, &yixin_domain::Catalog::seed()).unwrap();
    let created: Vec<i64> = inst.orders.iter().map(|o| o.created_ms).collect();
    let patients: Vec<usize> = inst.orders.iter().map(|o| o.patient).collect();
    for (c, r, k) in [
        (false, false, true),
        (false, true, true),
        (true, false, true),
        (true, true, true),
    ] {
        let t = online::run_with(
            &inst,
            Online::Batch,
            Features {
                chain: c,
                reposition: r,
                risk: k,
            },
        );
        let f = PolicyFigures::of(&t, &created, &patients);
        let bh = &f.by_hour;
        let po: usize = (9..12).map(|h| bh[h].orders).sum();
        let pw: f64 = (9..12)
            .map(|h| bh[h].within_30_min_share.unwrap_or(0.0) * bh[h].orders as f64)
            .sum();
        println!(
            "chain {c} repo {r} risk {k}: {:.1} peak {:.1} unserved {:.1} chained {} back {} moves {}",
            f.within_30_min_share * 100.0,
            pw / po as f64 * 100.0,
            f.unserved_share * 100.0,
            f.chained,
            f.chain_taken_back,
            f.reposition_moves
        );
    }
}
