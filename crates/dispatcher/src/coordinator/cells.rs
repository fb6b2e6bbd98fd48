//! `GET /v1/dispatch/cells`: the H3 cells the dashboard's map draws, each
//! with its outline, and supply against demand in it. The page draws the
//! map itself (it must work offline), so the cell geometry comes from here,
//! computed with h3o at the resolution of the overview's supply/demand
//! cells ([`kpi::CELL_RESOLUTION`]).
//!
//! The cells are those touching one of the organisation's service areas,
//! plus any cell outside them that holds a free nurse or an open order.

use std::collections::{BTreeMap, HashSet, VecDeque};

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use geo::{Coord, Intersects, LineString, Polygon};
use h3o::{CellIndex, LatLng};
use serde::Serialize;
use utoipa::ToSchema;
use yixin_auth::CoordinatorCaller;
use yixin_domain::{GeoPoint, OrderStatus, ServiceArea};
use yixin_platform::{ApiError, ErrorBody};

use super::kpi::{self, CellBalance};
use super::orders::Location;
use super::overview::{OPEN, free_nurses};
use super::{org_of, store_error};
use crate::Dispatcher;

/// Most cells one answer covers the service areas with (at resolution 7,
/// about 10,000 km²: a whole city). Past it the answer says `truncated`.
pub const MAX_AREA_CELLS: usize = 2_000;

/// Most open orders read for the demand side.
const MAX_OPEN: u64 = 10_000;

/// One H3 cell: where it is, and free nurses against open orders in it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CellView {
    /// The H3 cell, as its hex string.
    #[schema(example = "8740a6e4cffffff")]
    pub cell: String,
    pub center: Location,
    /// The outline, in order, not closed (the last vertex is not repeated).
    pub boundary: Vec<Location>,
    /// Whether the cell touches one of the organisation's service areas.
    pub in_area: bool,
    /// Free nurses (on shift, active, no job, no open offer) whose latest fix is here.
    pub free_nurses: u32,
    /// Open orders here (any status but completed and cancelled).
    pub open_orders: u32,
    /// Of them, still waiting for a nurse (`pending`, `offered`, `escalated`).
    pub waiting_orders: u32,
}

/// The cells of the organisation's map.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Cells {
    /// When the counts were taken.
    pub at: DateTime<Utc>,
    /// The H3 resolution of every cell (7, about 5 km² each).
    pub resolution: u8,
    /// Sorted by cell.
    pub cells: Vec<CellView>,
    /// True when the service areas need more than 2,000 cells: only that
    /// many of them are listed.
    pub truncated: bool,
}

fn location(ll: LatLng) -> Location {
    Location {
        lat: ll.lat(),
        lng: ll.lng(),
    }
}

/// The cell's outline as a polygon in `[lng, lat]` (x, y), as the areas are.
fn cell_polygon(cell: CellIndex) -> Polygon<f64> {
    let ring: Vec<Coord<f64>> = cell
        .boundary()
        .iter()
        .map(|ll| Coord {
            x: ll.lng(),
            y: ll.lat(),
        })
        .collect();
    Polygon::new(LineString::new(ring), vec![])
}

