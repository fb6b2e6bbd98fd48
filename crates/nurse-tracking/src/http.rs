//! The HTTP equivalents of the socket, for phones on weak connections.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yixin_auth::NurseCaller;
use yixin_domain::{OfferId, OrderId, ShiftState};
use yixin_platform::http::client_addr;
use yixin_platform::{ApiError, ErrorBody, JsonBody};

use crate::NurseTracking;
use crate::errors::TrackingError;
use crate::frames::{AssignedView, FixIn, OfferView, ServiceName, ShiftIn, Step};
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
    /// Required with `started`: who consented on site (the patient's or a
    /// family member's name); 422 `consent_required` without it.
    #[serde(default)]
    #[schema(max_length = 50, example = "王女士")]
    pub consent_by: Option<String>,
    /// With `arrived`: where the phone is (else its latest fresh fix);
    /// `arrived` is accepted within `safety.arrival_radius_m` of the address.
    #[serde(default)]
    pub location: Option<crate::safety::StepPosition>,
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
    audit_shown(&svc, &ctx, &caller, &req, &[&job.order_id], "http_accept").await;
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
    body: yixin_platform::OptionalJsonBody<DeclineRequest>,
) -> Result<web::Json<DeclinedView>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let reason = body.0.and_then(|b| b.reason);
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
        (status = 422, description = "`consent_required` (started without `consent_by`), `record_required` (completed before the visit record), `too_far_from_address` (arrived farther than the arrival radius; the message gives the distance) or `position_unknown` (arrived with no position sent and no fresh fix)", body = ErrorBody),
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
    let body = body.into_inner();
    let job = svc
        .tracker
        .progress_at(&ctx, order, body.step, body.consent_by, body.location)
        .await?;
    audit_shown(&svc, &ctx, &caller, &req, &[&job.order_id], "http_progress").await;
    Ok(web::Json(job))
}

/// The nurse's jobs with address and contact: her current job, then her
/// next job (`next` true: a chained job, waiting for the current visit to
/// end), each if any.
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
    let jobs: Vec<AssignedView> = svc.tracker.jobs(&ctx).await?;
    let shown: Vec<&str> = jobs.iter().map(|j| j.order_id.as_str()).collect();
    audit_shown(&svc, &ctx, &caller, &req, &shown, "http_jobs").await;
    Ok(web::Json(jobs))
}

/// `POST /v1/nurse/orders/{id}/record` body: the visit record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordRequest {
    /// Values by field code of the service's `record_template` (see the
    /// catalogue): each of its type and plausible range; every required
    /// field present; no other field.
    #[schema(value_type = Object, example = json!({"temperature_c": 36.8, "bp_systolic": 120, "bp_diastolic": 80, "pulse": 72, "spo2": 98, "bilirubin_mg_dl": 8.5}))]
    pub values: std::collections::BTreeMap<String, serde_json::Value>,
    /// Free notes, at most 2000 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
}

/// One submitted version of a visit record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    pub order_id: String,
    /// 1 for the first submission; an amendment is the next version.
    pub version: u32,
    pub submitted_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Object)]
    pub values: std::collections::BTreeMap<String, serde_json::Value>,
    pub notes: Option<String>,
}

/// Submits the visit record of the nurse's own job (in service), or an
/// amendment (a new version: a submitted record is never changed).
/// `completed` is refused with 422 `record_required` until one exists.
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    request_body = RecordRequest,
    responses(
        (status = 201, description = "The version written", body = RecordView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "Not the nurse's job", body = ErrorBody),
        (status = 409, description = "The visit has not started", body = ErrorBody),
        (status = 422, description = "A value out of range, of the wrong type, unknown or missing; notes too long or with NUL; `field` names it", body = ErrorBody),
    )
)]
#[post("/v1/nurse/orders/{id}/record")]
pub async fn post_record(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
    id: web::Path<String>,
    body: JsonBody<RecordRequest>,
) -> Result<HttpResponse, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let order = id
        .parse()
        .map(OrderId)
        .map_err(|_| ApiError::from(TrackingError::JobNotFound))?;
    let body = body.into_inner();
    let saved = svc
        .tracker
        .submit_record(&ctx, order, &body.values, body.notes.as_deref())
        .await?;
    Ok(HttpResponse::Created().json(RecordView {
        order_id: saved.order_id.to_string(),
        version: saved.version,
        submitted_at: saved.submitted_at,
        values: saved.values,
        notes: saved.notes,
    }))
}

