//! `cargo run -p yixin-simulator --example greedy_as_engine`: `greedy` on
//! seeds 1–5 (7 days, default scenario) as the simulator's plain policy
//! runs it (waiting orders woken only when a nurse comes on shift) and as
//! the engine runs it (every waiting order also woken when a nurse comes
//! free: `Features::risk` does only that for greedy, whose ranking has no
//! risk term), then with repositioning (single-kind, as the engine's
//! worker; and by kind) and with chaining (not part of the report).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use yixin_simulator::online::{self, Features, Online};
use yixin_simulator::{Instance, PolicyFigures, Scenario};
fn main() {
    for seed in 1..=5 {
        let mut s = Scenario::shuangfu();
        s.seed = seed;
        s.days = 7;
        let inst = Instance::generate(&s, &yixin_domain::Catalog::seed()).unwrap();
        let created: Vec<i64> = inst.orders.iter().map(|o| o.created_ms).collect();
        let patients: Vec<usize> = inst.orders.iter().map(|o| o.patient).collect();
        let mut line = format!("seed {seed}:");
        for (name, f) in [
            ("greedy", Features::NONE),
            (
                "greedy+wake",
                Features {
                    risk: true,
                    ..Features::NONE
                },
            ),
            (
                "greedy+wake+repo1",
                Features {
                    risk: true,
                    reposition: true,
                    ..Features::NONE
                },
            ),
            (
                "greedy+wake+repoK",
                Features {
                    risk: true,
                    reposition: true,
                    skills: true,
                    ..Features::NONE
                },
            ),
            (
                "greedy+wake+chain",
                Features {
                    risk: true,
                    chain: true,
                    ..Features::NONE
                },
            ),
        ] {
            let t = online::run_with(&inst, Online::Greedy, f);
            let fig = PolicyFigures::of(&t, &created, &patients);
            line += &format!(
                " {name} {:.1} unserved {:.1};",
                fig.within_30_min_share * 100.0,
                fig.unserved_share * 100.0
            );
        }
        println!("{line}");
    }
}
