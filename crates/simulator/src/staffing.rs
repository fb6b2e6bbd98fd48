//! Staffing advice (`yixin simulate --staffing`): the smallest roster, per
//! shift and skill group, with which every hour of the day reaches the
//! service level — [`TARGET_SHARE`] of the orders placed in that hour with
//! a nurse at the door within 30 minutes — under one dispatch policy.
//!
//! The roster is the scenario's: a night crew holding every skill and, on
//! the early and the late shift, the four skill profiles of
//! [`NURSE_PROFILES`] — nine groups. The orders, travel noise and answers
//! are the scenario's drawn instance, the same for every roster tried; a
//! group of `k` nurses is the first `k` of a fixed list (today's nurses of
//! the group first, then more drawn from a stream of their own), so a
//! larger roster holds every nurse of a smaller one.
//!
//! The search ([`sweep`]): the largest roster tried ([`MAX_FACTOR`] ×
//! today's in each group) says which hours can reach the target at all
//! (the others are reported, not chased); a coarse pass scales that
//! roster down uniformly; a fine pass lowers one group at a time by
//! bisection while every reachable hour still meets the target, repeated
//! until no group can lose a nurse. The result is a local minimum (no
//! single group can lose a nurse), not a proven global one. Because shifts
//! are blocks of 8–9 hours, the nurses on duty at an hour are set by the
//! hardest hour of the shifts covering it (a group's `limiting_hours`).
//!
//! Pure: no I/O, clocks or threads, like the rest of the crate.

use std::collections::HashMap;
use std::fmt::Write as _;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use yixin_domain::{Catalog, GeoPoint};

use crate::plot;
use crate::scenario::{NURSE_PROFILES, SHIFTS, SimNurse, bounds, shift_intervals};
use crate::{HourFigures, Instance, Policy, Scenario, SimError, run_instance};

/// The service level to reach in every hour of the day: this share of its
/// orders with a nurse at the door within 30 minutes.
pub const TARGET_SHARE: f64 = 0.90;
/// The largest roster tried: this many times today's nurses in each group
/// (at least [`MIN_LARGEST`]).
pub const MAX_FACTOR: u32 = 3;
/// Nurses in a group of the largest roster tried, at least.
pub const MIN_LARGEST: u32 = 4;
/// Steps of the coarse pass between none and the largest roster.
const COARSE_STEPS: u32 = 12;
/// Fine passes at most (each lowers every group it can).
const MAX_PASSES: usize = 4;
/// The stream the extra nurses' homes are drawn from.
const HOME_STREAM: u64 = 0x57AF_F1D6_0000_0001;
/// Index of the night shift in [`SHIFTS`].
const NIGHT: usize = 2;

/// What to sweep with.
#[derive(Debug, Clone, PartialEq)]
pub struct StaffingOptions {
    /// The dispatch policy; `None`: the online policy that reaches the most
    /// orders within 30 minutes with today's roster.
    pub policy: Option<Policy>,
    pub target_share: f64,
    pub max_factor: u32,
}

impl Default for StaffingOptions {
    fn default() -> Self {
        Self {
            policy: None,
            target_share: TARGET_SHARE,
            max_factor: MAX_FACTOR,
        }
    }
}

/// One group of the roster: a shift and a skill profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupAdvice {
    /// `night`, `early` or `late` (see [`SHIFTS`]).
    pub shift: &'static str,
    /// A profile of [`NURSE_PROFILES`], or `all` for the night crew.
    pub profile: &'static str,
    pub today: u32,
    pub recommended: u32,
    /// Hours of day that miss the target with one nurse fewer in this group.
    pub limiting_hours: Vec<u32>,
    #[serde(skip)]
    shift_index: usize,
    #[serde(skip)]
    skills: u64,
}

/// Whether an hour of day meets the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HourStatus {
    /// At or above the target with the recommended roster.
    Met,
    /// Below the target even with the largest roster tried.
    Unreachable,
    /// No order was placed in this hour.
    NoOrders,
}

