//! The organisation's service areas: GeoJSON polygons orders must fall in.
//! Order-intake caches an organisation's areas for a few seconds, so a new
//! or changed area takes effect for new orders within that time.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yixin_auth::CoordinatorCaller;
use yixin_domain::{AreaId, GeoJsonPolygon, ServiceArea};
use yixin_platform::{ApiError, ErrorBody, JsonBody};

use super::{invalid, org_of, store_error};
use crate::Dispatcher;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AreaView {
    pub id: String,
    pub name: String,
    /// GeoJSON Polygon: `{"type":"Polygon","coordinates":[[[lng,lat],…]]}`.
    #[schema(value_type = Object)]
    pub polygon: GeoJsonPolygon,
}

fn view(a: &ServiceArea) -> AreaView {
    AreaView {
        id: a.id.to_string(),
        name: a.name.clone(),
        polygon: a.to_geojson(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaRequest {
    /// To replace one of the organisation's areas; a new area when absent.
    pub id: Option<String>,
    /// At most 100 characters once trimmed.
    #[schema(min_length = 1, max_length = 100, example = "双福街道 Shuangfu")]
    pub name: String,
    /// GeoJSON Polygon: one closed outer ring of at least 4 `[lng, lat]`
    /// positions, optional holes, no self-intersection.
    #[schema(value_type = Object, example = json!({"type": "Polygon", "coordinates": [[[106.27, 29.36], [106.36, 29.36], [106.36, 29.43], [106.27, 29.43], [106.27, 29.36]]]}))]
    pub polygon: serde_json::Value,
}

/// Reads the polygon's GeoJSON shape; any mistake is a 422 on `polygon`.
fn polygon(value: serde_json::Value) -> Result<GeoJsonPolygon, ApiError> {
    serde_json::from_value(value).map_err(|e| {
        ApiError::invalid_field(
            "polygon",
            "invalid_polygon",
            format!("invalid polygon: not a GeoJSON Polygon: {e}"),
        )
    })
}

/// The organisation's service areas, oldest first.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    responses((status = 200, body = [AreaView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/v1/dispatch/areas")]
pub async fn list_areas(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
) -> Result<web::Json<Vec<AreaView>>, ApiError> {
    let areas = svc
        .store
        .service_areas(&org_of(&caller))
        .await
        .map_err(|e| store_error(e, "service area"))?;
    Ok(web::Json(areas.iter().map(view).collect()))
}

/// Adds a service area (201), or replaces the name and polygon of one of
/// the organisation's areas given its `id` (200).
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    request_body = AreaRequest,
    responses(
        (status = 201, description = "Added", body = AreaView),
        (status = 200, description = "Replaced", body = AreaView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`id` names no area of the organisation", body = ErrorBody),
        (status = 422, description = "`invalid_polygon` (field `polygon`: not a Polygon, unclosed or short ring, bad coordinates, self-intersecting…) or a bad `name`", body = ErrorBody),
    )
)]
#[post("/v1/dispatch/areas")]
pub async fn save_area(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    body: JsonBody<AreaRequest>,
) -> Result<HttpResponse, ApiError> {
    let org = org_of(&caller);
    let body = body.into_inner();
    let replacing = match &body.id {
        None => None,
        Some(raw) => {
            let id = raw.parse().map(AreaId).map_err(|_| {
                ApiError::invalid_field("id", "invalid_id", "id is not a valid identifier")
            })?;
            let ours = svc
                .store
                .service_areas(&org)
                .await
                .map_err(|e| store_error(e, "service area"))?;
            if !ours.iter().any(|a| a.id == id) {
                return Err(ApiError::not_found("no such service area"));
            }
            Some(id)
        }
    };
    let polygon = polygon(body.polygon)?;
    let area = ServiceArea::new(
        replacing.unwrap_or_else(AreaId::new),
        org.clone(),
        body.name,
        polygon,
    )
    .map_err(|e| {
        let field = e.field().unwrap_or("polygon").to_owned();
        invalid(e, &field)
    })?;
    // A coordinator's token names the organisation: make sure it is on
    // record before its first area refers to it.
    svc.store
        .ensure_organization(&org, org.as_str())
        .await
        .map_err(|e| store_error(e, "organisation"))?;
    svc.store
        .upsert_service_area(&area)
        .await
        .map_err(|e| store_error(e, "service area"))?;
    tracing::info!(area_id = %area.id, %org, replaced = replacing.is_some(), "service area saved");
    Ok(if replacing.is_some() {
        HttpResponse::Ok().json(view(&area))
    } else {
        HttpResponse::Created().json(view(&area))
    })
}
