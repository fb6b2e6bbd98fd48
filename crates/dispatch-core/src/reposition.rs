//! Where idle nurses should wait: suggestions that maximise the expected
//! share of the next hour's orders some nurse can reach within the promise.
//!
//! **Model (maximum expected covering, after Daskin's MEXCLP).** The demand
//! is the forecast's expected orders per cell for the next hour
//! ([`crate::forecast::DemandForecast::hour_ahead`]), placed at the cell's
//! centre. A nurse *covers* a cell when the ETA model puts the cell's centre
//! within [`RepositionSettings::reach_s`] of her. Each nurse is free when an
//! order comes with probability `1 − busy` (idle nurses
//! [`RepositionSettings::idle_busy_prob`], nurses on a job
//! [`RepositionSettings::busy_busy_prob`]), independently, so a cell with
//! demand `d` covered by nurses of busy probabilities `q₁…qₖ` expects
//! `d × (1 − q₁⋯qₖ)` of its orders reachable. The objective is the sum over
//! cells, a submodular function of the nurses' places.
//!
//! **Choice (greedy).** Nurses already on a job (`others`) stay where they
//! are. Each idle nurse may stay or move to a cell centre within
//! [`RepositionSettings::max_move_m`]; the pair (nurse, place) with the
//! largest gain net of a small moving cost is fixed first, and so on (lazy
//! evaluation: gains only shrink). Greedy over this choice (a partition
//! matroid) is within a half of the optimum. A nurse whose chosen place is
//! at least [`RepositionSettings::min_move_m`] away gets a [`Suggestion`];
//! she may ignore it.
//!
//! Pure: no I/O, no clock.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use h3o::{CellIndex, Resolution};
use serde::Serialize;
use yixin_domain::{GeoPoint, NurseId};

use crate::eta::EtaSettings;
use crate::forecast::{cell_of, centre_of};
use crate::settings::InvalidSettings;

/// Tuning of [`suggest`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RepositionSettings {
    /// A cell is covered when its centre is this close by the ETA model:
    /// the promise less a margin for the answer, travel noise and the cell's
    /// size (20 min by default against the 30-minute promise).
    pub reach_s: u32,
    /// The ETA model that turns distance into time.
    pub eta: EtaSettings,
    /// Probability an idle nurse is taken when an order comes (0.5).
    pub idle_busy_prob: f64,
    /// Probability a nurse on a job is still taken (0.8).
    pub busy_busy_prob: f64,
    /// Farthest a nurse is asked to move, metres (4 km).
    pub max_move_m: f64,
    /// A chosen place nearer than this is "stay" (no suggestion), metres.
    pub min_move_m: f64,
    /// Expected orders a kilometre of moving must earn (0.01): ties go to
    /// staying, and a long move must be worth it.
    pub move_cost_per_km: f64,
}

impl Default for RepositionSettings {
    fn default() -> Self {
        Self {
            reach_s: 20 * 60,
            eta: EtaSettings::default(),
            idle_busy_prob: 0.5,
            busy_busy_prob: 0.8,
            max_move_m: 4_000.0,
            min_move_m: 600.0,
            move_cost_per_km: 0.01,
        }
    }
}

