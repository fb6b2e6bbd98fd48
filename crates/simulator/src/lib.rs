//! yixin-simulator: a deterministic discrete-event simulation of a district
//! (residents ordering, nurses on shifts with skills, travel by the ETA
//! model with noise, offers declined or left to expire, visits of the
//! catalogue's durations, repeat patients: courses and reorders) that runs
//! the dispatch engine's own state machine — `greedy` and `batch` — and a
//! clairvoyant `hindsight` planner as the reference, and reports the
//! 30-minute promise and the continuity rate for each; [`compare_continuity`]
//! runs the same instance with the continuity credit and without.
//!
//! Owns: the scenario model ([`scenario`]), the event loop of the online
//! policies ([`online`]), the hindsight planner ([`hindsight`]) and the
//! figures ([`metrics`], [`Report`]). Must not touch: I/O, clocks, threads
//! or an async runtime. A run is a pure function of the [`Scenario`]
//! (seed included): the same inputs give the same report, byte for byte.

pub mod hindsight;
pub mod metrics;
pub mod online;
mod plot;
pub mod scenario;
pub mod staffing;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use yixin_domain::Catalog;

pub use metrics::{HourFigures, PolicyFigures};
pub use scenario::{Instance, Scenario};

/// Why a simulation cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A scenario value out of range (the field, why).
    #[error("scenario: {0}: {1}")]
    Scenario(&'static str, String),
    /// An unknown policy name.
    #[error(
        "unknown policy {0:?}: expected greedy, batch, greedy+, batch+, batch+nochain, batch+reserve, hindsight or all"
    )]
    Policy(String),
}

/// A policy the simulator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    Greedy,
    Batch,
    /// Greedy with chained offers and repositioning.
    GreedyPlus,
    /// Batch with chained offers, repositioning and the risk objective.
    BatchPlus,
    /// `batch+` without chained offers.
    BatchPlusNoChain,
    /// `batch+` with the late reserve (trunk reservation): punctual at the
    /// price of more orders unserved.
    BatchPlusReserve,
    Hindsight,
}

impl Policy {
    pub const ALL: [Policy; 7] = [
        Policy::Greedy,
        Policy::Batch,
        Policy::GreedyPlus,
        Policy::BatchPlus,
        Policy::BatchPlusNoChain,
        Policy::BatchPlusReserve,
        Policy::Hindsight,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Greedy => "greedy",
            Policy::Batch => "batch",
            Policy::GreedyPlus => "greedy+",
            Policy::BatchPlus => "batch+",
            Policy::BatchPlusNoChain => "batch+nochain",
            Policy::BatchPlusReserve => "batch+reserve",
            Policy::Hindsight => "hindsight",
        }
    }

    /// `greedy`, `batch`, `greedy+`, `batch+`, `batch+nochain`,
    /// `batch+reserve`, `hindsight`, or `all`.
    pub fn parse_list(s: &str) -> Result<Vec<Policy>, SimError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim) {
            match part {
                "all" => out.extend(Policy::ALL),
                "greedy" => out.push(Policy::Greedy),
                "batch" => out.push(Policy::Batch),
                "greedy+" => out.push(Policy::GreedyPlus),
                "batch+" => out.push(Policy::BatchPlus),
                "batch+nochain" => out.push(Policy::BatchPlusNoChain),
                "batch+reserve" => out.push(Policy::BatchPlusReserve),
                "hindsight" => out.push(Policy::Hindsight),
                other => return Err(SimError::Policy(other.to_owned())),
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// What the scenario became once drawn: the `scenario` object of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioSummary {
    #[serde(flatten)]
    pub inputs: Scenario,
    pub aged_65_plus: u32,
    pub orders_generated: usize,
    pub nurses_by_shift: BTreeMap<&'static str, usize>,
    pub services: usize,
    /// Orders that are later visits of a course.
    pub course_visit_orders: usize,
    /// Orders that are a resident's reorder.
    pub reorders: usize,
    pub hourly_profile: [f64; 24],
}

/// The report: `{"scenario": …, "policies": {"greedy": …, "batch": …, "hindsight": …}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub scenario: ScenarioSummary,
    pub policies: BTreeMap<&'static str, PolicyFigures>,
    /// The demand forecast's error over the simulated days (what the
    /// repositioning of `greedy+` and `batch+` works from).
    pub forecast: ForecastFigures,
}

