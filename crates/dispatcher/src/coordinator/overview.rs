//! `GET /v1/dispatch/overview`: the organisation's live KPIs. The numbers
//! come from the database (orders, timelines, offers, shifts) and, for
//! where free nurses are, the shared positions board; the arithmetic is
//! [`super::kpi`].

use actix_web::{get, web};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use yixin_auth::CoordinatorCaller;
use yixin_domain::{GeoPoint, NurseId, OrderStatus, OrgId, ShiftState};
use yixin_platform::{ApiError, ErrorBody};

use super::kpi::{self, CellBalance, DayKpis};
use super::{org_of, store_error};
use crate::Dispatcher;

/// Statuses of orders that are neither completed nor cancelled (domain's).
pub const OPEN: [OrderStatus; 9] = OrderStatus::OPEN;

/// Most open orders the overview looks at for risk and cells.
const MAX_OPEN: u64 = 10_000;

/// Open orders by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct OpenOrders {
    pub pending: u64,
    pub offered: u64,
    pub assigned: u64,
    pub en_route: u64,
    pub arrived: u64,
    pub in_service: u64,
    pub escalated: u64,
    /// Waiting for a coordinator's screening.
    pub awaiting_review: u64,
    /// Booked visits not yet due.
    pub scheduled: u64,
    pub total: u64,
}

/// The organisation's nurses at work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct NurseCounts {
    /// Active and on shift.
    pub on_shift: u32,
    /// On shift with no active job and no open offer, and a fix within
    /// `tracking.stale_after_secs` (what the roster calls free).
    pub free: u32,
    /// Of the free ones, those whose latest position is known (all of
    /// them: a free nurse has a fresh fix).
    pub free_with_position: u32,
    /// On shift with no job and no open offer, but no fix or only one
    /// older than `tracking.stale_after_secs` (the roster's stale): not
    /// counted as free.
    pub stale: u32,
}

/// Orders at risk of missing the promise (see `DispatchOrder.at_risk`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct AtRisk {
    pub count: u32,
    /// Most urgent first (earliest `promised_by`).
    pub order_ids: Vec<String>,
}

/// The organisation's live KPIs.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Overview {
    pub org: String,
    /// When these numbers were taken.
    pub at: DateTime<Utc>,
    pub open_orders: OpenOrders,
    pub nurses: NurseCounts,
    /// Today's orders (since local midnight, Asia/Shanghai): see the fields.
    pub today: DayKpis,
    pub at_risk: AtRisk,
    /// Free nurses with a position against open orders, per resolution-7
    /// H3 cell (cells with neither are left out).
    pub cells: Vec<CellBalance>,
}

fn open_orders(counts: &std::collections::HashMap<OrderStatus, u64>) -> OpenOrders {
    let n = |s: OrderStatus| counts.get(&s).copied().unwrap_or(0);
    OpenOrders {
        pending: n(OrderStatus::Pending),
        offered: n(OrderStatus::Offered),
        assigned: n(OrderStatus::Assigned),
        en_route: n(OrderStatus::EnRoute),
        arrived: n(OrderStatus::Arrived),
        in_service: n(OrderStatus::InService),
        escalated: n(OrderStatus::Escalated),
        awaiting_review: n(OrderStatus::AwaitingReview),
        scheduled: n(OrderStatus::Scheduled),
        total: OPEN.iter().map(|s| n(*s)).sum(),
    }
}

/// The organisation's nurses at work, for the supply side of the KPIs.
pub struct FreeNurses {
    /// Active and on shift.
    pub on_shift: usize,
    /// Of them, with no active job, no open offer and a fresh fix
    /// ([`kpi::is_stale`]).
    pub free: usize,
    /// With no job and no offer, but stale.
    pub stale: usize,
    /// The latest positions of the free nurses.
    pub positions: Vec<GeoPoint>,
}

