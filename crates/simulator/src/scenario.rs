//! The district to simulate: its inputs ([`Scenario`]) and one drawn day
//! plan of it ([`Instance`]: nurses with skills and shifts, every order with
//! its time, place, service and duration).
//!
//! The default is Shuangfu, Jiangjin, from the report in `shared/sources`:
//! 182,176 residents, 7.17 % aged 65 or more. The report gives no demand
//! figure a mature service would see (100-odd orders in the first months),
//! so orders per day and the fleet are derived from it under stated
//! assumptions ([`Scenario::shuangfu`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use yixin_domain::{Catalog, GeoPoint};

use crate::SimError;

/// Milliseconds in an hour and a day (simulation time is ms from local midnight of day 0).
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Relative order rate per hour of day (local time), from 00:00.
///
/// An assumption, not from the source: home nursing is ordered by day with a
/// morning peak (after the family's breakfast and the morning round of
/// discharged patients, 08–11) and an evening peak (working relatives back
/// home, 18–20), little at night. The peak hour carries 8.9 % of the day.
pub const HOURLY_PROFILE: [f64; 24] = [
    0.2, 0.1, 0.1, 0.1, 0.1, 0.3, 0.8, 1.5, 2.5, 3.0, 2.8, 2.0, //
    1.4, 1.4, 1.6, 1.8, 1.8, 2.0, 2.6, 2.8, 2.2, 1.4, 0.8, 0.4,
];

/// Share of orders per catalogue category (uniform over a category's active
/// services). An assumption weighted to the district's 7.17 % aged 65+:
/// specialised nursing (catheters, wounds, PICC lines) first, rehab next.
pub const CATEGORY_MIX: [(&str, f64); 4] = [
    ("maternal_infant", 0.20),
    ("specialized_nursing", 0.40),
    ("rehab", 0.25),
    ("oral_health", 0.15),
];

/// Day-shift nurse profiles: share of the day fleet and the skills held.
/// Night nurses (senior, on call) hold every skill.
pub const NURSE_PROFILES: [(&str, f64, &[&str]); 4] = [
    (
        "general",
        0.40,
        &[
            "wound_care",
            "catheter",
            "gastric_tube",
            "picc",
            "stoma_care",
            "venipuncture",
        ],
    ),
    (
        "maternal",
        0.20,
        &["neonatal", "maternal", "wound_care", "venipuncture"],
    ),
    ("rehab", 0.25, &["rehab"]),
    ("oral", 0.15, &["oral_care"]),
];

/// Shifts, local hours: early 07–15, late 14–22 (an hour of overlap for the
/// hand-over), night 22–07.
pub const SHIFTS: [(&str, i64, i64); 3] = [("early", 7, 15), ("late", 14, 22), ("night", 22, 31)];

/// Inputs of one simulation. Serialised as the `scenario` of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub days: u32,
    pub residents: u32,
    pub aged_65_plus_share: f64,
    /// Mean orders a day (Poisson, shaped by [`HOURLY_PROFILE`]).
    pub orders_per_day: f64,
    pub nurses: u32,
    /// Share of the fleet on the night shift (the rest split early/late).
    pub night_share: f64,
    /// A square of this area centred on `center`.
    pub area_km2: f64,
    pub center_lat: f64,
    pub center_lng: f64,
    /// Probability a nurse accepts an offer; declines with `decline_prob`;
    /// otherwise lets it expire.
    pub accept_prob: f64,
    pub decline_prob: f64,
    /// Seconds to the answer: uniform between these.
    pub answer_delay_s: (f64, f64),
    /// Offer deadline (the product's 30 s).
    pub offer_ttl_s: i64,
    /// σ of the log-normal factor (mean 1) on the ETA model's travel time.
    pub travel_noise_sigma: f64,
    /// σ of the log-normal factor (mean 1) on the catalogue's visit duration.
    pub duration_noise_sigma: f64,
    /// A resident with no nurse on the way after this many minutes cancels: unserved.
    pub patience_min: i64,
    /// The batch policy's window.
    pub batch_window_ms: i64,
    /// Share of orders (other than course visits) placed by a resident who
    /// ordered before, at least [`REPEAT_MIN_GAP_MS`] earlier: same place,
    /// same service (see [`Repeat`]). 0 in the default scenario; an
    /// assumption of 30 % ([`REPEAT_SHARE`]) with repeat patients on.
    pub repeat_share: f64,
    /// Package services (the catalogue's `course_visits`, e.g. 颈椎套餐 and
    /// 急性腰痛套餐, 3 visits) bring their later visits as orders of the
    /// same patient at the catalogue's interval.
    pub courses: bool,
    /// The ranking's continuity credit for the patient's nurse from before
    /// (`dispatch.continuity_credit_s`; 0 turns the term off).
    pub continuity_credit_s: u32,
}