/// One of the nurse's jobs of the day, as the phone lists them.
#[derive(Debug, Serialize, ToSchema)]
pub struct NurseDayJob {
    pub order_id: String,
    pub service: ServiceName,
    #[schema(value_type = yixin_platform::views::OrderStatusName, example = "completed")]
    pub status: yixin_domain::OrderStatus,
    /// The street address while the job is open; none once it is completed
    /// or cancelled (a finished visit's address is not hers to keep).
    pub address: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub promised_by: chrono::DateTime<chrono::Utc>,
}

/// Most jobs listed for one day.
const DAY_JOBS_MAX: u64 = 100;

/// The nurse's jobs of today (the organisation's day), newest first: the
/// current one and those finished or cancelled today.
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    responses((status = 200, body = [NurseDayJob]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/v1/nurse/jobs/today")]
pub async fn get_jobs_today(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
    req: HttpRequest,
) -> Result<web::Json<Vec<NurseDayJob>>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let store = &svc.tracker.store;
    let since = yixin_domain::OrgTimeZone::default().start_of_day(chrono::Utc::now());
    let (orders, catalog) = tokio::join!(
        store.orders_for_nurse_since(ctx.id, since, DAY_JOBS_MAX),
        store.catalog()
    );
    let orders = orders.map_err(TrackingError::store)?;
    let catalog = catalog.map_err(TrackingError::store)?;
    let jobs: Vec<NurseDayJob> = orders
        .into_iter()
        .map(|o| {
            let service = catalog.service(&o.service_code);
            NurseDayJob {
                order_id: o.id.to_string(),
                service: ServiceName::new(
                    o.service_code.clone(),
                    service.map(|s| s.name_zh.clone()).unwrap_or_default(),
                    service.map(|s| s.name_en.clone()).unwrap_or_default(),
                ),
                status: o.status,
                address: (!o.status.is_terminal()).then(|| o.address.text.clone()),
                created_at: o.created_at,
                promised_by: o.promised_by,
            }
        })
        .collect();
    let shown: Vec<&str> = jobs
        .iter()
        .filter(|j| j.address.is_some())
        .map(|j| j.order_id.as_str())
        .collect();
    audit_shown(&svc, &ctx, &caller, &req, &shown, "http_jobs_today").await;
    Ok(web::Json(jobs))
}

/// The signed-in nurse as the roster has them.
#[derive(Debug, Serialize, ToSchema)]
pub struct NurseMe {
    /// The roster id (also when the token named the nurse by `external_id`).
    pub id: String,
    pub name: String,
    pub org: String,
    pub shift: ShiftIn,
    pub skills: Vec<String>,
}

/// Who the token's nurse is on the roster: name, shift state, skills.
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    responses((status = 200, body = NurseMe), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/v1/nurse/me")]
pub async fn get_me(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
) -> Result<web::Json<NurseMe>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let n = svc
        .tracker
        .store
        .get_nurse(ctx.id)
        .await
        .map_err(TrackingError::store)?
        .ok_or(TrackingError::NotOnRoster)?;
    Ok(web::Json(NurseMe {
        id: n.id.to_string(),
        name: n.name,
        org: n.org_id.as_str().to_owned(),
        shift: match n.shift {
            ShiftState::On => ShiftIn::On,
            ShiftState::Off => ShiftIn::Off,
        },
        skills: n.skills.iter().map(|s| s.as_str().to_owned()).collect(),
    }))
}

/// The audit rows of an answer that showed the nurse these orders'
/// addresses and phones.
async fn audit_shown(
    svc: &NurseTracking,
    ctx: &crate::service::NurseCtx,
    caller: &NurseCaller,
    req: &HttpRequest,
    order_ids: &[&str],
    via: &str,
) {
    svc.tracker
        .audit_reads(ctx, &caller.0.sub, order_ids, client_addr(req), via)
        .await;
}