/// Who of the organisation is on shift and free, and where the free ones
/// are. A nurse without a fresh fix is not free (the roster's rule); with
/// the positions unavailable (logged), nobody is.
pub async fn free_nurses(svc: &Dispatcher, org: &OrgId) -> Result<FreeNurses, ApiError> {
    let err = |e| store_error(e, "nurse");
    let nurses = svc.store.nurses(org).await.map_err(err)?;
    let working: Vec<NurseId> = nurses
        .iter()
        .filter(|n| n.active && n.shift == ShiftState::On)
        .map(|n| n.id)
        .collect();
    let engaged = svc.store.engaged_nurses(&working).await.map_err(err)?;
    let idle: Vec<NurseId> = working
        .iter()
        .filter(|n| !engaged.contains(n))
        .copied()
        .collect();
    let ids: Vec<String> = idle.iter().map(|n| n.to_string()).collect();
    let found = match svc.positions.latest(&ids).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "positions unavailable for the overview");
            vec![None; ids.len()]
        }
    };
    let now = Utc::now();
    let stale_after = TimeDelta::from_std(svc.stale_after).unwrap_or(TimeDelta::MAX);
    let positions: Vec<GeoPoint> = found
        .into_iter()
        .flatten()
        .filter(|p| p.org_id == org.as_str())
        .filter(|p| {
            let at = DateTime::from_timestamp_millis(p.recorded_at_unix_ms);
            !kpi::is_stale(at, stale_after, now)
        })
        .filter_map(|p| GeoPoint::new(p.lat, p.lng).ok())
        .collect();
    Ok(FreeNurses {
        on_shift: working.len(),
        free: positions.len(),
        stale: idle.len().saturating_sub(positions.len()),
        positions,
    })
}

/// Reads and computes the organisation's overview at this moment.
pub async fn overview(svc: &Dispatcher, org: &OrgId) -> Result<Overview, ApiError> {
    let now = Utc::now();
    let err = |e| store_error(e, "order");
    let counts = svc.store.org_order_counts(org, &OPEN).await.map_err(err)?;
    let open = svc
        .store
        .org_orders(org, &OPEN, MAX_OPEN)
        .await
        .map_err(err)?;
    let since = yixin_domain::OrgTimeZone::default().start_of_day(now);
    let today = svc.store.day_orders(org, since).await.map_err(err)?;
    let ratings = svc.store.ratings_since(org, since).await.map_err(err)?;

    let mut risky: Vec<_> = open
        .iter()
        .filter(|o| kpi::is_at_risk(o.status, o.promised_by, o.eta, o.nurse_id.is_some(), now))
        .collect();
    risky.sort_by_key(|o| (o.promised_by, o.id.0));

    let fleet = free_nurses(svc, org).await?;
    let demand: Vec<(GeoPoint, OrderStatus)> =
        open.iter().map(|o| (o.location, o.status)).collect();

    Ok(Overview {
        org: org.as_str().to_owned(),
        at: now,
        open_orders: open_orders(&counts),
        nurses: NurseCounts {
            on_shift: u32::try_from(fleet.on_shift).unwrap_or(u32::MAX),
            free: u32::try_from(fleet.free).unwrap_or(u32::MAX),
            free_with_position: u32::try_from(fleet.positions.len()).unwrap_or(u32::MAX),
            stale: u32::try_from(fleet.stale).unwrap_or(u32::MAX),
        },
        today: kpi::day_kpis(&today, &ratings, since, now),
        at_risk: AtRisk {
            count: u32::try_from(risky.len()).unwrap_or(u32::MAX),
            order_ids: risky.iter().map(|o| o.id.to_string()).collect(),
        },
        cells: kpi::supply_and_demand(&fleet.positions, &demand),
    })
}

/// Live KPIs of the caller's organisation: open orders by status, nurses on
/// shift and free (a nurse without a fix in `tracking.stale_after_secs` is
/// stale, not free), today's share reached within 30 minutes, median minutes
/// to accept and to arrive, orders at risk, supply against demand per H3
/// cell.
///
/// Definitions: *today* starts at local midnight, Asia/Shanghai (UTC+8).
/// `reached_in_time_share` = today's orders reached (an `arrived` step) at
/// or before `promised_by`, over today's orders that are not cancelled and
/// are reached or past `promised_by`. Medians: created → first `assigned`,
/// created → `arrived`, over today's orders that got there. At risk: not
/// reached yet and escalated, late, predicted late, or without a nurse with
/// under 10 minutes left. Rating: the mean stars of today's ratings.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    responses((status = 200, body = Overview), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/v1/dispatch/overview")]
pub async fn get_overview(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
) -> Result<web::Json<Overview>, ApiError> {
    Ok(web::Json(overview(&svc, &org_of(&caller)).await?))
}