impl RepositionSettings {
    /// Checks probabilities within [0, 1) and non-negative distances.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        for (field, q) in [
            ("idle_busy_prob", self.idle_busy_prob),
            ("busy_busy_prob", self.busy_busy_prob),
        ] {
            if !(0.0..1.0).contains(&q) {
                return Err(InvalidSettings::new(
                    field,
                    format!("must be within [0, 1), got {q}"),
                ));
            }
        }
        for (field, v) in [
            ("max_move_m", self.max_move_m),
            ("min_move_m", self.min_move_m),
            ("move_cost_per_km", self.move_cost_per_km),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(InvalidSettings::new(
                    field,
                    format!("must be a finite number ≥ 0, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// An idle nurse that may be asked to move.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleNurse {
    pub nurse_id: NurseId,
    pub at: GeoPoint,
}

/// Where a nurse is asked to wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub nurse_id: NurseId,
    /// The cell's centre.
    pub to: GeoPoint,
    pub cell: CellIndex,
    /// Expected next-hour orders made reachable by waiting there rather
    /// than nowhere (the greedy's marginal gain when it was chosen).
    pub expected_gain: f64,
}

/// Demand points with their reachable sets, shared by the evaluation.
struct Demand {
    points: Vec<GeoPoint>,
    orders: Vec<f64>,
}

impl Demand {
    fn new(demand: &[(CellIndex, f64)]) -> Self {
        let mut points = Vec::with_capacity(demand.len());
        let mut orders = Vec::with_capacity(demand.len());
        for &(cell, x) in demand {
            if let (Some(p), true) = (centre_of(cell), x > 0.0 && x.is_finite()) {
                points.push(p);
                orders.push(x);
            }
        }
        Self { points, orders }
    }

    /// Demand points `from` covers.
    fn reach(&self, from: &GeoPoint, s: &RepositionSettings) -> Vec<usize> {
        self.points
            .iter()
            .enumerate()
            .filter(|(_, p)| s.eta.eta(from, p).seconds <= s.reach_s)
            .map(|(i, _)| i)
            .collect()
    }
}

/// Expected next-hour orders reachable with nurses waiting at `idle` and
/// nurses on a job at `busy` (the objective [`suggest`] maximises).
pub fn expected_covered(
    idle: &[GeoPoint],
    busy: &[GeoPoint],
    demand: &[(CellIndex, f64)],
    settings: &RepositionSettings,
) -> f64 {
    let d = Demand::new(demand);
    let mut miss = vec![1.0; d.points.len()];
    for (places, q) in [
        (idle, settings.idle_busy_prob),
        (busy, settings.busy_busy_prob),
    ] {
        for p in places {
            for i in d.reach(p, settings) {
                miss[i] *= q;
            }
        }
    }
    d.orders.iter().zip(&miss).map(|(x, m)| x * (1.0 - m)).sum()
}

#[derive(PartialEq)]
struct Entry {
    score: f64,
    nurse: usize,
    site: usize,
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    // Highest score first; ties to the lower nurse, then site (deterministic).
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.nurse.cmp(&self.nurse))
            .then(other.site.cmp(&self.site))
    }
}

/// Suggestions for the idle nurses (see the module doc), in the order the
/// greedy fixed them. `others`: nurses on a job or holding an offer, who
/// stay where they are. `demand`: expected orders per cell for the next hour.
pub fn suggest(
    idle: &[IdleNurse],
    others: &[GeoPoint],
    demand: &[(CellIndex, f64)],
    settings: &RepositionSettings,
) -> Vec<Suggestion> {
    let idle: Vec<(IdleNurse, u64)> = idle.iter().map(|n| (n.clone(), 1)).collect();
    let others: Vec<(GeoPoint, u64)> = others.iter().map(|p| (*p, 1)).collect();
    suggest_by_kind(&idle, &others, demand, &[1.0], settings)
}