/// The forecast's error per cell-hour, over the simulated days: each day
/// forecast from the history and the days before it (see
/// [`yixin_dispatch_core::forecast`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastFigures {
    pub method: &'static str,
    pub history_days: u32,
    /// Cell-hours compared (cells forecast or with an order × 24 × days).
    pub cell_hours: usize,
    pub actual_orders: f64,
    pub forecast_orders: f64,
    /// Mean absolute error per cell-hour, orders.
    pub mae: f64,
    /// Σ|forecast − actual| ÷ Σ actual.
    pub wape: Option<f64>,
}

impl ForecastFigures {
    fn of(inst: &Instance) -> Self {
        let mut cell_hours = 0;
        let (mut abs, mut act, mut fc) = (0.0, 0.0, 0.0);
        let actual: Vec<_> = inst
            .orders
            .iter()
            .map(|o| (o.location, online::instant(o.created_ms)))
            .collect();
        for d in 0..i64::from(inst.scenario.days) {
            let start = d * scenario::DAY_MS;
            let f = online::learn_forecast(inst, start);
            let e = yixin_dispatch_core::forecast::day_error(&f, &actual, online::instant(start));
            cell_hours += e.cell_hours;
            abs += e.mae * e.cell_hours as f64;
            act += e.actual_orders;
            fc += e.forecast_orders;
        }
        Self {
            method: "exponential smoothing (alpha 0.3) per H3 res-7 cell and local hour of day",
            history_days: scenario::HISTORY_DAYS,
            cell_hours,
            actual_orders: act,
            forecast_orders: fc,
            mae: if cell_hours > 0 {
                abs / cell_hours as f64
            } else {
                0.0
            },
            wape: (act > 0.0).then(|| abs / act),
        }
    }
}

/// Draws the instance of `scenario` and runs each policy on it.
pub fn simulate(
    scenario: &Scenario,
    catalog: &Catalog,
    policies: &[Policy],
) -> Result<Report, SimError> {
    let inst = Instance::generate(scenario, catalog)?;
    Ok(run_instance(&inst, policies))
}

/// Runs each policy on an instance already drawn.
pub fn run_instance(inst: &Instance, policies: &[Policy]) -> Report {
    let created: Vec<i64> = inst.orders.iter().map(|o| o.created_ms).collect();
    let patients: Vec<usize> = inst.orders.iter().map(|o| o.patient).collect();
    let mut figures = BTreeMap::new();
    for &p in policies {
        let tally = match p {
            Policy::Greedy => online::run(inst, online::Online::Greedy),
            Policy::Batch => online::run(inst, online::Online::Batch),
            Policy::GreedyPlus => online::run_with(
                inst,
                online::Online::Greedy,
                online::Features {
                    risk: false,
                    ..online::Features::ALL
                },
            ),
            Policy::BatchPlus => {
                online::run_with(inst, online::Online::Batch, online::Features::ALL)
            }
            Policy::BatchPlusNoChain => online::run_with(
                inst,
                online::Online::Batch,
                online::Features {
                    chain: false,
                    ..online::Features::ALL
                },
            ),
            Policy::BatchPlusReserve => online::run_with(
                inst,
                online::Online::Batch,
                online::Features {
                    late_reserve: true,
                    ..online::Features::ALL
                },
            ),
            Policy::Hindsight => hindsight::run(inst),
        };
        figures.insert(p.name(), PolicyFigures::of(&tally, &created, &patients));
    }
    let mut by_shift = BTreeMap::new();
    for n in &inst.nurses {
        let start_hour = n
            .shifts
            .iter()
            .map(|&(a, b)| (b - a, a))
            .max()
            .map_or(0, |(_, a)| (a % scenario::DAY_MS) / scenario::HOUR_MS);
        let name = scenario::SHIFTS
            .iter()
            .find(|(_, from, _)| *from == start_hour)
            .map_or("night", |(name, _, _)| *name);
        *by_shift.entry(name).or_insert(0) += 1;
    }
    let s = &inst.scenario;
    Report {
        scenario: ScenarioSummary {
            inputs: s.clone(),
            aged_65_plus: (f64::from(s.residents) * s.aged_65_plus_share).round() as u32,
            orders_generated: inst.orders.len(),
            nurses_by_shift: by_shift,
            services: inst.services.len(),
            course_visit_orders: inst
                .orders
                .iter()
                .filter(|o| o.repeat == Some(scenario::Repeat::Course))
                .count(),
            reorders: inst
                .orders
                .iter()
                .filter(|o| o.repeat == Some(scenario::Repeat::Reorder))
                .count(),
            hourly_profile: scenario::HOURLY_PROFILE,
        },
        policies: figures,
        forecast: ForecastFigures::of(inst),
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |v| format!("{:.1} %", v * 100.0))
}

fn min(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
}