/// One hour of day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourAdvice {
    pub hour: u32,
    /// Orders placed in this hour, mean a day.
    pub orders_per_day: f64,
    pub on_duty_today: u32,
    pub on_duty_recommended: u32,
    pub within_30_min_today: Option<f64>,
    pub within_30_min_recommended: Option<f64>,
    /// With the largest roster tried.
    pub within_30_min_largest: Option<f64>,
    pub status: HourStatus,
}

/// The advice: per group and per hour, today against recommended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaffingAdvice {
    pub scenario: String,
    pub seed: u64,
    pub days: u32,
    pub orders: usize,
    pub policy: &'static str,
    /// The policy was chosen as the best online one on today's roster.
    pub policy_chosen: bool,
    pub target_share: f64,
    pub nurses_today: u32,
    pub nurses_recommended: u32,
    pub nurses_largest_tried: u32,
    /// The largest roster tried was this many times today's in each group.
    pub max_factor: u32,
    pub within_30_min_today: f64,
    pub within_30_min_recommended: f64,
    pub groups: Vec<GroupAdvice>,
    pub hours: Vec<HourAdvice>,
    /// Simulations run by the sweep.
    pub runs: usize,
}

/// Draws the scenario's instance and sweeps its roster (see the module doc).
pub fn advise(
    scenario: &Scenario,
    catalog: &Catalog,
    options: &StaffingOptions,
) -> Result<StaffingAdvice, SimError> {
    let inst = Instance::generate(scenario, catalog)?;
    sweep(&inst, options)
}

/// Whether hour of day `hour` is inside shift `which` of [`SHIFTS`].
fn covers(which: usize, hour: u32) -> bool {
    let (_, from, to) = SHIFTS[which];
    let h = i64::from(hour);
    (from..to).contains(&h) || (from..to).contains(&(h + 24))
}

/// The roster's groups and the nurses each can put on duty.
struct Fleet<'a> {
    base: &'a Instance,
    groups: Vec<GroupAdvice>,
    /// Per group, the homes of its nurses in order (today's first).
    homes: Vec<Vec<GeoPoint>>,
    /// Each nurse's (group, place in the group), by nurse index.
    slots: Vec<(usize, usize)>,
    shifts: Vec<Vec<(i64, i64)>>,
}

impl<'a> Fleet<'a> {
    fn new(base: &'a Instance, max_factor: u32) -> Result<Self, SimError> {
        let days = i64::from(base.scenario.days);
        let shifts: Vec<Vec<(i64, i64)>> = (0..SHIFTS.len())
            .map(|w| shift_intervals(w, days))
            .collect();
        let bit = |code: &str| -> u64 {
            base.skills
                .iter()
                .position(|s| s == code)
                .map_or(0, |i| 1u64 << i)
        };
        // The generator's night crew holds every skill of the instance.
        let every_skill = match base.skills.len() {
            n if n >= 64 => u64::MAX,
            n => (1u64 << n) - 1,
        };
        let mut groups = vec![GroupAdvice {
            shift: SHIFTS[NIGHT].0,
            profile: "all",
            today: 0,
            recommended: 0,
            limiting_hours: Vec::new(),
            shift_index: NIGHT,
            skills: every_skill,
        }];
        for (name, _, skills) in NURSE_PROFILES {
            let mask = skills.iter().fold(0u64, |m, k| m | bit(k));
            for which in [0, 1] {
                groups.push(GroupAdvice {
                    shift: SHIFTS[which].0,
                    profile: name,
                    today: 0,
                    recommended: 0,
                    limiting_hours: Vec::new(),
                    shift_index: which,
                    skills: mask,
                });
            }
        }
        let mut homes: Vec<Vec<GeoPoint>> = vec![Vec::new(); groups.len()];
        let mut slots = Vec::new();
        for n in &base.nurses {
            let Some(which) = shifts.iter().position(|s| *s == n.shifts) else {
                return Err(SimError::Scenario(
                    "nurses",
                    "a nurse on none of the scenario's shifts".into(),
                ));
            };
            let g = if which == NIGHT {
                Some(0)
            } else {
                groups
                    .iter()
                    .position(|g| g.shift_index == which && g.skills == n.skills)
            };
            let Some(g) = g else {
                return Err(SimError::Scenario(
                    "nurses",
                    "a nurse of none of the skill profiles".into(),
                ));
            };
            slots.push((g, homes[g].len()));
            homes[g].push(n.home);
        }
        let (south, west, north, east) = bounds(&base.scenario);
        for (g, list) in homes.iter_mut().enumerate() {
            let today = list.len() as u32;
            groups[g].today = today;
            let largest = (today * max_factor).max(MIN_LARGEST);
            let mut rng = ChaCha8Rng::seed_from_u64(
                base.scenario.seed ^ HOME_STREAM.wrapping_mul(g as u64 + 1),
            );
            while (list.len() as u32) < largest {
                slots.push((g, list.len()));
                let lat = south + (north - south) * rng.random::<f64>();
                let lng = west + (east - west) * rng.random::<f64>();
                let p = GeoPoint::new(lat, lng)
                    .map_err(|e| SimError::Scenario("center", e.to_string()))?;
                list.push(p);
            }
        }
        Ok(Self {
            base,
            groups,
            homes,
            slots,
            shifts,
        })
    }

