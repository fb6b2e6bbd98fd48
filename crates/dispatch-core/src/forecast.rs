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
//! Pure: no I/O and no clock (`now` is passed in).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use h3o::{CellIndex, LatLng, Resolution};
use serde::Serialize;
use yixin_domain::{GeoPoint, OrgTimeZone};

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