/// [`suggest`] when nurses hold different skills. Orders come in kinds
/// (the skills they need), kind `c` being `kinds[c]` of every cell's
/// orders; a nurse covers only the kinds she can take (bit `c` of her
/// mask), so a cell's orders of kind `c` miss with the product of the busy
/// probabilities of the nurses *of that kind* covering it. A rehab nurse
/// waiting in a cell covers none of its wound-care orders: one objective
/// over interchangeable nurses would spread the skill groups between the
/// towns (a rehab nurse here, a general one there) and leave each group's
/// orders far from its nurses. The objective is still a sum of
/// submodular coverage terms, so the lazy greedy stays within a half of
/// the optimum. At most 64 kinds (bits of the mask); `kinds` are shares,
/// negative or non-finite ones count as zero. The kinds, their shares and
/// each nurse's mask come from a [`crate::forecast::SkillMix`].
pub fn suggest_by_kind(
    idle: &[(IdleNurse, u64)],
    others: &[(GeoPoint, u64)],
    demand: &[(CellIndex, f64)],
    kinds: &[f64],
    settings: &RepositionSettings,
) -> Vec<Suggestion> {
    let d = Demand::new(demand);
    let kinds: Vec<f64> = kinds
        .iter()
        .take(64)
        .map(|&x| if x.is_finite() && x > 0.0 { x } else { 0.0 })
        .collect();
    let nk = kinds.len();
    if d.points.is_empty() || idle.is_empty() || nk == 0 {
        return Vec::new();
    }
    let bits = |mask: u64| (0..nk).filter(move |&c| mask >> c & 1 == 1);
    // miss[i × nk + c]: the probability that point i's orders of kind c
    // find no nurse.
    let mut miss = vec![1.0; d.points.len() * nk];
    for (p, mask) in others {
        for i in d.reach(p, settings) {
            for c in bits(*mask) {
                miss[i * nk + c] *= settings.busy_busy_prob;
            }
        }
    }
    // Sites: each demand point; its reach computed once. Site `k` for
    // k < n_points is a demand point, and nurse `j`'s own place is its own
    // reach list (index n_points + j).
    let n = d.points.len();
    let mut reach: Vec<Vec<usize>> = d.points.iter().map(|p| d.reach(p, settings)).collect();
    reach.extend(idle.iter().map(|(nurse, _)| d.reach(&nurse.at, settings)));
    let q = settings.idle_busy_prob;
    let gain = |miss: &[f64], site: usize, mask: u64| -> f64 {
        reach[site]
            .iter()
            .map(|&i| {
                let open: f64 = bits(mask).map(|c| kinds[c] * miss[i * nk + c]).sum();
                d.orders[i] * open * (1.0 - q)
            })
            .sum()
    };
    let moved_km = |nurse: usize, site: usize| -> f64 {
        if site >= n {
            0.0
        } else {
            idle[nurse].0.at.distance_m(&d.points[site]) / 1000.0
        }
    };
    let mut heap = BinaryHeap::new();
    for (j, (nurse, mask)) in idle.iter().enumerate() {
        heap.push(Entry {
            score: gain(&miss, n + j, *mask),
            nurse: j,
            site: n + j,
        });
        for (k, p) in d.points.iter().enumerate() {
            if nurse.at.distance_m(p) <= settings.max_move_m {
                heap.push(Entry {
                    score: gain(&miss, k, *mask) - settings.move_cost_per_km * moved_km(j, k),
                    nurse: j,
                    site: k,
                });
            }
        }
    }
    let mut placed = vec![false; idle.len()];
    let mut out = Vec::new();
    while let Some(top) = heap.pop() {
        if placed[top.nurse] {
            continue;
        }
        let mask = idle[top.nurse].1;
        let g = gain(&miss, top.site, mask);
        let score = g - settings.move_cost_per_km * moved_km(top.nurse, top.site);
        // Lazy greedy: a stale score is recomputed and pushed back unless
        // it still beats the next best.
        if score < top.score - 1e-12 && heap.peek().is_some_and(|next| next.score > score) {
            heap.push(Entry { score, ..top });
            continue;
        }
        placed[top.nurse] = true;
        for &i in &reach[top.site] {
            for c in bits(mask) {
                miss[i * nk + c] *= q;
            }
        }
        if top.site < n && moved_km(top.nurse, top.site) * 1000.0 >= settings.min_move_m {
            let to = d.points[top.site];
            if let Some(cell) = cell_of(&to, resolution_of(demand)) {
                out.push(Suggestion {
                    nurse_id: idle[top.nurse].0.nurse_id,
                    to,
                    cell,
                    expected_gain: g,
                });
            }
        }
    }
    out
}

