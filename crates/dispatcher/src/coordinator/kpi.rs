//! The dashboard's arithmetic, pure: the local day, minutes left, the
//! at-risk rule, medians and shares of the day's orders, and supply against
//! demand per H3 cell. No I/O, no clock: `now` is passed in.
//!
//! Definitions (also what the API documents):
//! - **Today** starts at local midnight in Asia/Shanghai (UTC+8, no daylight
//!   saving), see `yixin_domain::OrgTimeZone`; today's orders are those created since.
//! - **Reached within 30 minutes** (the promise): of today's orders that are
//!   not cancelled and are either reached (an `arrived` in their timeline)
//!   or past their `promised_by` ("due"), the share whose `arrived` is at or
//!   before `promised_by`. `None` while nothing is due. Booked visits count
//!   against their booked time (their `promised_by`).
//! - **Minutes to accept**: created → first `assigned`, over today's orders
//!   that were assigned (cancelled ones included). **Minutes to arrive**:
//!   created → `arrived`, over today's orders that were reached. Medians;
//!   with an even count, the mean of the two middle values.
//! - **At risk** ([`is_at_risk`]): not yet reached (`pending`, `offered`,
//!   `escalated`, `assigned`, `en_route`) and any of: escalated; already
//!   past `promised_by`; a predicted arrival after `promised_by`; no nurse
//!   yet and less than [`AT_RISK_MINUTES`] left.
//! - **Stale** ([`is_stale`]): a nurse with no fix, or whose latest fix is
//!   older than `tracking.stale_after_secs`. A stale nurse is not free: the
//!   roster shows her as stale and the free count leaves her out.
//! - **Rating today**: the mean stars of the ratings recorded since local
//!   midnight (one decimal), `None` while there is none.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use yixin_domain::{GeoPoint, OrderStatus};
use yixin_store::DayOrder;

/// An order with no nurse yet and fewer minutes than this before its
/// promise is at risk.
pub const AT_RISK_MINUTES: i64 = 10;

/// The H3 resolution of the supply/demand cells (about 5 km² each).
pub const CELL_RESOLUTION: h3o::Resolution = h3o::Resolution::Seven;

/// Whole minutes from `now` to `promised_by`, rounded down (negative once late).
pub fn minutes_left(promised_by: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (promised_by - now).num_seconds().div_euclid(60)
}

/// The one staleness rule (the dispatch core's): the roster, the free
/// count, the candidate list and the candidate index all ask it.
pub use yixin_dispatch_core::is_stale;

/// The at-risk rule (see the module documentation).
pub fn is_at_risk(
    status: OrderStatus,
    promised_by: DateTime<Utc>,
    eta: Option<DateTime<Utc>>,
    has_nurse: bool,
    now: DateTime<Utc>,
) -> bool {
    if !status.awaits_arrival() {
        return false;
    }
    status == OrderStatus::Escalated
        || now > promised_by
        || eta.is_some_and(|eta| eta > promised_by)
        || (!has_nurse && promised_by - now < TimeDelta::minutes(AT_RISK_MINUTES))
}

/// The median, `None` for no values; NaNs are ignored.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

fn minutes_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 60_000.0
}

/// To one decimal, for display.
fn tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The day's KPIs (see the module documentation for the definitions).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DayKpis {
    /// Local midnight (Asia/Shanghai) the day starts at, in UTC.
    pub since: DateTime<Utc>,
    /// Orders created today.
    pub orders: u32,
    /// Of them, cancelled.
    pub cancelled: u32,
    /// Not cancelled, and reached or past their promise: the denominator.
    pub due: u32,
    /// Of `due`, reached at or before `promised_by`.
    pub reached_in_time: u32,
    /// `reached_in_time / due`, between 0 and 1; `null` while nothing is due.
    pub reached_in_time_share: Option<f64>,
    /// Median minutes from creation to the first assignment (one decimal).
    pub median_minutes_to_accept: Option<f64>,
    /// Median minutes from creation to the nurse's arrival (one decimal).
    pub median_minutes_to_arrive: Option<f64>,
    /// Ratings recorded today.
    pub ratings: u32,
    /// Their mean stars, 1 to 5 (one decimal); `null` while there is none.
    pub average_rating: Option<f64>,
}