impl Report {
    fn ordered(&self) -> Vec<(&'static str, &PolicyFigures)> {
        Policy::ALL
            .iter()
            .filter_map(|p| self.policies.get(p.name()).map(|f| (p.name(), f)))
            .collect()
    }

    /// A readable summary and the per-hour service level, as markdown tables.
    pub fn table(&self) -> String {
        let s = &self.scenario;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} residents, {:.2} % aged 65+ ({}); {} days, seed {}\n\
             {} orders ({} a day), {} nurses ({}), {} km², {} services\n\
             repeat patients: {} later course visits, {} reorders ({} % reorder share); continuity credit {} s\n",
            s.inputs.name,
            s.inputs.residents,
            s.inputs.aged_65_plus_share * 100.0,
            s.aged_65_plus,
            s.inputs.days,
            s.inputs.seed,
            s.orders_generated,
            s.inputs.orders_per_day,
            s.inputs.nurses,
            s.nurses_by_shift
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
            s.inputs.area_km2,
            s.services,
            s.course_visit_orders,
            s.reorders,
            s.inputs.repeat_share * 100.0,
            s.inputs.continuity_credit_s,
        );
        let _ = writeln!(
            out,
            "| policy | within 30 min | mean arrival (min) | p90 arrival (min) | unserved | utilisation | offers | same nurse on repeat visits |\n\
             |---|---|---|---|---|---|---|---|"
        );
        for (name, f) in self.ordered() {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} of {} |",
                pct(Some(f.within_30_min_share)),
                min(f.mean_arrival_min),
                min(f.p90_arrival_min),
                pct(Some(f.unserved_share)),
                pct(Some(f.utilization)),
                f.offers,
                pct(f.continuity_rate),
                f.repeat_visits,
            );
        }
        let f = &self.forecast;
        let _ = writeln!(
            out,
            "\ndemand forecast ({}; {} days of history): MAE {:.3} orders per cell-hour over {} cell-hours, WAPE {} ({:.0} forecast vs {:.0} actual orders)",
            f.method,
            f.history_days,
            f.mae,
            f.cell_hours,
            pct(f.wape),
            f.forecast_orders,
            f.actual_orders,
        );
        let _ = writeln!(
            out,
            "\nwithin 30 min by hour of day (orders in that hour):\n"
        );
        let policies = self.ordered();
        let _ = write!(out, "| hour | orders |");
        for (name, _) in &policies {
            let _ = write!(out, " {name} | {name} p90 |");
        }
        let _ = write!(out, "\n|---|---|");
        for _ in &policies {
            let _ = write!(out, "---|---|");
        }
        out.push('\n');
        for h in 0..24 {
            let orders = policies
                .first()
                .and_then(|(_, f)| f.by_hour.get(h))
                .map_or(0, |x| x.orders);
            let _ = write!(out, "| {h:02} | {orders} |");
            for (_, f) in &policies {
                let x = f.by_hour.get(h);
                let _ = write!(
                    out,
                    " {} | {} |",
                    pct(x.and_then(|x| x.within_30_min_share)),
                    min(x.and_then(|x| x.p90_arrival_min)),
                );
            }
            out.push('\n');
        }
        out
    }

    /// The SVG chart of `--plot`: per policy, the share of orders with a
    /// nurse at the door within 30 minutes by hour of day (lines), the
    /// dashed 90 % target and the orders per hour behind (grey bars, a
    /// second axis), labelled in Chinese and English.
    pub fn svg(&self) -> String {
        let s = &self.scenario;
        let days = f64::from(s.inputs.days.max(1));
        let policies = self.ordered();
        let mut bars = [0.0; 24];
        if let Some((_, f)) = policies.first() {
            for hf in &f.by_hour {
                if let Some(b) = bars.get_mut(hf.hour as usize) {
                    *b = hf.orders as f64 / days;
                }
            }
        }
        let series = policies
            .iter()
            .enumerate()
            .map(|(i, (name, f))| {
                let mut values = [None; 24];
                for hf in &f.by_hour {
                    if let Some(v) = values.get_mut(hf.hour as usize) {
                        *v = hf.within_30_min_share;
                    }
                }
                plot::Series {
                    label: format!(
                        "{} — 全天 all day {:.1} %",
                        policy_label(name),
                        f.within_30_min_share * 100.0
                    ),
                    colour: policy_colour(name, i),
                    dashed: *name == Policy::Hindsight.name(),
                    shape: plot::Shape::Line,
                    values,
                }
            })
            .collect();
        plot::HourChart {
            title: "30分钟内到达的订单比例（按下单时段） Orders with a nurse at the door within 30 min, by hour".to_owned(),
            subtitle: format!(
                "{} · 种子 seed {} · {} 天 day(s) · {} 单 orders · {} 名护士 nurses",
                s.inputs.name, s.inputs.seed, s.inputs.days, s.orders_generated, s.inputs.nurses
            ),
            y_label: "30分钟内到达 arrived within 30 min (%)".to_owned(),
            y_max: 1.0,
            y_step: 0.1,
            y_scale: 100.0,
            y_unit: "%",
            bars,
            bar_label: format!("订单量 / orders per hour (mean of {} day(s))", s.inputs.days),
            series,
            target: Some((
                staffing::TARGET_SHARE,
                format!(
                    "目标 {0:.0}% / target {0:.0}%",
                    staffing::TARGET_SHARE * 100.0
                ),
            )),
            flagged: Vec::new(),
            flag_label: String::new(),
        }
        .svg()
    }
}

