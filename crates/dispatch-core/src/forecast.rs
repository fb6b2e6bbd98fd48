//! Demand forecast: expected orders per H3 cell (resolution 7 by default,
//! about 5 km²) and local hour, learnt from the organisation's own history.
//!
//! **Method (simple exponential smoothing per slot).** History is cut into
//! the organisation's local days (UTC+8 for the pilots). A *slot* is the
//! local hour of day ([`Seasonality::Daily`]) or weekday and hour
//! ([`Seasonality::Weekly`]). For every cell seen in the history and every
//! slot, the count of orders placed in that cell in that slot is one
//! observation per day (daily) or per week (weekly), zeros included, and the
//! forecast is its exponentially smoothed level:
//! `level ← alpha × count + (1 − alpha) × level`, started at the first
//! observation. Only complete local days before `now` are learnt, so the
//! forecast of today never saw today. No trend and no spatial smoothing: a
//! documented baseline whose error the simulator reports ([`day_error`]).
//!
//! **The mix of kinds ([`SkillMix`]).** Orders come in *kinds*: the set of
//! skills an order requires. From the same history, each kind's share of
//! the orders placed in each local hour is counted, so that repositioning
//! ([`crate::reposition::suggest_by_kind`]) knows what share of the next
//! hour's orders a nurse can take.
//!
//! Pure: no I/O and no clock (`now` is passed in).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use h3o::{CellIndex, LatLng, Resolution};
use serde::Serialize;
use yixin_domain::{GeoPoint, OrgTimeZone, Skill};

use crate::settings::InvalidSettings;

/// Which slots share a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Seasonality {
    /// One level per (cell, hour of day), updated every day.
    Daily,
    /// One level per (cell, weekday, hour), updated once a week (needs
    /// weeks of history to be better than daily).
    Weekly,
}

/// How the forecast learns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForecastSettings {
    /// Smoothing weight of the newest observation, in (0, 1].
    pub alpha: f64,
    /// H3 resolution of the cells (7 by default).
    #[serde(skip)]
    pub resolution: Resolution,
    pub seasonality: Seasonality,
    /// Where the organisation's day and hours begin.
    #[serde(skip)]
    pub tz: OrgTimeZone,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        Self {
            alpha: 0.3,
            resolution: Resolution::Seven,
            seasonality: Seasonality::Daily,
            tz: OrgTimeZone::CHINA,
        }
    }
}

impl ForecastSettings {
    /// Checks `alpha` within (0, 1].
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(InvalidSettings::new(
                "alpha",
                format!("must be within (0, 1], got {}", self.alpha),
            ));
        }
        Ok(())
    }
}

/// The H3 cell of `p` at `res` (`None` only for a non-finite point, which a
/// `GeoPoint` never is).
pub fn cell_of(p: &GeoPoint, res: Resolution) -> Option<CellIndex> {
    LatLng::new(p.lat(), p.lng()).ok().map(|ll| ll.to_cell(res))
}

/// The centre of `cell` as a point.
pub fn centre_of(cell: CellIndex) -> Option<GeoPoint> {
    let ll = LatLng::from(cell);
    GeoPoint::new(ll.lat(), ll.lng()).ok()
}

/// Expected orders per (cell, slot), learnt from past orders.
#[derive(Debug, Clone, PartialEq)]
pub struct DemandForecast {
    settings: ForecastSettings,
    /// Smoothed level per cell and slot (24 or 168 slots).
    levels: BTreeMap<CellIndex, Vec<f64>>,
    /// Complete local days learnt.
    days: u32,
}

impl DemandForecast {
    /// A forecast that knows nothing (expects no order anywhere).
    pub fn empty(settings: ForecastSettings) -> Self {
        Self {
            settings,
            levels: BTreeMap::new(),
            days: 0,
        }
    }