impl Default for Scenario {
    fn default() -> Self {
        Self::shuangfu()
    }
}

/// Orders a day per resident aged 65+ (2 %: one in fifty a day). Assumed:
/// the source only gives a service in its first months.
pub const ORDERS_PER_AGED_RESIDENT_DAY: f64 = 0.02;
/// Fleet sizing: expected nurse-hours of work (travel + visit, about 53 min
/// an order) ÷ 8-hour shifts ÷ this target utilisation.
pub const TARGET_UTILISATION: f64 = 0.65;
/// Assumed mean minutes of work per order (visit ≈ 43 min over the mix, travel ≈ 10).
pub const WORK_MIN_PER_ORDER: f64 = 53.0;
/// Default [`Scenario::repeat_share`]: 30 % of orders come from a resident
/// who ordered before. Assumed (no source gives it): home nursing is largely
/// recurring care — catheter and gastric-tube changes, PICC maintenance,
/// wound dressings every few days — so repeat residents are common even
/// within a week.
pub const REPEAT_SHARE: f64 = 0.30;
/// A repeat order comes at least this long after the resident's previous one.
pub const REPEAT_MIN_GAP_MS: i64 = 12 * HOUR_MS;

impl Scenario {
    /// Shuangfu, Jiangjin: 182,176 residents, 7.17 % aged 65+ (source),
    /// orders/day = residents × 7.17 % × [`ORDERS_PER_AGED_RESIDENT_DAY`]
    /// (≈ 261), nurses = orders × [`WORK_MIN_PER_ORDER`] ÷ 60 ÷ 8 h ÷
    /// [`TARGET_UTILISATION`], rounded up (45), 60 km² (the demo service area's size).
    /// The same scenario with repeat patients: [`REPEAT_SHARE`] reorders and
    /// package services as courses (what `yixin simulate --continuity` and
    /// `--repeat-patients` run).
    pub fn with_repeat_patients(mut self) -> Self {
        self.repeat_share = REPEAT_SHARE;
        self.courses = true;
        self
    }

    pub fn shuangfu() -> Self {
        let residents = 182_176;
        let aged = 0.0717;
        let orders_per_day = (f64::from(residents) * aged * ORDERS_PER_AGED_RESIDENT_DAY).round();
        Self {
            name: "Shuangfu, Jiangjin".to_owned(),
            seed: 1,
            days: 1,
            residents,
            aged_65_plus_share: aged,
            orders_per_day,
            nurses: Self::nurses_for(orders_per_day),
            night_share: 0.1,
            area_km2: 60.0,
            center_lat: 29.395,
            center_lng: 106.315,
            accept_prob: 0.85,
            decline_prob: 0.10,
            answer_delay_s: (5.0, 25.0),
            offer_ttl_s: 30,
            travel_noise_sigma: 0.25,
            duration_noise_sigma: 0.2,
            patience_min: 60,
            batch_window_ms: 2_000,
            // Off by default, so the default scenario's figures (and what
            // the policies are compared on) stay those of every earlier run;
            // `with_repeat_patients` turns them on.
            repeat_share: 0.0,
            courses: false,
            continuity_credit_s: yixin_dispatch_core::ScoringWeights::default().continuity_credit_s,
        }
    }

