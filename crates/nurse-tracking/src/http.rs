//! The HTTP equivalents of the socket, for phones on weak connections.

use actix_web::{HttpRequest, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yixin_auth::NurseCaller;
use yixin_domain::{OfferId, OrderId, ShiftState};
use yixin_platform::http::client_addr;
use yixin_platform::{ApiError, ErrorBody, JsonBody};

use crate::NurseTracking;
use crate::errors::TrackingError;
use crate::frames::{AssignedView, FixIn, OfferView, ShiftIn, Step};
use crate::service::{IngestReport, NurseCtx};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationsRequest {
    /// Up to `tracking.max_fixes_per_batch` fixes, in any order.
    pub fixes: Vec<FixIn>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShiftRequest {
    pub state: ShiftIn,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShiftView {
    pub state: ShiftIn,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclineRequest {
    /// At most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeclinedView {
    pub offer_id: String,
    pub status: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressRequest {
    pub step: Step,
}

async fn nurse(svc: &NurseTracking, caller: &NurseCaller) -> Result<NurseCtx, ApiError> {
    let ctx = svc.tracker.resolve(&caller.0).await?;
    svc.tracker.fleet_write().seen(ctx.id, chrono::Utc::now());
    Ok(ctx)
}

fn offer_id(raw: &str) -> Result<OfferId, ApiError> {
    // An id that cannot exist is simply not found.
    raw.parse()
        .map(OfferId)
        .map_err(|_| TrackingError::OfferNotFound.into())
}

/// Sends fixes (the phone's buffer after a gap, or one fix).
///
/// Valid fixes are indexed even if others in the batch are refused; the
/// answer lists the refused ones. If every fix is refused the answer is a
/// 422 naming the first bad field.
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    request_body = LocationsRequest,
    responses(
        (status = 200, body = IngestReport),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[post("/v1/nurse/locations")]
pub async fn post_locations(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
    body: JsonBody<LocationsRequest>,
) -> Result<web::Json<IngestReport>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let fixes = body.into_inner().fixes;
    let report = svc.tracker.ingest(&ctx, &fixes, "fixes")?;
    if !fixes.is_empty()
        && report.accepted == 0
        && report.ignored == 0
        && let Some(first) = report.refused.first()
    {
        return Err(ApiError::Unprocessable {
            code: first.code.clone().into(),
            message: first.message.clone(),
            field: first.field.clone(),
        });
    }
    Ok(web::Json(report))
}

/// Goes on or off shift. Off is refused (409 `active_job`) during a job; a
/// live offer is declined.
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    request_body = ShiftRequest,
    responses((status = 200, body = ShiftView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody))
)]
#[post("/v1/nurse/shift")]
pub async fn post_shift(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
    body: JsonBody<ShiftRequest>,
) -> Result<web::Json<ShiftView>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let state = body.into_inner().state;
    let shift = match state {
        ShiftIn::On => ShiftState::On,
        ShiftIn::Off => ShiftState::Off,
    };
    svc.tracker.set_shift(&ctx, shift).await?;
    Ok(web::Json(ShiftView { state }))
}

/// The nurse's live offer (zero or one), without the address.
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    responses((status = 200, body = [OfferView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/v1/nurse/offers")]
pub async fn get_offers(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
) -> Result<web::Json<Vec<OfferView>>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    Ok(web::Json(
        svc.tracker.live_offer(&ctx).await?.into_iter().collect(),
    ))
}

/// Accepts an offer. The winner gets the address, contact and exact place;
/// anyone else a 409 `offer_expired`, `offer_taken` or `offer_cancelled`.
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Offer id")),
    responses(
        (status = 200, body = AssignedView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
#[post("/v1/nurse/offers/{id}/accept")]
pub async fn accept_offer(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<web::Json<AssignedView>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let job = svc.tracker.accept(&ctx, offer_id(&id)?).await?;
    svc.tracker
        .audit_read(
            &ctx,
            &caller.0.sub,
            &job.order_id,
            client_addr(&req),
            "http_accept",
        )
        .await;
    Ok(web::Json(job))
}

/// Declines an offer before its deadline.
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Offer id")),
    request_body(content = DeclineRequest, description = "Optional reason"),
    responses(
        (status = 200, body = DeclinedView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
#[post("/v1/nurse/offers/{id}/decline")]
pub async fn decline_offer(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
    id: web::Path<String>,
    body: Option<JsonBody<DeclineRequest>>,
) -> Result<web::Json<DeclinedView>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let reason = body.and_then(|b| b.into_inner().reason);
    svc.tracker.decline(&ctx, offer_id(&id)?, reason).await?;
    Ok(web::Json(DeclinedView {
        offer_id: id.into_inner(),
        status: "declined".into(),
    }))
}

/// Reports a visit step of the nurse's own job, in order
/// (`en_route` → `arrived` → `started` → `completed`).
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    request_body = ProgressRequest,
    responses(
        (status = 200, body = AssignedView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
#[post("/v1/nurse/orders/{id}/progress")]
pub async fn post_progress(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
    req: HttpRequest,
    id: web::Path<String>,
    body: JsonBody<ProgressRequest>,
) -> Result<web::Json<AssignedView>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let order = id
        .parse()
        .map(OrderId)
        .map_err(|_| ApiError::from(TrackingError::JobNotFound))?;
    let job = svc
        .tracker
        .progress(&ctx, order, body.into_inner().step)
        .await?;
    svc.tracker
        .audit_read(
            &ctx,
            &caller.0.sub,
            &job.order_id,
            client_addr(&req),
            "http_progress",
        )
        .await;
    Ok(web::Json(job))
}

/// The nurse's current job (zero or one), with address and contact.
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    responses((status = 200, body = [AssignedView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/v1/nurse/jobs")]
pub async fn get_jobs(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
    req: HttpRequest,
) -> Result<web::Json<Vec<AssignedView>>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let jobs: Vec<AssignedView> = svc.tracker.current_job(&ctx).await?.into_iter().collect();
    for job in &jobs {
        svc.tracker
            .audit_read(
                &ctx,
                &caller.0.sub,
                &job.order_id,
                client_addr(&req),
                "http_jobs",
            )
            .await;
    }
    Ok(web::Json(jobs))
}
