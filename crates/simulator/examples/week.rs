//! `cargo run -p yixin-simulator --example week -- SEED DAYS [ORDERS_PER_DAY NURSES] [POLICIES]`:
//! the report of `yixin simulate --json` for one run, without building the
//! whole platform binary (what the README's figures were measured with).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use yixin_simulator::{Policy, Scenario};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut s = Scenario::shuangfu();
    s.seed = args.first().and_then(|x| x.parse().ok()).unwrap_or(1);
    s.days = args.get(1).and_then(|x| x.parse().ok()).unwrap_or(7);
    if let Some(o) = args.get(2).and_then(|x| x.parse().ok()) {
        s.orders_per_day = o;
    }
    if let Some(n) = args.get(3).and_then(|x| x.parse().ok()) {
        s.nurses = n;
    }
    let policies = Policy::parse_list(args.get(4).map_or("all", String::as_str)).unwrap();
    let report = yixin_simulator::simulate(&s, &yixin_domain::Catalog::seed(), &policies).unwrap();
    println!("{}", serde_json::to_string(&report).unwrap());
}