    /// The fleet the sizing rule gives for `orders_per_day`.
    pub fn nurses_for(orders_per_day: f64) -> u32 {
        (orders_per_day * WORK_MIN_PER_ORDER / 60.0 / 8.0 / TARGET_UTILISATION)
            .ceil()
            .max(1.0) as u32
    }

    /// Refuses values the model cannot run with.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |field: &'static str, why: &str| Err(SimError::Scenario(field, why.to_owned()));
        if self.days == 0 || self.days > 366 {
            return bad("days", "must be 1 to 366");
        }
        if !(self.orders_per_day >= 0.0 && self.orders_per_day <= 1_000_000.0) {
            return bad("orders_per_day", "must be 0 to 1,000,000");
        }
        if self.nurses == 0 || self.nurses > 100_000 {
            return bad("nurses", "must be 1 to 100,000");
        }
        if !(self.area_km2 > 0.0 && self.area_km2 <= 10_000.0) {
            return bad("area_km2", "must be > 0 and at most 10,000");
        }
        if !(0.0..=1.0).contains(&self.night_share) {
            return bad("night_share", "must be within 0..1");
        }
        if !(self.accept_prob >= 0.0
            && self.decline_prob >= 0.0
            && self.accept_prob + self.decline_prob <= 1.0)
        {
            return bad("accept_prob", "accept + decline must be within 0..1");
        }
        if !(self.answer_delay_s.0 >= 0.0
            && self.answer_delay_s.0 <= self.answer_delay_s.1
            && self.answer_delay_s.1 < self.offer_ttl_s as f64)
        {
            return bad("answer_delay_s", "must be 0 ≤ min ≤ max < offer_ttl_s");
        }
        if !(0.0..=2.0).contains(&self.travel_noise_sigma)
            || !(0.0..=2.0).contains(&self.duration_noise_sigma)
        {
            return bad("travel_noise_sigma", "noise σ must be within 0..2");
        }
        if self.patience_min < 30 {
            return bad("patience_min", "must be at least 30");
        }
        if !(100..=60_000).contains(&self.batch_window_ms) {
            return bad("batch_window_ms", "must be 100 to 60,000");
        }
        if !(0.0..=1.0).contains(&self.repeat_share) {
            return bad("repeat_share", "must be within 0..1");
        }
        self.scoring()?;
        GeoPoint::new(self.center_lat, self.center_lng)
            .map_err(|e| SimError::Scenario("center", e.to_string()))?;
        Ok(())
    }

    /// The ranking weights of the online policies: the engine's defaults
    /// with this scenario's continuity credit.
    pub fn scoring(&self) -> Result<yixin_dispatch_core::ScoringWeights, SimError> {
        yixin_dispatch_core::ScoringWeights::default()
            .with_continuity(self.continuity_credit_s)
            .map_err(|e| SimError::Scenario("continuity_credit_s", e.to_string()))
    }

    /// The simulated span, ms.
    pub fn horizon_ms(&self) -> i64 {
        i64::from(self.days) * DAY_MS
    }
}

/// A nurse of the instance.
#[derive(Debug, Clone, PartialEq)]
pub struct SimNurse {
    /// Skills as a bit set over [`Instance::skills`].
    pub skills: u64,
    pub home: GeoPoint,
    /// On-shift intervals, ms, sorted and disjoint.
    pub shifts: Vec<(i64, i64)>,
}

/// One order of the instance, with what only hindsight knows (its duration).
#[derive(Debug, Clone, PartialEq)]
pub struct SimOrder {
    pub created_ms: i64,
    pub location: GeoPoint,
    /// Index into the catalogue's services.
    pub service: usize,
    /// Skills required, a bit set over [`Instance::skills`].
    pub required: u64,
    /// How long the visit actually takes, ms.
    pub duration_ms: i64,
    /// The patient (the resident's household address): orders of one
    /// patient share it, numbered in order of first appearance.
    pub patient: usize,
    /// `Some` when the patient ordered before.
    pub repeat: Option<Repeat>,
}

/// Why an order comes from a patient already seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// A later visit of a course (a package service).
    Course,
    /// The resident orders the same service again.
    Reorder,
}