/// The continuity term's effect: the same instance run with the scenario's
/// continuity credit and with none (the `--continuity` report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContinuityComparison {
    pub credit_s: u32,
    /// With the scenario's credit.
    pub on: Report,
    /// With a credit of 0 (the term off).
    pub off: Report,
}

/// Draws the instance of `scenario` once and runs `policies` with its
/// continuity credit and with the term off. Only the ranking differs
/// between the two runs: the orders, patients, travel and answers are the same.
pub fn compare_continuity(
    scenario: &Scenario,
    catalog: &Catalog,
    policies: &[Policy],
) -> Result<ContinuityComparison, SimError> {
    let mut inst = Instance::generate(scenario, catalog)?;
    let on = run_instance(&inst, policies);
    inst.scenario.continuity_credit_s = 0;
    let off = run_instance(&inst, policies);
    Ok(ContinuityComparison {
        credit_s: scenario.continuity_credit_s,
        on,
        off,
    })
}

impl ContinuityComparison {
    /// One row per policy and setting: the 30-minute share, the continuity
    /// rate and the mean wait, and the differences the term makes.
    pub fn table(&self) -> String {
        let s = &self.on.scenario;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: seed {}, {} days, {} orders: {} later course visits, {} reorders\n\
             continuity credit {} s against 0 s (off)\n",
            s.inputs.name,
            s.inputs.seed,
            s.inputs.days,
            s.orders_generated,
            s.course_visit_orders,
            s.reorders,
            self.credit_s,
        );
        let _ = writeln!(
            out,
            "| policy | credit | within 30 min | same nurse on repeat visits | mean arrival (min) | unserved |\n\
             |---|---|---|---|---|---|"
        );
        for (name, on) in self.on.ordered() {
            let Some(off) = self.off.policies.get(name) else {
                continue;
            };
            for (credit, f) in [(self.credit_s, on), (0, off)] {
                let _ = writeln!(
                    out,
                    "| {name} | {credit} s | {} | {} ({} visits) | {} | {} |",
                    pct(Some(f.within_30_min_share)),
                    pct(f.continuity_rate),
                    f.repeat_visits,
                    min(f.mean_arrival_min),
                    pct(Some(f.unserved_share)),
                );
            }
        }
        out.push_str("\neffect of the term (on − off):\n\n| policy | within 30 min | same nurse | mean arrival (min) |\n|---|---|---|---|\n");
        for (name, on) in self.on.ordered() {
            let Some(off) = self.off.policies.get(name) else {
                continue;
            };
            let points = |a: Option<f64>, b: Option<f64>| {
                a.zip(b).map_or_else(
                    || "–".to_owned(),
                    |(a, b)| format!("{:+.1} pts", (a - b) * 100.0),
                )
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} |",
                points(Some(on.within_30_min_share), Some(off.within_30_min_share)),
                points(on.continuity_rate, off.continuity_rate),
                on.mean_arrival_min
                    .zip(off.mean_arrival_min)
                    .map_or_else(|| "–".to_owned(), |(a, b)| format!("{:+.2}", a - b)),
            );
        }
        out
    }
}

/// A policy's name in the charts, Chinese first.
pub(crate) fn policy_label(name: &str) -> String {
    match name {
        "greedy" => "贪心 greedy".to_owned(),
        "batch" => "批量 batch".to_owned(),
        "hindsight" => "事后最优（参考） hindsight (reference)".to_owned(),
        other => other.to_owned(),
    }
}

/// A policy's colour in the charts; a policy not listed takes one by position.
pub(crate) fn policy_colour(name: &str, i: usize) -> &'static str {
    match name {
        "greedy" => "#d62728",
        "batch" => "#1f77b4",
        "hindsight" => "#2ca02c",
        _ => ["#9467bd", "#ff7f0e", "#8c564b", "#17becf"][i % 4],
    }
}

#[cfg(test)]
mod tests;