/// The KPIs of `orders` (today's, from the local midnight) and of the
/// `ratings` (stars) recorded since then, at `now`.
pub fn day_kpis(
    orders: &[DayOrder],
    ratings: &[u8],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DayKpis {
    let mut k = DayKpis {
        since,
        orders: 0,
        cancelled: 0,
        due: 0,
        reached_in_time: 0,
        reached_in_time_share: None,
        median_minutes_to_accept: None,
        median_minutes_to_arrive: None,
        ratings: u32::try_from(ratings.len()).unwrap_or(u32::MAX),
        average_rating: None,
    };
    if !ratings.is_empty() {
        let sum: f64 = ratings.iter().map(|s| f64::from(*s)).sum();
        k.average_rating = Some(tenth(sum / ratings.len() as f64));
    }
    let mut to_accept = Vec::new();
    let mut to_arrive = Vec::new();
    for o in orders.iter().filter(|o| o.created_at >= since) {
        k.orders += 1;
        if let Some(at) = o.first_assigned_at {
            to_accept.push(minutes_between(o.created_at, at));
        }
        if let Some(at) = o.arrived_at {
            to_arrive.push(minutes_between(o.created_at, at));
        }
        if o.status == OrderStatus::Cancelled {
            k.cancelled += 1;
            continue;
        }
        if o.arrived_at.is_some() || o.promised_by <= now {
            k.due += 1;
            if o.arrived_at.is_some_and(|at| at <= o.promised_by) {
                k.reached_in_time += 1;
            }
        }
    }
    if k.due > 0 {
        k.reached_in_time_share = Some(f64::from(k.reached_in_time) / f64::from(k.due));
    }
    k.median_minutes_to_accept = median(&to_accept).map(tenth);
    k.median_minutes_to_arrive = median(&to_arrive).map(tenth);
    k
}

/// The resolution-7 H3 cell of a point.
pub fn cell_of(p: GeoPoint) -> Option<h3o::CellIndex> {
    h3o::LatLng::new(p.lat(), p.lng())
        .ok()
        .map(|ll| ll.to_cell(CELL_RESOLUTION))
}

/// Supply against demand in one H3 cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CellBalance {
    /// The resolution-7 H3 cell, as its hex string.
    #[schema(example = "8740a6e4cffffff")]
    pub cell: String,
    /// Free nurses (on shift, active, no job, no open offer) whose latest fix is here.
    pub free_nurses: u32,
    /// Open orders here (any status but completed and cancelled).
    pub open_orders: u32,
    /// Of them, still waiting for a nurse (`pending`, `offered`, `escalated`).
    pub waiting_orders: u32,
}

/// Buckets free nurses' positions and open orders by H3 cell; cells with
/// neither are left out; sorted by cell.
pub fn supply_and_demand(
    free_nurses: &[GeoPoint],
    open_orders: &[(GeoPoint, OrderStatus)],
) -> Vec<CellBalance> {
    let mut cells: BTreeMap<String, CellBalance> = BTreeMap::new();
    for p in free_nurses {
        if let Some(c) = cell_of(*p) {
            entry(&mut cells, c).free_nurses += 1;
        }
    }
    for (p, status) in open_orders {
        if status.is_terminal() {
            continue;
        }
        if let Some(c) = cell_of(*p) {
            let e = entry(&mut cells, c);
            e.open_orders += 1;
            if matches!(
                status,
                OrderStatus::Pending | OrderStatus::Offered | OrderStatus::Escalated
            ) {
                e.waiting_orders += 1;
            }
        }
    }
    cells.into_values().collect()
}