/// One drawn instance: the same for every policy, so they are compared on
/// exactly the same orders, nurses, travel noise and answers.
#[derive(Debug, Clone)]
pub struct Instance {
    pub scenario: Scenario,
    /// Skill codes, the bit positions of the skill sets.
    pub skills: Vec<String>,
    pub services: Vec<String>,
    pub nurses: Vec<SimNurse>,
    /// Sorted by creation time.
    pub orders: Vec<SimOrder>,
    /// Catalogue duration of each service, minutes (what the engine
    /// predicts a visit's end from; `SimOrder::duration_ms` is the realised one).
    pub service_minutes: Vec<u32>,
    /// The organisation's order history before day 0 (place, ms, negative):
    /// [`HISTORY_DAYS`] days drawn from the same scenario with another seed,
    /// what the demand forecast learns from before the simulated days.
    pub history: Vec<(GeoPoint, i64)>,
    /// The skills each order of [`Self::history`] required, as the
    /// organisation's records hold (skill-aware repositioning learns the
    /// mix of orders from it).
    pub history_required: Vec<u64>,
}

/// Days of order history before the simulated span (four weeks).
pub const HISTORY_DAYS: u32 = 28;

/// The square district: `(south, west, north, east)` in degrees.
pub(crate) fn bounds(s: &Scenario) -> (f64, f64, f64, f64) {
    let side_km = s.area_km2.sqrt();
    let dlat = side_km / 111.32;
    let dlng = side_km / (111.32 * s.center_lat.to_radians().cos().max(0.01));
    (
        s.center_lat - dlat / 2.0,
        s.center_lng - dlng / 2.0,
        s.center_lat + dlat / 2.0,
        s.center_lng + dlng / 2.0,
    )
}

/// The on-shift intervals, ms, of a nurse on shift `which` (an index into
/// [`SHIFTS`]) every day of a `days`-day run.
pub(crate) fn shift_intervals(which: usize, days: i64) -> Vec<(i64, i64)> {
    let (_, from, to) = SHIFTS[which];
    // The night shift of the day before covers day 0's small hours.
    let first = if which == 2 { -1 } else { 0 };
    (first..days)
        .map(|d| (((d * 24 + from) * HOUR_MS).max(0), (d * 24 + to) * HOUR_MS))
        .map(|(a, b)| (a, b.min(days * DAY_MS)))
        .filter(|(a, b)| a < b)
        .collect()
}