    fn today(&self) -> Vec<u32> {
        self.groups.iter().map(|g| g.today).collect()
    }

    fn largest(&self) -> Vec<u32> {
        self.homes.iter().map(|h| h.len() as u32).collect()
    }

    /// The instance with the first `counts[g]` nurses of each group `g` on
    /// shift. Every nurse keeps one index whatever the counts (today's in
    /// the generator's order, then the extra ones group by group; those not
    /// on the roster have no shift): the instance's draws — answers,
    /// travel noise — are keyed by nurse index, so each nurse answers the
    /// same in every roster tried.
    fn instance(&self, counts: &[u32]) -> Instance {
        let mut inst = self.base.clone();
        inst.nurses = self
            .slots
            .iter()
            .map(|&(g, k)| SimNurse {
                skills: self.groups[g].skills,
                home: self.homes[g][k],
                shifts: if (k as u32) < counts[g] {
                    self.shifts[self.groups[g].shift_index].clone()
                } else {
                    Vec::new()
                },
            })
            .collect();
        inst.scenario.nurses = counts.iter().sum();
        inst
    }

    fn on_duty(&self, counts: &[u32], hour: u32) -> u32 {
        self.groups
            .iter()
            .zip(counts)
            .filter(|(g, _)| covers(g.shift_index, hour))
            .map(|(_, c)| *c)
            .sum()
    }
}

/// One run's figures by hour, and the day's share.
#[derive(Debug, Clone)]
struct Run {
    by_hour: Vec<HourFigures>,
    share: f64,
}

impl Run {
    fn share(&self, hour: usize) -> Option<f64> {
        self.by_hour.get(hour).and_then(|h| h.within_30_min_share)
    }
}

/// Runs rosters, remembering each.
struct Runner<'a> {
    fleet: Fleet<'a>,
    policy: Policy,
    cache: HashMap<Vec<u32>, Run>,
}

impl Runner<'_> {
    fn run(&mut self, counts: &[u32]) -> Run {
        if let Some(r) = self.cache.get(counts) {
            return r.clone();
        }
        let inst = self.fleet.instance(counts);
        let report = run_instance(&inst, &[self.policy]);
        let run = report
            .policies
            .get(self.policy.name())
            .map(|f| Run {
                by_hour: f.by_hour.clone(),
                share: f.within_30_min_share,
            })
            .unwrap_or(Run {
                by_hour: Vec::new(),
                share: 0.0,
            });
        self.cache.insert(counts.to_vec(), run.clone());
        run
    }

    /// The hours among `targets` that miss `target` with `counts`.
    fn missed(&mut self, counts: &[u32], targets: &[usize], target: f64) -> Vec<usize> {
        let run = self.run(counts);
        targets
            .iter()
            .copied()
            .filter(|&h| run.share(h).is_none_or(|s| s < target))
            .collect()
    }
}

/// The smallest `k` in `lo..=hi` for which `pass(k)` holds, given that
/// `pass(hi)` holds and assuming `pass` is monotone (false then true).
pub fn lowest_passing(mut lo: u32, mut hi: u32, mut pass: impl FnMut(u32) -> bool) -> u32 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pass(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    hi
}