/// The resolution of the demand's cells (7 when there are none).
fn resolution_of(demand: &[(CellIndex, f64)]) -> Resolution {
    demand
        .first()
        .map_or(Resolution::Seven, |(c, _)| c.resolution())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pt(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::new(lat, lng).unwrap()
    }

    fn cell(p: &GeoPoint) -> CellIndex {
        cell_of(p, Resolution::Seven).unwrap()
    }

    fn nurse(i: u128, at: GeoPoint) -> IdleNurse {
        IdleNurse {
            nurse_id: NurseId::from(uuid::Uuid::from_u128(i + 1)),
            at,
        }
    }

    #[test]
    fn each_nurse_covers_the_kinds_of_orders_she_can_take() {
        let s = RepositionSettings {
            reach_s: 5 * 60,
            max_move_m: 10_000.0,
            ..RepositionSettings::default()
        };
        // Two towns 3.3 km apart, out of each other's reach: 3 and 2
        // expected orders. A general nurse waits in A, a rehab nurse in B.
        let a = centre_of(cell(&pt(29.40, 106.32))).unwrap();
        let b = centre_of(cell(&pt(29.40, 106.354))).unwrap();
        let demand = [(cell(&a), 3.0), (cell(&b), 2.0)];
        let general = nurse(0, a);
        let rehab = nurse(1, b);
        // Interchangeable: each town has a nurse, nobody moves (B alone is
        // worth 2 × 0.5 to the second nurse, a second cover of A only
        // 3 × 0.5 × 0.5).
        let joint = suggest(&[general.clone(), rehab.clone()], &[], &demand, &s);
        assert!(joint.is_empty(), "{joint:?}");
        // Two kinds, general 2/3 and rehab 1/3 of the orders: the general
        // nurse covers none of the rehab orders, so the rehab nurse goes
        // where most of hers are, A (3 × 1/3 × 0.5 against B's 2 × 1/3 × 0.5).
        let kinds = [2.0 / 3.0, 1.0 / 3.0];
        let idle = [(general.clone(), 0b01), (rehab.clone(), 0b10)];
        let out = suggest_by_kind(&idle, &[], &demand, &kinds, &s);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].nurse_id, rehab.nurse_id);
        assert_eq!(out[0].cell, cell(&a));
        assert!((out[0].expected_gain - 0.5).abs() < 1e-9);
        // Two busy rehab nurses in A already cover A's rehab orders (miss
        // 0.8² = 0.64): B's then gain more (2/3 × 0.5 against
        // 1 × 0.64 × 0.5), so the idle rehab nurse stays.
        let busy_rehab = [(a, 0b10), (a, 0b10)];
        assert!(suggest_by_kind(&idle, &busy_rehab, &demand, &kinds, &s).is_empty());
        // Busy general nurses there change nothing for her.
        let busy_general = [(a, 0b01), (a, 0b01)];
        assert_eq!(
            suggest_by_kind(&idle, &busy_general, &demand, &kinds, &s)[0].cell,
            cell(&a)
        );
        // A nurse who can take both kinds counts both: alone in B, she is
        // sent to A like an interchangeable nurse would be.
        let both = [(nurse(2, b), 0b11)];
        let alone = suggest_by_kind(&both, &[], &demand, &kinds, &s);
        let plain = suggest(&[nurse(2, b)], &[], &demand, &s);
        assert_eq!(alone.len(), 1);
        assert_eq!(
            (alone[0].nurse_id, alone[0].cell),
            (plain[0].nurse_id, plain[0].cell)
        );
        assert!((alone[0].expected_gain - plain[0].expected_gain).abs() < 1e-9);
        // No kinds, or kinds that are no orders: nothing to cover.
        assert!(suggest_by_kind(&idle, &[], &demand, &[], &s).is_empty());
        assert!(suggest_by_kind(&idle, &[], &demand, &[0.0, f64::NAN], &s).is_empty());
    }

    #[test]
    fn a_far_nurse_is_sent_to_the_demand() {
        let town = pt(29.40, 106.32);
        // 3.3 km east: 3.3 × 1.4 / 25 km/h ≈ 11 min + 1: not within 5 min.
        let far = pt(29.40, 106.354);
        let s = RepositionSettings {
            reach_s: 5 * 60,
            ..RepositionSettings::default()
        };
        let demand = [(cell(&town), 3.0)];
        let out = suggest(&[nurse(0, far)], &[], &demand, &s);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].cell, cell(&town));
        assert!((out[0].expected_gain - 1.5).abs() < 1e-9);
        // Already there: no suggestion.
        let near = centre_of(cell(&town)).unwrap();
        assert!(suggest(&[nurse(0, near)], &[], &demand, &s).is_empty());
        // Covered already by a busy nurse there and nothing else to gain:
        // the second idle nurse adds less, but still some.
        let both = suggest(&[nurse(0, far), nurse(1, far)], &[near], &demand, &s);
        assert!(both.iter().all(|x| x.cell == cell(&town)));
        assert!(both[0].expected_gain < 1.5);
    }

    #[test]
    fn no_demand_no_suggestion() {
        let s = RepositionSettings::default();
        assert!(suggest(&[nurse(0, pt(29.4, 106.3))], &[], &[], &s).is_empty());
    }

    /// Every assignment of nurses to {stay, a demand cell within reach of
    /// moving}: the best objective value.
    fn exhaustive(idle: &[IdleNurse], demand: &[(CellIndex, f64)], s: &RepositionSettings) -> f64 {
        let sites: Vec<GeoPoint> = demand.iter().map(|(c, _)| centre_of(*c).unwrap()).collect();
        let options: Vec<Vec<GeoPoint>> = idle
            .iter()
            .map(|n| {
                let mut o = vec![n.at];
                o.extend(
                    sites
                        .iter()
                        .filter(|p| n.at.distance_m(p) <= s.max_move_m)
                        .copied(),
                );
                o
            })
            .collect();
        let mut best = 0.0f64;
        let mut pick = vec![0usize; idle.len()];
        loop {
            let places: Vec<GeoPoint> = pick.iter().zip(&options).map(|(&k, o)| o[k]).collect();
            best = best.max(expected_covered(&places, &[], demand, s));
            let mut j = 0;
            loop {
                if j == pick.len() {
                    return best;
                }
                pick[j] += 1;
                if pick[j] < options[j].len() {
                    break;
                }
                pick[j] = 0;
                j += 1;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The greedy's placement is within a half of the exhaustive optimum
        /// (the partition-matroid bound).
        #[test]
        fn greedy_is_within_half_of_exhaustive(
            nurses in prop::collection::vec((0.0f64..1.0, 0.0f64..1.0), 1..4),
            cells in prop::collection::vec((0.0f64..1.0, 0.0f64..1.0, 0.1f64..4.0), 1..5),
        ) {
            let at = |(y, x): (f64, f64)| pt(29.36 + 0.07 * y, 106.28 + 0.07 * x);
            let s = RepositionSettings {
                reach_s: 8 * 60,
                move_cost_per_km: 0.0,
                min_move_m: 0.0,
                ..RepositionSettings::default()
            };
            let idle: Vec<IdleNurse> =
                nurses.iter().enumerate().map(|(i, &p)| nurse(i as u128, at(p))).collect();
            let mut demand: Vec<(CellIndex, f64)> = Vec::new();
            for &(y, x, w) in &cells {
                let c = cell(&at((y, x)));
                if !demand.iter().any(|(d, _)| *d == c) {
                    demand.push((c, w));
                }
            }
            let out = suggest(&idle, &[], &demand, &s);
            let places: Vec<GeoPoint> = idle
                .iter()
                .map(|n| out.iter().find(|x| x.nurse_id == n.nurse_id).map_or(n.at, |x| x.to))
                .collect();
            let greedy = expected_covered(&places, &[], &demand, &s);
            let best = exhaustive(&idle, &demand, &s);
            prop_assert!(greedy >= 0.5 * best - 1e-9, "greedy {greedy} best {best}");
        }

        /// Orders split into kinds every nurse can take are the orders
        /// unsplit: the same places, the same gains.
        #[test]
        fn kinds_every_nurse_takes_are_one_kind(
            nurses in prop::collection::vec((0.0f64..1.0, 0.0f64..1.0), 1..4),
            busy in prop::collection::vec((0.0f64..1.0, 0.0f64..1.0), 0..3),
            cells in prop::collection::vec((0.0f64..1.0, 0.0f64..1.0, 0.1f64..4.0), 1..5),
            split in 0.05f64..0.95,
        ) {
            let at = |(y, x): (f64, f64)| pt(29.36 + 0.07 * y, 106.28 + 0.07 * x);
            let s = RepositionSettings {
                reach_s: 8 * 60,
                ..RepositionSettings::default()
            };
            let idle: Vec<IdleNurse> =
                nurses.iter().enumerate().map(|(i, &p)| nurse(i as u128, at(p))).collect();
            let others: Vec<GeoPoint> = busy.iter().map(|&p| at(p)).collect();
            let mut demand: Vec<(CellIndex, f64)> = Vec::new();
            for &(y, x, w) in &cells {
                let c = cell(&at((y, x)));
                if !demand.iter().any(|(d, _)| *d == c) {
                    demand.push((c, w));
                }
            }
            let plain = suggest(&idle, &others, &demand, &s);
            let idle2: Vec<(IdleNurse, u64)> = idle.iter().map(|n| (n.clone(), 0b11)).collect();
            let others2: Vec<(GeoPoint, u64)> = others.iter().map(|p| (*p, 0b11)).collect();
            let kinds = suggest_by_kind(&idle2, &others2, &demand, &[split, 1.0 - split], &s);
            prop_assert_eq!(plain.len(), kinds.len());
            for (p, k) in plain.iter().zip(&kinds) {
                prop_assert_eq!((p.nurse_id, p.cell), (k.nurse_id, k.cell));
                prop_assert!((p.expected_gain - k.expected_gain).abs() < 1e-9);
            }
        }
    }
}
