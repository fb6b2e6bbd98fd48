//! `GET /v1/dispatch/regions`: sharded dispatch as the lease table has it —
//! each known region, its holder and when its lease runs out — plus what
//! the answering instance serves and has offered in each.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use yixin_auth::CoordinatorCaller;
use yixin_platform::{ApiError, ErrorBody};

use super::store_error;
use crate::Dispatcher;
use crate::engine::regions::lease_live;

/// One dispatch region.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RegionView {
    /// The H3 cell, as its hex string.
    #[schema(example = "8440a6dffffffff")]
    pub region: String,
    /// The dispatcher instance holding it (or that last held it); absent
    /// for a region nobody has taken yet.
    pub holder: Option<String>,
    /// Raised each time the region changes hands.
    pub token: i64,
    pub expires_at: Option<DateTime<Utc>>,
    /// The lease runs now (`expires_at` is in the future).
    pub live: bool,
    /// The answering instance serves it now.
    pub served_here: bool,
    /// Offers the answering instance made for its orders since it started.
    pub offers_here: u64,
}

/// Sharded dispatch: the regions and their leases.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Regions {
    pub at: DateTime<Utc>,
    /// Whether the answering instance dispatches by region
    /// (`dispatch.regions` set); if not, it dispatches every order.
    pub sharded: bool,
    /// The answering instance's id, as a lease holder.
    pub instance: Option<String>,
    /// H3 resolution of a region.
    pub resolution: Option<u8>,
    pub lease_ttl_s: Option<u64>,
    /// Every known region, by region.
    pub regions: Vec<RegionView>,
}

#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    responses((status = 200, body = Regions), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/v1/dispatch/regions")]
pub async fn list_regions(
    _caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
) -> Result<web::Json<Regions>, ApiError> {
    let now = Utc::now();
    let leases = svc
        .store
        .region_leases()
        .await
        .map_err(|e| store_error(e, "region"))?;
    let status = svc.engine.as_ref().and_then(|e| e.shard_status());
    let here = |region: &str| {
        status
            .as_ref()
            .and_then(|s| s.regions.iter().find(|r| r.region == region))
    };
    Ok(web::Json(Regions {
        at: now,
        sharded: status.is_some(),
        instance: status.as_ref().map(|s| s.instance.clone()),
        resolution: status.as_ref().map(|s| s.resolution),
        lease_ttl_s: status.as_ref().map(|s| s.lease_ttl.as_secs()),
        regions: leases
            .into_iter()
            .map(|l| RegionView {
                served_here: here(&l.region).is_some_and(|r| r.serving),
                offers_here: here(&l.region).map_or(0, |r| r.offers),
                live: lease_live(l.expires_at, now),
                region: l.region,
                holder: l.holder,
                token: l.token,
                expires_at: l.expires_at,
            })
            .collect(),
    }))
}