/// A standard normal deviate (Box–Muller) from two uniforms in (0, 1].
pub(crate) fn normal(u1: f64, u2: f64) -> f64 {
    (-2.0 * u1.max(f64::MIN_POSITIVE).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal factor with mean 1 and log-σ `sigma`.
pub(crate) fn lognormal(sigma: f64, z: f64) -> f64 {
    (sigma * z - sigma * sigma / 2.0).exp()
}

impl Instance {
    /// Draws the instance of `scenario` from its seed.
    pub fn generate(scenario: &Scenario, catalog: &Catalog) -> Result<Self, SimError> {
        let mut inst = Self::draw_days(scenario, catalog)?;
        // The history: the same district and demand, its own seed (so the
        // simulated days' orders are never what the forecast learnt), no
        // repeat patients (only places and times matter to it).
        let past = Scenario {
            seed: splitmix(scenario.seed ^ 0x4849_5354_4f52_5953),
            days: HISTORY_DAYS,
            repeat_share: 0.0,
            courses: false,
            ..scenario.clone()
        };
        let shift = i64::from(HISTORY_DAYS) * DAY_MS;
        let past_orders = Self::draw_days(&past, catalog)?.orders;
        inst.history_required = past_orders.iter().map(|o| o.required).collect();
        inst.history = past_orders
            .into_iter()
            .map(|o| (o.location, o.created_ms - shift))
            .collect();
        Ok(inst)
    }

    fn draw_days(scenario: &Scenario, catalog: &Catalog) -> Result<Self, SimError> {
        scenario.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        let mut skills: Vec<String> = Vec::new();
        let bit = |code: &str, skills: &mut Vec<String>| -> Result<u64, SimError> {
            let i = match skills.iter().position(|s| s == code) {
                Some(i) => i,
                None => {
                    skills.push(code.to_owned());
                    skills.len() - 1
                }
            };
            if i >= 64 {
                return Err(SimError::Scenario("catalog", "more than 64 skills".into()));
            }
            Ok(1u64 << i)
        };

        // Services by category, with their skill sets.
        let active: Vec<_> = catalog.services.iter().filter(|s| s.active).collect();
        let mut service_skills = Vec::with_capacity(active.len());
        for s in &active {
            let mut mask = 0;
            for k in &s.required_skills {
                mask |= bit(k.as_str(), &mut skills)?;
            }
            service_skills.push(mask);
        }
        let mut all_skills = 0u64;
        for (_, _, ks) in NURSE_PROFILES {
            for k in ks {
                all_skills |= bit(k, &mut skills)?;
            }
        }
        for m in &service_skills {
            all_skills |= m;
        }

        let (south, west, north, east) = bounds(scenario);
        let uniform_point = |rng: &mut ChaCha8Rng| -> Result<GeoPoint, SimError> {
            let lat = south + (north - south) * rng.random::<f64>();
            let lng = west + (east - west) * rng.random::<f64>();
            GeoPoint::new(lat, lng).map_err(|e| SimError::Scenario("center", e.to_string()))
        };

        // Nurses: night crew first (every skill), the rest by profile, early/late alternating.
        let days = i64::from(scenario.days);
        let shift_list = |which: usize| shift_intervals(which, days);
        let total = scenario.nurses as usize;
        let night = ((total as f64) * scenario.night_share).round() as usize;
        let night = night.min(total);
        let mut nurses = Vec::with_capacity(total);
        for _ in 0..night {
            nurses.push(SimNurse {
                skills: all_skills,
                home: uniform_point(&mut rng)?,
                shifts: shift_list(2),
            });
        }
        let day = total - night;
        let mut profile_counts: Vec<usize> = NURSE_PROFILES
            .iter()
            .map(|(_, share, _)| (day as f64 * share).floor() as usize)
            .collect();
        // Hand out the rounding remainder in profile order.
        let mut i = 0;
        while profile_counts.iter().sum::<usize>() < day {
            let k = i % profile_counts.len();
            profile_counts[k] += 1;
            i += 1;
        }
        for ((_, _, ks), count) in NURSE_PROFILES.iter().zip(profile_counts) {
            let mut mask = 0;
            for k in *ks {
                mask |= bit(k, &mut skills)?;
            }
            for j in 0..count {
                nurses.push(SimNurse {
                    skills: mask,
                    home: uniform_point(&mut rng)?,
                    shifts: shift_list(j % 2),
                });
            }
        }

        // Orders: piecewise-constant Poisson rate by hour; places: 65 % around
        // three town centres, the rest anywhere.
        let centres = [(0.35, 0.40), (0.65, 0.60), (0.50, 0.25)];
        let weight_sum: f64 = HOURLY_PROFILE.iter().sum();
        let mut orders = Vec::new();
        let cat_weights: Vec<(usize, f64)> = CATEGORY_MIX
            .iter()
            .filter_map(|(code, w)| {
                let n = active.iter().filter(|s| s.category_code == *code).count();
                (n > 0).then_some((n, *w))
            })
            .collect();
        let cat_total: f64 = cat_weights.iter().map(|(_, w)| w).sum();
        for d in 0..days {
            for (h, w) in HOURLY_PROFILE.iter().enumerate() {
                let rate_per_ms = scenario.orders_per_day * w / weight_sum / HOUR_MS as f64;
                if rate_per_ms <= 0.0 {
                    continue;
                }
                let start = d * DAY_MS + h as i64 * HOUR_MS;
                let mut t = start as f64;
                loop {
                    let u: f64 = rng.random();
                    t += -(1.0 - u).max(f64::MIN_POSITIVE).ln() / rate_per_ms;
                    if t >= (start + HOUR_MS) as f64 {
                        break;
                    }
                    let location = if rng.random::<f64>() < 0.65 {
                        let (cy, cx) = centres[rng.random_range(0..centres.len())];
                        let (zy, zx) = (
                            normal(rng.random(), rng.random()),
                            normal(rng.random(), rng.random()),
                        );
                        let fy = (cy + 0.12 * zy).clamp(0.0, 1.0);
                        let fx = (cx + 0.12 * zx).clamp(0.0, 1.0);
                        GeoPoint::new(south + (north - south) * fy, west + (east - west) * fx)
                            .map_err(|e| SimError::Scenario("center", e.to_string()))?
                    } else {
                        uniform_point(&mut rng)?
                    };
                    // Category by the mix, then a service uniformly within it.
                    let mut pick = rng.random::<f64>() * cat_total;
                    let mut cat_idx = cat_weights.len() - 1;
                    for (k, (_, w)) in cat_weights.iter().enumerate() {
                        if pick < *w {
                            cat_idx = k;
                            break;
                        }
                        pick -= w;
                    }
                    let code = CATEGORY_MIX
                        .iter()
                        .filter(|(c, _)| active.iter().any(|s| s.category_code == *c))
                        .nth(cat_idx)
                        .map(|(c, _)| *c)
                        .unwrap_or_default();
                    let in_cat: Vec<usize> = active
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.category_code == code)
                        .map(|(i, _)| i)
                        .collect();
                    let service = in_cat[rng.random_range(0..in_cat.len())];
                    let z = normal(rng.random(), rng.random());
                    let minutes = f64::from(active[service].duration_min)
                        * lognormal(scenario.duration_noise_sigma, z);
                    orders.push(SimOrder {
                        created_ms: t as i64,
                        location,
                        service,
                        required: service_skills[service],
                        duration_ms: (minutes * 60_000.0).round().max(60_000.0) as i64,
                        patient: orders.len(),
                        repeat: None,
                    });
                }
            }
        }
        let course_offsets: Vec<Vec<i64>> = active
            .iter()
            .map(|s| {
                let first = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
                s.clinical
                    .visit_times(first)
                    .iter()
                    .skip(1)
                    .map(|t| (*t - first).num_milliseconds())
                    .collect()
            })
            .collect();
        let durations: Vec<u32> = active.iter().map(|s| s.duration_min).collect();
        assign_patients(
            scenario,
            &mut orders,
            &course_offsets,
            &durations,
            &service_skills,
        );
        Ok(Self {
            scenario: scenario.clone(),
            skills,
            services: active.iter().map(|s| s.code.clone()).collect(),
            nurses,
            orders,
            service_minutes: durations,
            history: Vec::new(),
            history_required: Vec::new(),
        })
    }

    /// Whether nurse `n` holds every skill `order` needs.
    pub fn qualified(&self, n: usize, order: usize) -> bool {
        let req = self.orders[order].required;
        self.nurses[n].skills & req == req
    }

    /// A uniform in [0, 1) fixed by (seed, what, a, b): the same draw for
    /// every policy (common random numbers), whatever order events come in.
    pub fn draw(&self, what: u64, a: usize, b: usize) -> f64 {
        let mut x = self.scenario.seed ^ what.wrapping_mul(0xA076_1D64_78BD_642F);
        x = splitmix(x ^ (a as u64).wrapping_mul(0xE703_7ED1_A0B4_28DB));
        x = splitmix(x ^ (b as u64).wrapping_mul(0x8EBC_6AF0_9C88_C6E3));
        (splitmix(x) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Actual travel time of nurse `n` to `order` over the model's estimate:
    /// a log-normal factor, fixed per (order, nurse).
    pub fn travel_factor(&self, order: usize, n: usize) -> f64 {
        let z = normal(
            1.0 - self.draw(DRAW_TRAVEL_A, order, n),
            self.draw(DRAW_TRAVEL_B, order, n),
        );
        lognormal(self.scenario.travel_noise_sigma, z)
    }

    /// How nurse `n` answers an offer of `order` (fixed per pair: asked
    /// again, she answers the same), and after how many ms.
    pub fn answer(&self, order: usize, n: usize) -> (Answer, i64) {
        let s = &self.scenario;
        let u = self.draw(DRAW_ANSWER, order, n);
        let (lo, hi) = s.answer_delay_s;
        let delay = ((lo + (hi - lo) * self.draw(DRAW_DELAY, order, n)) * 1_000.0) as i64;
        if u < s.accept_prob {
            (Answer::Accept, delay)
        } else if u < s.accept_prob + s.decline_prob {
            (Answer::Decline, delay)
        } else {
            (Answer::Expire, s.offer_ttl_s * 1_000)
        }
    }
}

/// Turns some of the drawn orders into orders of patients already seen,
/// keeping every order's time (so the demand curve is unchanged) and
/// drawing from its own stream (so the rest of the instance is too):
///
/// - a course visit that is due (its first visit's time plus the
///   catalogue's interval) takes the next order placed at or after it;
/// - else, with probability `repeat_share`, the order is a reorder by a
///   resident whose last order was at least [`REPEAT_MIN_GAP_MS`] earlier
///   (uniformly among them, none in the middle of a course);
/// - else it is a new patient, who starts a course if the service is a
///   package.
///
/// A taken-over order gets the patient's place, service and skills, and
/// its visit length is rescaled to the service's catalogue duration.
/// Patients are numbered in order of first appearance.
pub(crate) fn assign_patients(
    scenario: &Scenario,
    orders: &mut [SimOrder],
    course_offsets: &[Vec<i64>],
    durations: &[u32],
    service_skills: &[u64],
) {
    struct Patient {
        location: GeoPoint,
        service: usize,
        last_ms: i64,
        in_course: bool,
    }
    let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed ^ PATIENT_STREAM);
    let mut patients: Vec<Patient> = Vec::new();
    // (due, patient, visits left after this one), due first.
    let mut due: std::collections::BTreeSet<(i64, usize, usize)> = Default::default();
    for order in orders.iter_mut() {
        let t = order.created_ms;
        let u: f64 = rng.random();
        let pick: f64 = rng.random();
        let course = due.first().copied().filter(|(at, _, _)| *at <= t);
        let (patient, repeat) = if let Some(entry) = course {
            due.remove(&entry);
            let (_, p, left) = entry;
            if left == 0 {
                patients[p].in_course = false;
            }
            (p, Some(Repeat::Course))
        } else {
            let eligible: Vec<usize> = if u < scenario.repeat_share {
                patients
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| !p.in_course && p.last_ms + REPEAT_MIN_GAP_MS <= t)
                    .map(|(i, _)| i)
                    .collect()
            } else {
                Vec::new()
            };
            if eligible.is_empty() {
                let p = patients.len();
                let offsets = if scenario.courses {
                    course_offsets
                        .get(order.service)
                        .map_or(&[][..], |v| &v[..])
                } else {
                    &[]
                };
                for (k, off) in offsets.iter().enumerate() {
                    due.insert((t + off, p, offsets.len() - 1 - k));
                }
                patients.push(Patient {
                    location: order.location,
                    service: order.service,
                    last_ms: t,
                    in_course: !offsets.is_empty(),
                });
                order.patient = p;
                order.repeat = None;
                continue;
            }
            let k = ((pick * eligible.len() as f64) as usize).min(eligible.len() - 1);
            (eligible[k], Some(Repeat::Reorder))
        };
        let p = &mut patients[patient];
        p.last_ms = t;
        if order.service != p.service {
            let from = f64::from(durations[order.service].max(1));
            let to = f64::from(durations[p.service]);
            order.duration_ms = ((order.duration_ms as f64) * to / from)
                .round()
                .max(60_000.0) as i64;
            order.service = p.service;
            order.required = service_skills[p.service];
        }
        order.location = p.location;
        order.patient = patient;
        order.repeat = repeat;
    }
}

const PATIENT_STREAM: u64 = 0x5A7E_17C0_FFEE_0017;
const DRAW_TRAVEL_A: u64 = 1;
const DRAW_TRAVEL_B: u64 = 2;
const DRAW_ANSWER: u64 = 3;
const DRAW_DELAY: u64 = 4;

/// A nurse's answer to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Decline,
    /// No answer before the deadline.
    Expire,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