/// The cells at `resolution` that touch the area (share at least a point
/// with it), at most `limit` of them; `true` with them when there were more.
///
/// A breadth-first walk from the cell of a point of the outer ring,
/// expanding only through touching cells: the cells touching a connected
/// polygon are edge-connected, so none is missed.
pub fn area_cells(
    area: &ServiceArea,
    resolution: h3o::Resolution,
    limit: usize,
) -> (Vec<CellIndex>, bool) {
    let polygon = area.polygon();
    let Some(start) = polygon
        .exterior()
        .coords()
        .next()
        .and_then(|c| LatLng::new(c.y, c.x).ok())
        .map(|ll| ll.to_cell(resolution))
    else {
        return (Vec::new(), false);
    };
    let mut seen: HashSet<CellIndex> = HashSet::from([start]);
    let mut queue = VecDeque::from([start]);
    let mut found = Vec::new();
    while let Some(cell) = queue.pop_front() {
        if !cell_polygon(cell).intersects(polygon) {
            continue;
        }
        if found.len() == limit {
            found.sort();
            return (found, true);
        }
        found.push(cell);
        for next in cell.grid_disk::<Vec<_>>(1) {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    found.sort();
    (found, false)
}

/// The map's cells: those covering the areas (`in_area`), joined with the
/// supply/demand `balances` (cells outside the areas included).
pub fn map_cells(area_cells: &[CellIndex], balances: &[CellBalance]) -> Vec<CellView> {
    let view = |cell: CellIndex, in_area: bool| CellView {
        cell: cell.to_string(),
        center: location(LatLng::from(cell)),
        boundary: cell.boundary().iter().map(|ll| location(*ll)).collect(),
        in_area,
        free_nurses: 0,
        open_orders: 0,
        waiting_orders: 0,
    };
    let mut cells: BTreeMap<CellIndex, CellView> =
        area_cells.iter().map(|c| (*c, view(*c, true))).collect();
    for b in balances {
        let Ok(cell) = b.cell.parse::<CellIndex>() else {
            continue;
        };
        let entry = cells.entry(cell).or_insert_with(|| view(cell, false));
        entry.free_nurses = b.free_nurses;
        entry.open_orders = b.open_orders;
        entry.waiting_orders = b.waiting_orders;
    }
    cells.into_values().collect()
}

/// The H3 cells of the caller's organisation's map: every resolution-7
/// cell touching one of its service areas, and any other cell holding a
/// free nurse or an open order; each with its centre, outline, and free
/// nurses against open and waiting orders (as the overview's `cells`).
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    responses((status = 200, body = Cells), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/v1/dispatch/cells")]
pub async fn list_cells(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
) -> Result<web::Json<Cells>, ApiError> {
    let org = org_of(&caller);
    let now = Utc::now();
    let areas = svc
        .store
        .service_areas(&org)
        .await
        .map_err(|e| store_error(e, "service area"))?;
    let mut covering = Vec::new();
    let mut truncated = false;
    for area in &areas {
        let left = MAX_AREA_CELLS.saturating_sub(covering.len());
        let (cells, more) = area_cells(area, kpi::CELL_RESOLUTION, left);
        covering.extend(cells);
        truncated |= more;
    }
    let open = svc
        .store
        .org_orders(&org, &OPEN, MAX_OPEN)
        .await
        .map_err(|e| store_error(e, "order"))?;
    let demand: Vec<(GeoPoint, OrderStatus)> =
        open.iter().map(|o| (o.location, o.status)).collect();
    let fleet = free_nurses(&svc, &org).await?;
    let balances = kpi::supply_and_demand(&fleet.positions, &demand);
    Ok(web::Json(Cells {
        at: now,
        resolution: u8::from(kpi::CELL_RESOLUTION),
        cells: map_cells(&covering, &balances),
        truncated,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use yixin_domain::{AreaId, GeoJsonPolygon, OrgId};

    fn square(lng0: f64, lat0: f64, size: f64) -> ServiceArea {
        ServiceArea::new(
            AreaId::new(),
            OrgId::from("demo"),
            "square".to_owned(),
            GeoJsonPolygon::new(vec![
                [lng0, lat0],
                [lng0 + size, lat0],
                [lng0 + size, lat0 + size],
                [lng0, lat0 + size],
                [lng0, lat0],
            ]),
        )
        .unwrap()
    }

    /// Brute force: every cell of a generous disk around the area that
    /// intersects it.
    fn brute_force(area: &ServiceArea) -> Vec<CellIndex> {
        let c = area.polygon().exterior().coords().next().unwrap();
        let start = LatLng::new(c.y, c.x).unwrap().to_cell(kpi::CELL_RESOLUTION);
        let mut cells: Vec<CellIndex> = start
            .grid_disk::<Vec<_>>(15)
            .into_iter()
            .filter(|cell| cell_polygon(*cell).intersects(area.polygon()))
            .collect();
        cells.sort();
        cells
    }

    #[test]
    fn the_walk_finds_every_cell_touching_the_area() {
        let demo = ServiceArea::shuangfu_demo(OrgId::from("demo"));
        let (cells, truncated) = area_cells(&demo, kpi::CELL_RESOLUTION, MAX_AREA_CELLS);
        assert!(!truncated);
        assert_eq!(cells, brute_force(&demo));
        // Shuangfu is about 9 km × 7.8 km: a dozen or more 5 km² cells.
        assert!(cells.len() >= 12 && cells.len() <= 40, "{}", cells.len());
        // A point well inside is in one of them.
        let inside = LatLng::new(29.395, 106.315)
            .unwrap()
            .to_cell(kpi::CELL_RESOLUTION);
        assert!(cells.contains(&inside));

        let thin = square(106.3, 29.4, 0.001);
        let (cells, _) = area_cells(&thin, kpi::CELL_RESOLUTION, MAX_AREA_CELLS);
        assert_eq!(cells, brute_force(&thin));
        assert!(!cells.is_empty());
    }

    #[test]
    fn the_walk_stops_at_the_limit() {
        let demo = ServiceArea::shuangfu_demo(OrgId::from("demo"));
        let (cells, truncated) = area_cells(&demo, kpi::CELL_RESOLUTION, 3);
        assert!(truncated);
        assert_eq!(cells.len(), 3);
    }

    #[test]
    fn balances_join_the_area_cells_and_add_cells_outside() {
        let demo = ServiceArea::shuangfu_demo(OrgId::from("demo"));
        let (covering, _) = area_cells(&demo, kpi::CELL_RESOLUTION, MAX_AREA_CELLS);
        let inside = GeoPoint::new(29.395, 106.315).unwrap();
        let far = GeoPoint::new(29.6, 106.6).unwrap();
        let balances = kpi::supply_and_demand(
            &[inside, inside],
            &[(inside, OrderStatus::Pending), (far, OrderStatus::EnRoute)],
        );
        let cells = map_cells(&covering, &balances);
        assert_eq!(cells.len(), covering.len() + 1);
        let here = kpi::cell_of(inside).unwrap().to_string();
        let there = kpi::cell_of(far).unwrap().to_string();
        let at = |id: &str| cells.iter().find(|c| c.cell == id).unwrap();
        assert_eq!(
            (
                at(&here).in_area,
                at(&here).free_nurses,
                at(&here).open_orders,
                at(&here).waiting_orders
            ),
            (true, 2, 1, 1)
        );
        assert_eq!(
            (
                at(&there).in_area,
                at(&there).free_nurses,
                at(&there).open_orders,
                at(&there).waiting_orders
            ),
            (false, 0, 1, 0)
        );
        let hex = at(&here);
        assert_eq!(hex.boundary.len(), 6);
        assert!((hex.center.lat - 29.395).abs() < 0.03 && (hex.center.lng - 106.315).abs() < 0.03);
        let sorted: Vec<_> = cells
            .iter()
            .map(|c| c.cell.parse::<CellIndex>().unwrap())
            .collect();
        assert!(sorted.windows(2).all(|w| w[0] < w[1]));
    }
}
