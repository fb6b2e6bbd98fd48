//! `POST /v1/quotes`: price and an honest arrival before the resident
//! orders, from the live fleet with the engine's own candidate rule and ETA.

use actix_web::{post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yixin_auth::ResidentCaller;
use yixin_domain::{GeoPoint, OrgId};
use yixin_platform::{ApiError, ErrorBody, JsonBody, views::Location};

use crate::Dispatcher;

/// `POST /v1/quotes` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct QuoteRequest {
    #[schema(example = "wound_care")]
    pub service_code: String,
    pub location: Location,
    /// A booked time; none means now.
    #[serde(default)]
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// What ordering now (or at the booked time) would give.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuoteView {
    /// The service's price.
    pub price_cents: u32,
    /// Minutes until the nurse the dispatcher would pick is at the door;
    /// absent for a booking or when no nurse is free.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_arrival_min: Option<u32>,
    /// Whether the nurse would be there within the 30-minute promise.
    pub within_promise: bool,
    /// The earliest honest arrival, the booked time, or the next bookable time.
    pub earliest_at: DateTime<Utc>,
    /// `scheduled`, `beyond_promise` or `no_nurse_free`; absent when the promise holds now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "beyond_promise")]
    pub reason: Option<String>,
}

/// A quote: price, predicted minutes to the door, whether the 30-minute
/// promise holds, and otherwise the earliest honest arrival or the next
/// bookable time. Nothing is reserved: the order, placed a moment later,
/// is dispatched by the same rules.
#[utoipa::path(
    tag = "resident",
    security(("bearer" = [])),
    request_body = QuoteRequest,
    responses(
        (status = 200, body = QuoteView),
        (status = 403, description = "Not a resident", body = ErrorBody),
        (status = 422, description = "Unknown `service_code`, a `location` outside every service area, or a `scheduled_for` in the past or beyond the booking horizon", body = ErrorBody),
    )
)]
#[post("/v1/quotes")]
pub async fn create_quote(
    caller: ResidentCaller,
    svc: web::Data<Dispatcher>,
    body: JsonBody<QuoteRequest>,
) -> Result<web::Json<QuoteView>, ApiError> {
    let body = body.into_inner();
    let now = Utc::now();
    let location = GeoPoint::new(body.location.lat, body.location.lng)
        .map_err(|e| ApiError::invalid_field("location", "invalid_location", e.to_string()))?;
    if let Some(at) = body.scheduled_for
        && let Err(e) = yixin_domain::check_booking_time(at, now)
    {
        // The one booking horizon; the past keeps its own code.
        let code = if at < now {
            "in_the_past"
        } else {
            "beyond_horizon"
        };
        return Err(ApiError::invalid_field(
            "scheduled_for",
            code,
            e.to_string(),
        ));
    }
    let Some(engine) = &svc.engine else {
        return Err(ApiError::Unavailable(
            "automatic dispatch is off here: no live quote".to_owned(),
        ));
    };
    // The engine's own cached areas: the ones an offer names.
    let areas = engine
        .areas(&OrgId(caller.org.clone()))
        .await
        .map_err(ApiError::internal)?;
    if !areas.iter().any(|a| a.contains(&location)) {
        return Err(ApiError::invalid_field(
            "location",
            "outside_service_area",
            "this address is outside the areas we serve",
        ));
    }
    let (price_cents, quote) = engine
        .quote(&body.service_code, location, body.scheduled_for, now)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::invalid_field("service_code", "unknown_service", "no such service")
        })?;
    Ok(web::Json(QuoteView {
        price_cents,
        predicted_arrival_min: quote.predicted_arrival_min,
        within_promise: quote.within_promise,
        earliest_at: quote.earliest_at,
        reason: quote.reason.map(|r| r.as_str().to_owned()),
    }))
}