fn entry(cells: &mut BTreeMap<String, CellBalance>, c: h3o::CellIndex) -> &mut CellBalance {
    let key = c.to_string();
    cells.entry(key.clone()).or_insert_with(|| CellBalance {
        cell: key,
        free_nurses: 0,
        open_orders: 0,
        waiting_orders: 0,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use yixin_domain::OrderId;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn p(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::new(lat, lng).unwrap()
    }

    #[test]
    fn minutes_left_round_down() {
        let now = t("2026-03-10T08:00:00Z");
        assert_eq!(minutes_left(t("2026-03-10T08:30:00Z"), now), 30);
        assert_eq!(minutes_left(t("2026-03-10T08:09:59Z"), now), 9);
        assert_eq!(minutes_left(now, now), 0);
        assert_eq!(minutes_left(t("2026-03-10T07:59:30Z"), now), -1);
        assert_eq!(minutes_left(t("2026-03-10T07:55:00Z"), now), -5);
    }

    #[test]
    fn the_at_risk_rule() {
        use OrderStatus::*;
        let now = t("2026-03-10T08:00:00Z");
        let promised = |m: i64| now + TimeDelta::minutes(m);
        // No nurse: at risk under ten minutes left, not before.
        assert!(!is_at_risk(Pending, promised(25), None, false, now));
        assert!(!is_at_risk(Offered, promised(10), None, false, now));
        assert!(is_at_risk(Offered, promised(9), None, false, now));
        assert!(is_at_risk(Pending, promised(-3), None, false, now));
        // A nurse whose predicted arrival misses the promise.
        assert!(is_at_risk(
            Assigned,
            promised(5),
            Some(promised(6)),
            true,
            now
        ));
        assert!(!is_at_risk(
            EnRoute,
            promised(5),
            Some(promised(4)),
            true,
            now
        ));
        // An offer whose ETA is too late already.
        assert!(is_at_risk(
            Offered,
            promised(25),
            Some(promised(27)),
            false,
            now
        ));
        // Late with a nurse still on the way.
        assert!(is_at_risk(EnRoute, promised(-1), Some(now), true, now));
        // Escalated is at risk by definition.
        assert!(is_at_risk(Escalated, promised(29), None, false, now));
        // Reached, finished or cancelled never is.
        for s in [Arrived, InService, Completed, Cancelled] {
            assert!(
                !is_at_risk(s, promised(-20), Some(promised(5)), false, now),
                "{s}"
            );
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[4.0]), Some(4.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 10.0]), Some(3.5));
        assert_eq!(median(&[f64::NAN, 2.0]), Some(2.0));
    }

    fn day_order(
        created: &str,
        status: OrderStatus,
        assigned_after_min: Option<i64>,
        arrived_after_min: Option<i64>,
    ) -> DayOrder {
        let created_at = t(created);
        DayOrder {
            id: OrderId::new(),
            status,
            created_at,
            promised_by: created_at + TimeDelta::minutes(30),
            first_assigned_at: assigned_after_min.map(|m| created_at + TimeDelta::minutes(m)),
            arrived_at: arrived_after_min.map(|m| created_at + TimeDelta::minutes(m)),
        }
    }

    #[test]
    fn a_scripted_day() {
        use OrderStatus::*;
        let now = t("2026-03-10T04:00:00Z"); // 12:00 in Shanghai
        let since = yixin_domain::OrgTimeZone::default().start_of_day(now);
        let orders = [
            // Reached in 20 minutes: in time.
            day_order("2026-03-10T01:00:00Z", Completed, Some(2), Some(20)),
            // Reached in 35 minutes: late.
            day_order("2026-03-10T02:00:00Z", InService, Some(4), Some(35)),
            // Reached at exactly 30 minutes: in time.
            day_order("2026-03-10T02:30:00Z", Arrived, Some(3), Some(30)),
            // Never reached, past its promise: due, missed.
            day_order("2026-03-10T03:00:00Z", Escalated, None, None),
            // Not due yet: neither counted as due nor missed.
            day_order("2026-03-10T03:50:00Z", Assigned, Some(6), None),
            // Cancelled after an assignment: not due, but its assignment counts.
            day_order("2026-03-10T01:30:00Z", Cancelled, Some(5), None),
            // Yesterday (23:00 in Shanghai): not today's.
            day_order("2026-03-09T15:00:00Z", Completed, Some(1), Some(10)),
        ];
        let k = day_kpis(&orders, &[], since, now);
        assert_eq!(k.since, t("2026-03-09T16:00:00Z"));
        assert_eq!(k.orders, 6);
        assert_eq!(k.cancelled, 1);
        assert_eq!(k.due, 4);
        assert_eq!(k.reached_in_time, 2);
        assert_eq!(k.reached_in_time_share, Some(0.5));
        // Accept: 2, 4, 3, 6, 5 → 4.
        assert_eq!(k.median_minutes_to_accept, Some(4.0));
        // Arrive: 20, 35, 30 → 30.
        assert_eq!(k.median_minutes_to_arrive, Some(30.0));
    }

    #[test]
    fn an_empty_day_has_no_share_and_no_medians() {
        let now = t("2026-03-10T04:00:00Z");
        let k = day_kpis(
            &[],
            &[],
            yixin_domain::OrgTimeZone::default().start_of_day(now),
            now,
        );
        assert_eq!((k.orders, k.due), (0, 0));
        assert_eq!(k.reached_in_time_share, None);
        assert_eq!(k.median_minutes_to_accept, None);
        assert_eq!(k.median_minutes_to_arrive, None);
        assert_eq!((k.ratings, k.average_rating), (0, None));
        // Orders not yet due leave the share undefined, not zero.
        let fresh = [day_order(
            "2026-03-10T03:55:00Z",
            OrderStatus::Pending,
            None,
            None,
        )];
        assert_eq!(
            day_kpis(
                &fresh,
                &[],
                yixin_domain::OrgTimeZone::default().start_of_day(now),
                now
            )
            .reached_in_time_share,
            None
        );
    }

    #[test]
    fn the_day_s_rating_is_the_mean_of_its_stars() {
        let now = t("2026-03-10T04:00:00Z");
        let since = yixin_domain::OrgTimeZone::default().start_of_day(now);
        let k = day_kpis(&[], &[5, 4, 4], since, now);
        assert_eq!(k.ratings, 3);
        // 13 / 3 = 4.333…, shown to a tenth.
        assert_eq!(k.average_rating, Some(4.3));
        assert_eq!(day_kpis(&[], &[1], since, now).average_rating, Some(1.0));
    }

    #[test]
    fn staleness() {
        let now = t("2026-03-10T08:00:00Z");
        let limit = TimeDelta::seconds(60);
        assert!(is_stale(None, limit, now), "never sent a fix");
        assert!(!is_stale(Some(now), limit, now));
        assert!(
            !is_stale(Some(now - TimeDelta::seconds(60)), limit, now),
            "exactly at the limit: still fresh"
        );
        assert!(is_stale(
            Some(now - TimeDelta::milliseconds(60_001)),
            limit,
            now
        ));
    }

    #[test]
    fn medians_are_shown_to_a_tenth() {
        let now = t("2026-03-10T04:00:00Z");
        let mut o = day_order("2026-03-10T01:00:00Z", OrderStatus::Completed, None, None);
        o.first_assigned_at = Some(o.created_at + TimeDelta::seconds(100)); // 1.666… min
        let k = day_kpis(
            &[o],
            &[],
            yixin_domain::OrgTimeZone::default().start_of_day(now),
            now,
        );
        assert_eq!(k.median_minutes_to_accept, Some(1.7));
    }

    #[test]
    fn supply_and_demand_by_cell() {
        use OrderStatus::*;
        let home = p(29.39, 106.32);
        let near = p(29.3901, 106.3201); // same resolution-7 cell
        let far = p(29.60, 106.55);
        assert_eq!(cell_of(home), cell_of(near));
        assert_ne!(cell_of(home), cell_of(far));
        let cells = supply_and_demand(
            &[near, far, far],
            &[
                (home, Pending),
                (home, Offered),
                (near, EnRoute),
                (home, Completed),
                (home, Cancelled),
            ],
        );
        assert_eq!(cells.len(), 2);
        let at_home = cells
            .iter()
            .find(|c| Some(c.cell.clone()) == cell_of(home).map(|c| c.to_string()))
            .unwrap();
        assert_eq!(
            (
                at_home.free_nurses,
                at_home.open_orders,
                at_home.waiting_orders
            ),
            (1, 3, 2)
        );
        let away = cells.iter().find(|c| c.cell != at_home.cell).unwrap();
        assert_eq!(
            (away.free_nurses, away.open_orders, away.waiting_orders),
            (2, 0, 0)
        );
        let cell: h3o::CellIndex = away.cell.parse().unwrap();
        assert_eq!(cell.resolution(), CELL_RESOLUTION);
        assert!(cells.windows(2).all(|w| w[0].cell < w[1].cell), "sorted");
        assert!(supply_and_demand(&[], &[]).is_empty());
    }
}