    /// Learns from `history` (each order's place and creation time); only
    /// orders of complete local days before `now`'s day count.
    pub fn fit(
        settings: ForecastSettings,
        history: &[(GeoPoint, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Self {
        let tz = settings.tz;
        let today = tz.start_of_day(now);
        let slots = settings.slots();
        // Counts per (cell, day index from the first day, hour).
        let Some(first) = history
            .iter()
            .map(|(_, t)| *t)
            .filter(|t| *t < today)
            .min()
            .map(|t| tz.start_of_day(t))
        else {
            return Self::empty(settings);
        };
        let n_days = ((today - first).num_hours() / 24).max(0) as usize;
        let mut counts: BTreeMap<CellIndex, Vec<f64>> = BTreeMap::new();
        for (p, t) in history {
            if *t < first || *t >= today {
                continue;
            }
            let Some(cell) = cell_of(p, settings.resolution) else {
                continue;
            };
            let day = ((*t - first).num_hours() / 24) as usize;
            let hour = tz.hour(*t) as usize;
            let row = counts.entry(cell).or_insert_with(|| vec![0.0; n_days * 24]);
            if let Some(c) = row.get_mut(day * 24 + hour) {
                *c += 1.0;
            }
        }
        let alpha = settings.alpha;
        let mut levels = BTreeMap::new();
        for (cell, row) in counts {
            let mut level: Vec<Option<f64>> = vec![None; slots];
            for day in 0..n_days {
                let day_start = first + TimeDelta::days(day as i64);
                for hour in 0..24 {
                    let x = row[day * 24 + hour];
                    let slot = settings.slot(day_start + TimeDelta::hours(hour as i64));
                    level[slot] = Some(match level[slot] {
                        None => x,
                        Some(l) => alpha * x + (1.0 - alpha) * l,
                    });
                }
            }
            levels.insert(cell, level.into_iter().map(|l| l.unwrap_or(0.0)).collect());
        }
        Self {
            settings,
            levels,
            days: n_days as u32,
        }
    }

    pub fn settings(&self) -> &ForecastSettings {
        &self.settings
    }

    /// Complete local days the forecast learnt from.
    pub fn days_learnt(&self) -> u32 {
        self.days
    }

    /// Cells with a level (every cell with an order in the history).
    pub fn cells(&self) -> impl Iterator<Item = CellIndex> + '_ {
        self.levels.keys().copied()
    }

    /// Expected orders in `cell` during the local hour containing `hour_start`.
    pub fn expected(&self, cell: CellIndex, hour_start: DateTime<Utc>) -> f64 {
        let slot = self.settings.slot(hour_start);
        self.levels
            .get(&cell)
            .and_then(|l| l.get(slot))
            .copied()
            .unwrap_or(0.0)
    }

    /// Expected orders in `cell` from `now` to `now + 1 h` (the two hours it
    /// straddles, pro rata).
    pub fn expected_next_hour(&self, cell: CellIndex, now: DateTime<Utc>) -> f64 {
        let into_hour = f64::from(chrono::Timelike::minute(&now)) / 60.0
            + f64::from(chrono::Timelike::second(&now)) / 3600.0;
        (1.0 - into_hour) * self.expected(cell, now)
            + into_hour * self.expected(cell, now + TimeDelta::hours(1))
    }

    /// Expected orders per cell in the hour after `now`, cells with none
    /// left out, in cell order.
    pub fn hour_ahead(&self, now: DateTime<Utc>) -> Vec<(CellIndex, f64)> {
        self.levels
            .keys()
            .map(|&c| (c, self.expected_next_hour(c, now)))
            .filter(|(_, x)| *x > 0.0)
            .collect()
    }
}

impl ForecastSettings {
    fn slots(&self) -> usize {
        match self.seasonality {
            Seasonality::Daily => 24,
            Seasonality::Weekly => 7 * 24,
        }
    }

    /// The slot of the local hour containing `at`.
    fn slot(&self, at: DateTime<Utc>) -> usize {
        let hour = self.tz.hour(at) as usize;
        match self.seasonality {
            Seasonality::Daily => hour,
            Seasonality::Weekly => {
                let local = at + TimeDelta::seconds(i64::from(self.tz.offset_secs()));
                local.weekday().num_days_from_monday() as usize * 24 + hour
            }
        }
    }
}

/// The skills an order kind requires, as [`SkillMix`] keys it: the
/// simulator's bit masks (`u64`, a bit per skill) or the platform's skill
/// codes (`BTreeSet<Skill>`).
pub trait SkillSet: Clone + Ord {
    /// Whether a nurse holding `held` holds every skill of `self`.
    fn within(&self, held: &Self) -> bool;
    /// The skills of both.
    fn union(&self, other: &Self) -> Self;
}

impl SkillSet for u64 {
    fn within(&self, held: &Self) -> bool {
        held & self == *self
    }

    fn union(&self, other: &Self) -> Self {
        self | other
    }
}

impl SkillSet for BTreeSet<Skill> {
    fn within(&self, held: &Self) -> bool {
        self.is_subset(held)
    }

    fn union(&self, other: &Self) -> Self {
        self | other
    }
}

/// At most this many kinds (the bits of a nurse's kinds mask, see
/// [`crate::reposition::suggest_by_kind`]).
pub const MAX_KINDS: usize = 64;

/// Each kind of order's share of the orders by local hour, learnt from the
/// organisation's history (the kinds are the skill sets its orders
/// required), for skill-aware repositioning.
///
/// Kinds are kept in the order they first appear in the history. With more
/// than [`MAX_KINDS`], the 63 most frequent are kept (ties to the earlier)
/// and the rest become one last kind requiring the union of their skills:
/// their orders still count in the shares, and only a nurse holding every
/// one of those rare skills counts as covering them (conservative: a rare
/// kind is left to the widely skilled).
#[derive(Debug, Clone, PartialEq)]
pub struct SkillMix<K> {
    tz: OrgTimeZone,
    kinds: Vec<K>,
    /// Per kind, per local hour: orders in the history.
    orders: Vec<[f64; 24]>,
}

impl<K: SkillSet> SkillMix<K> {
    /// A mix that knows no kind: one kind, every nurse's (as
    /// [`crate::reposition::suggest`]).
    pub fn empty(tz: OrgTimeZone) -> Self {
        Self {
            tz,
            kinds: Vec::new(),
            orders: Vec::new(),
        }
    }

    /// Learns from `history` (each order's creation time and required
    /// skills); as [`DemandForecast::fit`], only orders of complete local
    /// days before `now`'s day count.
    pub fn fit(
        tz: OrgTimeZone,
        history: impl IntoIterator<Item = (DateTime<Utc>, K)>,
        now: DateTime<Utc>,
    ) -> Self {
        let today = tz.start_of_day(now);
        let mut index: BTreeMap<K, usize> = BTreeMap::new();
        let mut kinds: Vec<K> = Vec::new();
        let mut orders: Vec<[f64; 24]> = Vec::new();
        for (t, required) in history {
            if t >= today {
                continue;
            }
            let c = *index.entry(required.clone()).or_insert_with(|| {
                kinds.push(required);
                orders.push([0.0; 24]);
                kinds.len() - 1
            });
            orders[c][tz.hour(t) as usize % 24] += 1.0;
        }
        let mut mix = Self { tz, kinds, orders };
        mix.cap();
        mix
    }

    /// At most [`MAX_KINDS`] kinds (see the type's doc).
    fn cap(&mut self) {
        if self.kinds.len() <= MAX_KINDS {
            return;
        }
        let total = |o: &[f64; 24]| o.iter().sum::<f64>();
        let mut by_count: Vec<usize> = (0..self.kinds.len()).collect();
        by_count.sort_by(|&a, &b| {
            total(&self.orders[b])
                .total_cmp(&total(&self.orders[a]))
                .then(a.cmp(&b))
        });
        let mut keep = vec![false; self.kinds.len()];
        for &c in by_count.iter().take(MAX_KINDS - 1) {
            keep[c] = true;
        }
        let (mut kinds, mut orders) = (Vec::new(), Vec::new());
        let mut rest: Option<(K, [f64; 24])> = None;
        for ((kind, o), keep) in self.kinds.drain(..).zip(self.orders.drain(..)).zip(keep) {
            if keep {
                kinds.push(kind);
                orders.push(o);
            } else {
                rest = Some(match rest {
                    None => (kind, o),
                    Some((k, mut sum)) => {
                        for (s, x) in sum.iter_mut().zip(o) {
                            *s += x;
                        }
                        (k.union(&kind), sum)
                    }
                });
            }
        }
        if let Some((k, o)) = rest {
            kinds.push(k);
            orders.push(o);
        }
        self.kinds = kinds;
        self.orders = orders;
    }

    /// The kinds, bit `c` of a kinds mask being `kinds()[c]`.
    pub fn kinds(&self) -> &[K] {
        &self.kinds
    }

    /// Orders learnt from.
    pub fn orders_learnt(&self) -> f64 {
        self.orders.iter().map(|o| o.iter().sum::<f64>()).sum()
    }

    /// Each kind's share of the orders of the local hour after the one
    /// containing `now` (at 09:40, the orders of 10–11); all equal when the
    /// history has none in that hour; `[1.0]` (one kind) when it knows no
    /// kind.
    pub fn shares(&self, now: DateTime<Utc>) -> Vec<f64> {
        if self.kinds.is_empty() {
            return vec![1.0];
        }
        let h = self.tz.hour(now + TimeDelta::hours(1)) as usize % 24;
        let total: f64 = self.orders.iter().map(|o| o[h]).sum();
        if total <= 0.0 {
            return vec![1.0 / self.kinds.len() as f64; self.kinds.len()];
        }
        self.orders.iter().map(|o| o[h] / total).collect()
    }

    /// The kinds a nurse holding `skills` can take, as a mask (bit `c`:
    /// `kinds()[c]`'s skills are all hers); `1` (the one kind) when the mix
    /// knows no kind.
    pub fn mask(&self, skills: &K) -> u64 {
        if self.kinds.is_empty() {
            return 1;
        }
        self.kinds
            .iter()
            .take(MAX_KINDS)
            .enumerate()
            .filter(|(_, k)| k.within(skills))
            .fold(0, |acc, (c, _)| acc | 1 << c)
    }
}

/// The forecast's error over one local day, per cell-hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ForecastError {
    /// Cell-hours compared: every cell forecast or with an order, × 24.
    pub cell_hours: usize,
    pub actual_orders: f64,
    pub forecast_orders: f64,
    /// Mean absolute error per cell-hour, orders.
    pub mae: f64,
    /// Weighted absolute percentage error: Σ|forecast − actual| ÷ Σ actual
    /// (`None` with no actual order).
    pub wape: Option<f64>,
}

/// How far `forecast` was from the orders of the local day starting at
/// `day_start` (`actual`: each order's place and time; others are ignored).
pub fn day_error(
    forecast: &DemandForecast,
    actual: &[(GeoPoint, DateTime<Utc>)],
    day_start: DateTime<Utc>,
) -> ForecastError {
    let s = forecast.settings;
    let day_end = day_start + TimeDelta::days(1);
    let mut counts: BTreeMap<(CellIndex, usize), f64> = BTreeMap::new();
    let mut cells: BTreeSet<CellIndex> = forecast.levels.keys().copied().collect();
    for (p, t) in actual {
        if *t < day_start || *t >= day_end {
            continue;
        }
        let Some(cell) = cell_of(p, s.resolution) else {
            continue;
        };
        let hour = ((*t - day_start).num_hours()).clamp(0, 23) as usize;
        *counts.entry((cell, hour)).or_insert(0.0) += 1.0;
        cells.insert(cell);
    }
    let (mut abs, mut act, mut fc) = (0.0, 0.0, 0.0);
    for &cell in &cells {
        for hour in 0..24 {
            let f = forecast.expected(cell, day_start + TimeDelta::hours(hour as i64));
            let a = counts.get(&(cell, hour)).copied().unwrap_or(0.0);
            abs += (f - a).abs();
            act += a;
            fc += f;
        }
    }
    let cell_hours = cells.len() * 24;
    ForecastError {
        cell_hours,
        actual_orders: act,
        forecast_orders: fc,
        mae: if cell_hours == 0 {
            0.0
        } else {
            abs / cell_hours as f64
        },
        wape: (act > 0.0).then(|| abs / act),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> GeoPoint {
        GeoPoint::new(29.395, 106.315).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Local 09:xx (UTC+8) on day `d` of December 2026.
    fn at9(d: u32) -> DateTime<Utc> {
        t(&format!("2026-12-{:02}T01:10:00Z", d))
    }

    #[test]
    fn smooths_a_known_series_by_hand() {
        // Counts at 09:00 on Dec 1, 2, 3: 2, 0, 4. alpha 0.5:
        // level = 2 → 0.5·0 + 0.5·2 = 1 → 0.5·4 + 0.5·1 = 2.5.
        let mut h = vec![(p(), at9(1)), (p(), at9(1))];
        h.extend((0..4).map(|_| (p(), at9(3))));
        let s = ForecastSettings {
            alpha: 0.5,
            ..ForecastSettings::default()
        };
        let f = DemandForecast::fit(s, &h, at9(4));
        assert_eq!(f.days_learnt(), 3);
        let cell = cell_of(&p(), Resolution::Seven).unwrap();
        assert!((f.expected(cell, at9(4)) - 2.5).abs() < 1e-9);
        // Another hour of that cell: always 0.
        assert_eq!(f.expected(cell, at9(4) + TimeDelta::hours(2)), 0.0);
        // Today's orders are not learnt.
        let mut h2 = h.clone();
        h2.push((p(), at9(4)));
        assert_eq!(DemandForecast::fit(s, &h2, at9(4)), f);
    }

    #[test]
    fn the_hour_ahead_is_pro_rata() {
        let h = vec![(p(), at9(1))];
        let f = DemandForecast::fit(ForecastSettings::default(), &h, at9(2));
        let cell = cell_of(&p(), Resolution::Seven).unwrap();
        // 09:30 local: half of 09 (1 order) and half of 10 (none).
        let now = t("2026-12-02T01:30:00Z");
        let ahead = f.hour_ahead(now);
        assert_eq!(ahead.len(), 1);
        assert_eq!(ahead[0].0, cell);
        assert!((ahead[0].1 - 0.5).abs() < 1e-9);
    }

    #[test]
    fn weekly_slots_learn_once_a_week() {
        // Tuesday 1 Dec and Tuesday 8 Dec at 09:00: 1 then 3 orders.
        let mut h = vec![(p(), at9(1))];
        h.extend((0..3).map(|_| (p(), at9(8))));
        let s = ForecastSettings {
            alpha: 0.5,
            seasonality: Seasonality::Weekly,
            ..ForecastSettings::default()
        };
        let f = DemandForecast::fit(s, &h, at9(9));
        let cell = cell_of(&p(), Resolution::Seven).unwrap();
        assert!((f.expected(cell, at9(15)) - 2.0).abs() < 1e-9);
        // Wednesday: its level saw only zeros.
        assert_eq!(f.expected(cell, at9(9)), 0.0);
    }

    #[test]
    fn error_of_a_day() {
        let h = vec![(p(), at9(1)), (p(), at9(1))];
        let f = DemandForecast::fit(ForecastSettings::default(), &h, at9(2));
        // Day 2 (local): one order at 09:00 where 2 were forecast.
        let day = ForecastSettings::default().tz.start_of_day(at9(2));
        let e = day_error(&f, &[(p(), at9(2))], day);
        assert_eq!(e.cell_hours, 24);
        assert_eq!(e.actual_orders, 1.0);
        assert_eq!(e.forecast_orders, 2.0);
        assert!((e.mae - 1.0 / 24.0).abs() < 1e-12);
        assert_eq!(e.wape, Some(1.0));
    }

    /// Local `h`:10 on day `d` of December 2026.
    fn at(d: u32, h: u32) -> DateTime<Utc> {
        at9(d) + TimeDelta::hours(i64::from(h) - 9)
    }

    fn skills(codes: &[&str]) -> BTreeSet<Skill> {
        codes.iter().map(|c| Skill::new(c).unwrap()).collect()
    }

    #[test]
    fn each_kind_gets_its_share_of_the_next_hours_orders() {
        let rehab = skills(&["rehab"]);
        let wound = skills(&["wound_care"]);
        // At 10:xx: 3 rehab and 1 wound-care order over two days; at 14:xx
        // only wound care; today's orders are not learnt.
        let mut h = vec![
            (at(1, 10), rehab.clone()),
            (at(1, 10), wound.clone()),
            (at(2, 10), rehab.clone()),
            (at(2, 10), rehab.clone()),
            (at(2, 14), wound.clone()),
        ];
        h.push((at(3, 10), wound.clone()));
        let mix = SkillMix::fit(OrgTimeZone::CHINA, h, at(3, 9));
        assert_eq!(mix.kinds(), [rehab.clone(), wound.clone()]);
        assert_eq!(mix.orders_learnt(), 5.0);
        // At 09:10 the next hour is 10–11.
        assert_eq!(mix.shares(at(3, 9)), [0.75, 0.25]);
        assert_eq!(mix.shares(at(3, 13)), [0.0, 1.0]);
        // An hour without orders: equal shares.
        assert_eq!(mix.shares(at(3, 2)), [0.5, 0.5]);
    }

    #[test]
    fn no_history_is_one_kind_every_nurse_takes() {
        let none: Vec<(DateTime<Utc>, u64)> = Vec::new();
        let mix = SkillMix::fit(OrgTimeZone::CHINA, none, at(3, 9));
        assert_eq!(mix, SkillMix::empty(OrgTimeZone::CHINA));
        assert!(mix.kinds().is_empty());
        assert_eq!(mix.shares(at(3, 9)), [1.0]);
        assert_eq!(mix.mask(&0), 1);
        assert_eq!(mix.mask(&0b111), 1);
    }

    #[test]
    fn a_nurse_takes_the_kinds_whose_skills_she_holds() {
        let rehab = skills(&["rehab"]);
        let both = skills(&["rehab", "wound_care"]);
        let wound = skills(&["wound_care"]);
        let h = [
            (at(1, 10), rehab.clone()),
            (at(1, 11), both.clone()),
            (at(1, 12), wound.clone()),
        ];
        let mix = SkillMix::fit(OrgTimeZone::CHINA, h, at(2, 9));
        assert_eq!(mix.mask(&rehab), 0b001);
        assert_eq!(mix.mask(&wound), 0b100);
        assert_eq!(mix.mask(&skills(&["rehab", "wound_care", "oral"])), 0b111);
        assert_eq!(mix.mask(&skills(&["oral"])), 0);
        assert_eq!(mix.mask(&BTreeSet::new()), 0);
        // Bit masks: the same rule.
        let h = [(at(1, 10), 0b01u64), (at(1, 10), 0b11)];
        let mix = SkillMix::fit(OrgTimeZone::CHINA, h, at(2, 9));
        assert_eq!(mix.mask(&0b01), 0b01);
        assert_eq!(mix.mask(&0b111), 0b11);
        assert_eq!(mix.mask(&0b10), 0);
    }

    #[test]
    fn past_64_kinds_the_rarest_become_one() {
        // 70 kinds, kind i (the mask i + 1) placed i + 1 times: kinds 0–6
        // (masks 1–7) are the rarest and become one kind needing all their
        // skills (0b111).
        let mut h = Vec::new();
        for i in 0..70u64 {
            for _ in 0..=i {
                h.push((at(1, 10), i + 1));
            }
        }
        let mix = SkillMix::fit(OrgTimeZone::CHINA, h.clone(), at(2, 9));
        assert_eq!(mix.kinds().len(), MAX_KINDS);
        assert_eq!(mix.kinds()[..63], (8..=70).collect::<Vec<u64>>());
        assert_eq!(mix.kinds()[63], 0b111);
        // Every order still counts.
        assert_eq!(mix.orders_learnt(), h.len() as f64);
        let shares = mix.shares(at(2, 9));
        assert!((shares[63] - 28.0 / h.len() as f64).abs() < 1e-12);
        // Only a nurse with all the rare skills covers the merged kind.
        assert_eq!(mix.mask(&0b011) >> 63, 0);
        assert_eq!(mix.mask(&0b111) >> 63, 1);
    }

    #[test]
    fn bad_alpha_is_refused() {
        for alpha in [0.0, 1.5, f64::NAN] {
            let s = ForecastSettings {
                alpha,
                ..ForecastSettings::default()
            };
            assert_eq!(s.validate().unwrap_err().field, "alpha");
        }
        assert!(ForecastSettings::default().validate().is_ok());
    }
}