/// Sweeps the roster of `base` (see the module doc).
pub fn sweep(base: &Instance, options: &StaffingOptions) -> Result<StaffingAdvice, SimError> {
    if !(options.target_share > 0.0 && options.target_share <= 1.0) {
        return Err(SimError::Scenario(
            "target_share",
            "must be > 0 and at most 1".into(),
        ));
    }
    if !(1..=10).contains(&options.max_factor) {
        return Err(SimError::Scenario("max_factor", "must be 1 to 10".into()));
    }
    let fleet = Fleet::new(base, options.max_factor)?;
    let today = fleet.today();
    let largest = fleet.largest();
    // The policy: as asked, or the online one best with today's roster.
    // Not `batch+reserve`: it buys punctuality by leaving orders unserved,
    // and staffing is sized to serve every order.
    let (policy, chosen) = match options.policy {
        Some(p) => (p, false),
        None => {
            let mut best: Option<(f64, Policy)> = None;
            for p in Policy::ALL
                .into_iter()
                .filter(|p| !matches!(p, Policy::Hindsight | Policy::BatchPlusReserve))
            {
                let mut r = Runner {
                    fleet: Fleet::new(base, options.max_factor)?,
                    policy: p,
                    cache: HashMap::new(),
                };
                let share = r.run(&today).share;
                if best.is_none_or(|(s, _)| share > s) {
                    best = Some((share, p));
                }
            }
            (best.map_or(Policy::Greedy, |(_, p)| p), true)
        }
    };
    let target = options.target_share;
    let mut runner = Runner {
        fleet,
        policy,
        cache: HashMap::new(),
    };
    let run_today = runner.run(&today);
    let run_largest = runner.run(&largest);
    // Hours that can reach the target at all; the others are reported.
    let targets: Vec<usize> = (0..24)
        .filter(|&h| run_largest.share(h).is_some_and(|s| s >= target))
        .collect();

    // Coarse: the largest roster scaled down uniformly.
    let scaled = |step: u32| -> Vec<u32> {
        largest
            .iter()
            .map(|&l| (f64::from(l) * f64::from(step) / f64::from(COARSE_STEPS)).ceil() as u32)
            .collect()
    };
    let step = lowest_passing(0, COARSE_STEPS, |k| {
        runner.missed(&scaled(k), &targets, target).is_empty()
    });
    let mut counts = scaled(step);

    // Fine: one group at a time, until no group can lose a nurse.
    for _ in 0..MAX_PASSES {
        let mut changed = false;
        for g in 0..counts.len() {
            let current = counts[g];
            let mut trial = counts.clone();
            let lowest = lowest_passing(0, current, |k| {
                trial[g] = k;
                runner.missed(&trial, &targets, target).is_empty()
            });
            if lowest < current {
                counts[g] = lowest;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    // Which hours each group's last nurse is there for.
    let mut limiting = Vec::with_capacity(counts.len());
    for g in 0..counts.len() {
        if counts[g] == 0 {
            limiting.push(Vec::new());
            continue;
        }
        let mut fewer = counts.clone();
        fewer[g] -= 1;
        limiting.push(
            runner
                .missed(&fewer, &targets, target)
                .into_iter()
                .map(|h| h as u32)
                .collect::<Vec<_>>(),
        );
    }
    let run_rec = runner.run(&counts);
    let days = f64::from(base.scenario.days.max(1));
    let hours = (0..24u32)
        .map(|h| {
            let i = h as usize;
            let orders = run_rec.by_hour.get(i).map_or(0, |x| x.orders);
            HourAdvice {
                hour: h,
                orders_per_day: (orders as f64 / days * 10.0).round() / 10.0,
                on_duty_today: runner.fleet.on_duty(&today, h),
                on_duty_recommended: runner.fleet.on_duty(&counts, h),
                within_30_min_today: run_today.share(i),
                within_30_min_recommended: run_rec.share(i),
                within_30_min_largest: run_largest.share(i),
                status: if orders == 0 {
                    HourStatus::NoOrders
                } else if targets.contains(&i) {
                    HourStatus::Met
                } else {
                    HourStatus::Unreachable
                },
            }
        })
        .collect();
    let mut groups = runner.fleet.groups.clone();
    for ((g, c), l) in groups.iter_mut().zip(&counts).zip(limiting) {
        g.recommended = *c;
        g.limiting_hours = l;
    }
    let s = &base.scenario;
    Ok(StaffingAdvice {
        scenario: s.name.clone(),
        seed: s.seed,
        days: s.days,
        orders: base.orders.len(),
        policy: policy.name(),
        policy_chosen: chosen,
        target_share: target,
        nurses_today: today.iter().sum(),
        nurses_recommended: counts.iter().sum(),
        nurses_largest_tried: largest.iter().sum(),
        max_factor: options.max_factor,
        within_30_min_today: run_today.share,
        within_30_min_recommended: run_rec.share,
        groups,
        hours,
        runs: runner.cache.len(),
    })
}

fn shift_label(shift: &str) -> &'static str {
    match shift {
        "night" => "夜班 night 22–07",
        "early" => "早班 early 07–15",
        "late" => "晚班 late 14–22",
        _ => "",
    }
}

fn profile_label(profile: &str) -> &'static str {
    match profile {
        "all" => "全部技能 every skill",
        "general" => "普通护理 general nursing",
        "maternal" => "母婴 maternal & infant",
        "rehab" => "康复 rehab",
        "oral" => "口腔 oral health",
        _ => "",
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |v| format!("{:.1} %", v * 100.0))
}

fn hours_list(hours: &[u32]) -> String {
    if hours.is_empty() {
        return "–".to_owned();
    }
    hours
        .iter()
        .map(|h| format!("{h:02}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl StaffingAdvice {
    /// Hours below the target even with the largest roster tried.
    pub fn unreachable(&self) -> Vec<u32> {
        self.hours
            .iter()
            .filter(|h| h.status == HourStatus::Unreachable)
            .map(|h| h.hour)
            .collect()
    }

    /// The advice as text and markdown tables, Chinese first.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let target = self.target_share * 100.0;
        let _ = writeln!(
            out,
            "排班建议 Staffing advice: {}, seed {}, {} day(s), {} orders\n\
             目标 target: in every hour of the day, {target:.0} % of the orders placed then have a nurse at the door within 30 min\n\
             派单策略 policy: {}{}; {} simulations\n",
            self.scenario,
            self.seed,
            self.days,
            self.orders,
            self.policy,
            if self.policy_chosen {
                " (the online policy best with today's roster)"
            } else {
                ""
            },
            self.runs,
        );
        let _ = writeln!(
            out,
            "| 班次 shift | 技能 skills | 今天 today | 建议 recommended | 差 change | 受限时段 hours that need the last nurse |\n\
             |---|---|---|---|---|---|"
        );
        for g in &self.groups {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:+} | {} |",
                shift_label(g.shift),
                profile_label(g.profile),
                g.today,
                g.recommended,
                i64::from(g.recommended) - i64::from(g.today),
                hours_list(&g.limiting_hours),
            );
        }
        let _ = writeln!(
            out,
            "| 合计 total | | {} | {} | {:+} | |\n",
            self.nurses_today,
            self.nurses_recommended,
            i64::from(self.nurses_recommended) - i64::from(self.nurses_today),
        );
        let _ = writeln!(
            out,
            "全天30分钟内到达 within 30 min all day: today {}, recommended {}\n",
            pct(Some(self.within_30_min_today)),
            pct(Some(self.within_30_min_recommended)),
        );
        let _ = writeln!(
            out,
            "| 时段 hour | 订单/天 orders a day | 在岗 on duty today | 30分钟内 within 30 min today | 建议在岗 on duty recommended | 30分钟内 with advice | |\n\
             |---|---|---|---|---|---|---|"
        );
        for h in &self.hours {
            let note = match h.status {
                HourStatus::Met => String::new(),
                HourStatus::NoOrders => "无订单 no orders".to_owned(),
                HourStatus::Unreachable => format!(
                    "达不到 cannot reach {target:.0} % ({} with {} nurses)",
                    pct(h.within_30_min_largest),
                    self.nurses_largest_tried
                ),
            };
            let _ = writeln!(
                out,
                "| {:02} | {:.1} | {} | {} | {} | {} | {note} |",
                h.hour,
                h.orders_per_day,
                h.on_duty_today,
                pct(h.within_30_min_today),
                h.on_duty_recommended,
                pct(h.within_30_min_recommended),
            );
        }
        let unreachable = self.unreachable();
        if unreachable.is_empty() {
            let _ = writeln!(
                out,
                "\nEvery hour with orders reaches {target:.0} % with the recommended roster."
            );
        } else {
            let _ = writeln!(
                out,
                "\n达不到目标的时段 hours that cannot reach {target:.0} % even with the largest roster tried ({} nurses, {}× today's in each group): {}",
                self.nurses_largest_tried,
                self.max_factor,
                hours_list(&unreachable),
            );
        }
        out
    }

    /// The `--staffing --plot` chart: nurses on duty by hour, today's roster
    /// against the recommended one (steps), orders per hour behind.
    pub fn svg(&self) -> String {
        let mut bars = [0.0; 24];
        let mut today = [None; 24];
        let mut rec = [None; 24];
        for h in &self.hours {
            let i = h.hour as usize;
            if i < 24 {
                bars[i] = h.orders_per_day;
                today[i] = Some(f64::from(h.on_duty_today));
                rec[i] = Some(f64::from(h.on_duty_recommended));
            }
        }
        let top = self
            .hours
            .iter()
            .map(|h| h.on_duty_today.max(h.on_duty_recommended))
            .max()
            .unwrap_or(1);
        let step = plot::nice_step(f64::from(top), 6.0);
        let target = self.target_share * 100.0;
        plot::HourChart {
            title: format!("排班建议：每个时段{target:.0}%订单30分钟内到达所需的在岗护士"),
            subtitle: format!(
                "Staffing advice: nurses on duty for {target:.0} % within 30 min in every hour · {} · seed {} · {} day(s) · policy {}",
                self.scenario, self.seed, self.days, self.policy
            ),
            y_label: "在岗护士 nurses on duty".to_owned(),
            y_max: plot::ceil_to(f64::from(top) * 1.1, step),
            y_step: step,
            y_scale: 1.0,
            y_unit: "",
            bars,
            bar_label: format!("订单量 / orders per hour (mean of {} day(s))", self.days),
            series: vec![
                plot::Series {
                    label: format!(
                        "建议排班 recommended ({} nurses, {target:.0}% within 30 min)",
                        self.nurses_recommended
                    ),
                    colour: "#1f77b4",
                    dashed: false,
                    shape: plot::Shape::Step,
                    values: rec,
                },
                plot::Series {
                    label: format!("今天排班 today's roster ({} nurses)", self.nurses_today),
                    colour: "#555555",
                    dashed: true,
                    shape: plot::Shape::Step,
                    values: today,
                },
            ],
            target: None,
            flagged: self.unreachable().iter().map(|h| *h as usize).collect(),
            flag_label: format!(
                "最大排班仍达不到{target:.0}% / below {target:.0}% even with {} nurses",
                self.nurses_largest_tried
            ),
        }
        .svg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Scenario {
        let mut s = Scenario::shuangfu();
        s.orders_per_day = 80.0;
        s.nurses = Scenario::nurses_for(80.0);
        s.area_km2 = 25.0;
        s
    }

    fn greedy() -> StaffingOptions {
        StaffingOptions {
            policy: Some(Policy::Greedy),
            ..StaffingOptions::default()
        }
    }

    #[test]
    fn bisection_finds_the_lowest_passing_value() {
        // Against a linear scan, every threshold in every range.
        for hi in 0..20u32 {
            for threshold in 0..=hi {
                let mut calls = 0;
                let got = lowest_passing(0, hi, |k| {
                    calls += 1;
                    k >= threshold
                });
                let want = (0..=hi).find(|&k| k >= threshold).unwrap();
                assert_eq!(got, want, "hi {hi} threshold {threshold}");
                assert!(calls <= 5, "{calls} calls for 0..={hi}");
            }
        }
    }

    #[test]
    fn shifts_cover_their_hours() {
        let on: Vec<u32> = (0..24).filter(|&h| covers(NIGHT, h)).collect();
        assert_eq!(on, vec![0, 1, 2, 3, 4, 5, 6, 22, 23]);
        assert!(covers(0, 7) && covers(0, 14) && !covers(0, 15));
        assert!(covers(1, 14) && covers(1, 21) && !covers(1, 22) && !covers(1, 13));
    }

    #[test]
    fn todays_roster_is_the_scenarios_and_rebuilds_the_same_instance() {
        let inst = Instance::generate(&Scenario::shuangfu(), &Catalog::seed()).unwrap();
        let fleet = Fleet::new(&inst, MAX_FACTOR).unwrap();
        let today = fleet.today();
        assert_eq!(today.iter().sum::<u32>(), 45);
        assert_eq!(today[0], 5, "night crew");
        // Rebuilt with today's counts, the fleet is the generator's, nurse
        // for nurse, and the nurses kept for larger rosters are off.
        let rebuilt = fleet.instance(&today);
        assert_eq!(rebuilt.nurses[..45], inst.nurses[..]);
        assert!(rebuilt.nurses.len() > 45 * 2);
        assert!(rebuilt.nurses[45..].iter().all(|n| n.shifts.is_empty()));
        // A larger roster keeps every nurse of the smaller one, at her index.
        let mut more = today.clone();
        more[3] += 2;
        more[0] -= 1;
        let bigger = fleet.instance(&more);
        let on = |i: &Instance| i.nurses.iter().filter(|n| !n.shifts.is_empty()).count();
        assert_eq!(on(&bigger), 46);
        let mut fewer = more.clone();
        fewer[3] -= 1;
        let smaller = fleet.instance(&fewer);
        for (a, b) in smaller.nurses.iter().zip(&bigger.nurses) {
            assert_eq!((a.home, a.skills), (b.home, b.skills));
            assert!(a.shifts.is_empty() || a.shifts == b.shifts);
        }
        assert_eq!(fleet.on_duty(&today, 3), 5);
        assert_eq!(
            fleet.on_duty(&today, 14),
            40,
            "early and late overlap at 14"
        );
    }

    #[test]
    fn the_sweep_reaches_the_target_and_no_group_can_lose_a_nurse() {
        let inst = Instance::generate(&small(), &Catalog::seed()).unwrap();
        let a = sweep(&inst, &greedy()).unwrap();
        assert_eq!(a.policy, "greedy");
        let met: Vec<&HourAdvice> = a
            .hours
            .iter()
            .filter(|h| h.status == HourStatus::Met)
            .collect();
        assert!(met.len() >= 12, "most hours reachable: {}", a.table());
        for h in &met {
            let s = h.within_30_min_recommended.unwrap();
            assert!(s >= TARGET_SHARE, "hour {} at {s}", h.hour);
        }
        for h in &a.hours {
            if h.status == HourStatus::Unreachable {
                assert!(h.within_30_min_largest.is_none_or(|s| s < TARGET_SHARE));
            }
        }
        // A local minimum: one nurse fewer in any staffed group misses an hour,
        // checked here by running that roster again, independently of the sweep.
        let fleet = Fleet::new(&inst, MAX_FACTOR).unwrap();
        let counts: Vec<u32> = a.groups.iter().map(|g| g.recommended).collect();
        let targets: Vec<usize> = met.iter().map(|h| h.hour as usize).collect();
        for g in 0..counts.len() {
            if counts[g] == 0 {
                continue;
            }
            let mut fewer = counts.clone();
            fewer[g] -= 1;
            let r = run_instance(&fleet.instance(&fewer), &[Policy::Greedy]);
            let by_hour = &r.policies["greedy"].by_hour;
            let missed = targets.iter().any(|&h| {
                by_hour[h]
                    .within_30_min_share
                    .is_none_or(|s| s < TARGET_SHARE)
            });
            assert!(missed, "group {g} could lose a nurse");
            assert!(!a.groups[g].limiting_hours.is_empty());
        }
        assert_eq!(a.nurses_recommended, counts.iter().sum::<u32>());
    }

    #[test]
    fn fewer_orders_never_need_more_nurses() {
        let catalog = Catalog::seed();
        let mut busy = small();
        busy.orders_per_day = 120.0;
        let mut quiet = busy.clone();
        quiet.orders_per_day = 40.0;
        let a = advise(&busy, &catalog, &greedy()).unwrap();
        let b = advise(&quiet, &catalog, &greedy()).unwrap();
        assert!(
            b.nurses_recommended <= a.nurses_recommended,
            "{} orders a day need {}, {} need {}",
            quiet.orders_per_day,
            b.nurses_recommended,
            busy.orders_per_day,
            a.nurses_recommended
        );
    }

    #[test]
    fn a_lower_target_needs_no_more_nurses() {
        let inst = Instance::generate(&small(), &Catalog::seed()).unwrap();
        let at_90 = sweep(&inst, &greedy()).unwrap();
        let at_70 = sweep(
            &inst,
            &StaffingOptions {
                target_share: 0.70,
                ..greedy()
            },
        )
        .unwrap();
        assert!(at_70.nurses_recommended <= at_90.nurses_recommended);
        for h in at_70.hours.iter().filter(|h| h.status == HourStatus::Met) {
            assert!(h.within_30_min_recommended.unwrap() >= 0.70);
        }
    }

    #[test]
    fn the_default_policy_is_the_best_online_one() {
        let inst = Instance::generate(&small(), &Catalog::seed()).unwrap();
        let a = sweep(&inst, &StaffingOptions::default()).unwrap();
        assert!(a.policy_chosen);
        assert_ne!(a.policy, "hindsight");
        let r = run_instance(&inst, &Policy::ALL);
        for (name, f) in &r.policies {
            if !matches!(*name, "hindsight" | "batch+reserve") {
                assert!(f.within_30_min_share <= a.within_30_min_today, "{name}");
            }
        }
    }

    #[test]
    fn hours_out_of_reach_are_reported_not_chased() {
        // A district too wide to cross in 30 minutes: even three times the
        // fleet leaves hours below the target.
        let mut s = small();
        s.orders_per_day = 40.0;
        s.nurses = Scenario::nurses_for(40.0);
        s.area_km2 = 3_000.0;
        let a = advise(&s, &Catalog::seed(), &greedy()).unwrap();
        let out = a.unreachable();
        assert!(!out.is_empty(), "{}", a.table());
        for h in &out {
            let hour = &a.hours[*h as usize];
            assert!(hour.within_30_min_largest.unwrap() < TARGET_SHARE);
        }
        assert!(a.table().contains("cannot reach 90 %"));
        let svg = a.svg();
        assert_eq!(
            svg.matches("<rect").count() - svg.matches(r#"class="bar""#).count(),
            // background, frame, one band per hour out of reach, two legend swatches
            2 + out.len() + 2,
        );
        assert!(svg.contains(r#"class="flagged""#));
    }

    #[test]
    fn bad_options_are_refused() {
        let inst = Instance::generate(&small(), &Catalog::seed()).unwrap();
        for (target_share, max_factor) in [(0.0, 3), (1.5, 3), (f64::NAN, 3), (0.9, 0), (0.9, 11)] {
            let o = StaffingOptions {
                policy: Some(Policy::Greedy),
                target_share,
                max_factor,
            };
            assert!(matches!(sweep(&inst, &o), Err(SimError::Scenario(..))));
        }
    }

    #[test]
    fn the_staffing_chart_has_its_labels_steps_and_bars() {
        let inst = Instance::generate(&small(), &Catalog::seed()).unwrap();
        let a = sweep(&inst, &greedy()).unwrap();
        let svg = a.svg();
        for needle in [
            "时段 hour of day",
            "在岗护士 nurses on duty",
            "订单量 / orders per hour",
            "今天排班 today's roster",
            "建议排班 recommended",
            "Noto Sans CJK SC",
        ] {
            assert!(svg.contains(needle), "missing {needle}");
        }
        let bars = svg.matches(r#"class="bar""#).count();
        let hours_with_orders = a.hours.iter().filter(|h| h.orders_per_day > 0.0).count();
        assert_eq!(bars, hours_with_orders);
        assert_eq!(svg.matches(r#"class="series""#).count(), 2);
        assert!(svg.trim_end().ends_with("</svg>"));
        let text = a.table();
        assert!(text.contains("| 合计 total |"));
        assert!(text.contains(&format!("| {} |", a.nurses_recommended)));
    }
}
