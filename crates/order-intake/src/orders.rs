//! `/v1/orders`: placing, reading, listing, cancelling and rating orders.

use actix_web::{HttpRequest, HttpResponse, get, http::StatusCode, post, web};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use yixin_auth::{Caller, ResidentCaller, Role};

use yixin_domain::{
    Address, Admission, Contact, GeoPoint, NewOrder, Order, OrderId, OrgId, Rating, ResidentId,
    ServiceArea,
};
use yixin_platform::{ApiError, ErrorBody, JsonBody};
use yixin_store::{CreateOrderOutcome, IdempotencyRecord, OrderCursor};

use crate::{
    OrderIntake,
    errors::{domain_error, domain_error_at, store_error},
};

/// Longest `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 200;

// One schema each, shared with the coordinators' and nurses' views.
pub use yixin_platform::views::{AddressView, ContactView, Location, TimelineEntry};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddressBody {
    /// Street and number; at most 200 characters once trimmed.
    #[schema(min_length = 1, max_length = 200, example = "双福街道 福城大道 88 号")]
    pub text: String,
    /// Building, unit, flat; at most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200, example = "3 栋 2 单元 1102")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContactBody {
    /// At most 50 characters once trimmed.
    #[schema(min_length = 1, max_length = 50, example = "王女士")]
    pub name: String,
    /// A mainland China mobile number (`1[3-9]` and nine digits), with an
    /// optional `+86`/`86` prefix; spaces and dashes are ignored.
    #[schema(
        max_length = 40,
        pattern = r"^(\+86|86)?[0-9 -]+$",
        example = "13812345678"
    )]
    pub phone: String,
}

/// `POST /v1/orders` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateOrderRequest {
    #[schema(example = "wound_care")]
    pub service_code: String,
    pub location: Location,
    pub address: AddressBody,
    pub contact: ContactBody,
    /// At most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub notes: Option<String>,
    /// A booked time (within the booking horizon, `booking_horizon_days` of the
    /// catalogue); none means as soon as possible. Later than 30 minutes from
    /// now, the order waits `scheduled` and a nurse is reserved for it.
    #[serde(default)]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Answers to the service's intake questions, by question code (see the
    /// catalogue's `intake`); unanswered counts as "no". A red-flag answer
    /// is 422 `emergency_call_120`: call 120 now.
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"bedridden": false, "allergies": ""}))]
    pub answers: BTreeMap<String, serde_json::Value>,
    /// The version of the service's consent text the resident accepted:
    /// 422 `consent_required` without it, `consent_outdated` if not current.
    #[serde(default)]
    #[schema(example = "2026-11-30")]
    pub consent_version: Option<String>,
    /// The doctor's order reference, required by services that need one
    /// (`requires_doctor_order`); at most 64 characters.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub doctor_order_ref: Option<String>,
    /// Who the visit is for: a resident gives the `id` of one of
    /// `GET /v1/me/patients` (optional); an agent must give one of her
    /// registered patients, `GET /v1/agent/patients` (else 422
    /// `patient_required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
    /// An agent's order (role `agent`): the consent of the patient or
    /// family, required for agents (else 422 `consent_required`), ignored
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<OnBehalfOfBody>,
}

/// The consent recorded with an agent's order (the patient is `patient_id`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnBehalfOfBody {
    /// Who consented (the patient or family), by name.
    pub consent_by: String,
    /// `self`, or e.g. 女儿.
    pub relation: String,
    /// `in_person`, `phone` or `written`.
    #[schema(example = "in_person")]
    pub consent_method: String,
    pub consented_at: DateTime<Utc>,
}

/// The caller of the order routes as the owner of orders: a resident as
/// is, an agent under `agent:<sub>` (so an agent's orders are nobody else's
/// and no resident's) once checked to be an active agent of the
/// organisation's list (403 `agent_not_listed`); `true` for an agent.
/// Other roles: 403.
async fn orderer(svc: &OrderIntake, caller: Caller) -> Result<(ResidentCaller, bool), ApiError> {
    let mut claims = caller.0;
    match claims.role {
        Role::Resident => Ok((ResidentCaller(claims), false)),
        Role::Agent => {
            claims.sub = crate::agent_patients::listed_agent(svc, &claims).await?;
            Ok((ResidentCaller(claims), true))
        }
        _ => Err(ApiError::Forbidden(
            "orders are placed by residents and agents".to_owned(),
        )),
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CancelRequest {
    /// At most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RatingRequest {
    /// 1 to 5.
    #[schema(minimum = 1, maximum = 5)]
    pub stars: u8,
    /// At most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub comment: Option<String>,
}

/// An order as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    #[schema(value_type = yixin_platform::views::OrderStatusName, example = "pending")]
    pub status: String,
    pub service_code: String,
    pub created_at: DateTime<Utc>,
    /// When the nurse must be at the door.
    pub promised_by: DateTime<Utc>,
    pub eta: Option<DateTime<Utc>>,
    pub nurse: Option<NurseView>,
    pub timeline: Vec<TimelineEntry>,
    pub location: Location,
    pub address: AddressView,
    pub contact: ContactView,
    pub notes: Option<String>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub rating: Option<RatingView>,
    /// Risk flags the intake answers raised (question codes).
    #[serde(default)]
    pub flags: Vec<String>,
    /// Why screening rejected the order.
    #[serde(default)]
    pub review_reason: Option<String>,
    /// While screening decides or after it rejected: what to tell the
    /// resident (the 30-minute promise counts from approval).
    #[serde(default)]
    pub notice: Option<crate::clinical::NoticeView>,
    /// Who the visit is for, when the order names a household member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientRef>,
    /// On booking a package: its course, every visit a scheduled order
    /// (this one first); absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub course: Vec<CourseVisitView>,
}

/// One visit of a booked course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CourseVisitView {
    pub order_id: String,
    pub scheduled_for: DateTime<Utc>,
}

/// The household member an order is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PatientRef {
    pub id: String,
    pub name: String,
    pub relation: String,
}

impl From<yixin_store::HouseholdMember> for PatientRef {
    fn from(p: yixin_store::HouseholdMember) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name,
            relation: p.relation,
        }
    }
}

/// A page of the caller's orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub orders: Vec<OrderView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The nurse on the order as the resident sees them: the phone masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ResidentNurse)]
pub struct NurseView {
    pub id: String,
    pub name: String,
    #[schema(pattern = r"^1[3-9][0-9]\*{4}[0-9]{4}$", example = "138****5678")]
    pub phone_masked: String,
    /// While en route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingView {
    #[schema(minimum = 1, maximum = 5)]
    pub stars: u8,
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The idempotency scope of a caller: keys of different callers never collide.
fn scope_of(caller: &ResidentCaller) -> String {
    format!("resident:{}:{}", caller.org, caller.sub)
}

fn owns(caller: &ResidentCaller, order: &Order) -> bool {
    order.org_id.as_str() == caller.org && order.resident_id.as_str() == caller.sub
}

/// Parses `{id}`; anything that is not an order id names nothing.
fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    Uuid::parse_str(raw)
        .map(OrderId)
        .map_err(|_| ApiError::not_found("no such order"))
}

/// The caller's order, or 404 (also when it is someone else's).
pub(crate) async fn owned_order(
    svc: &OrderIntake,
    caller: &ResidentCaller,
    raw_id: &str,
) -> Result<Order, ApiError> {
    let id = order_id(raw_id)?;
    match svc.store.get_order(id).await.map_err(store_error)? {
        Some(order) if owns(caller, &order) => Ok(order),
        _ => Err(ApiError::not_found("no such order")),
    }
}

/// The order with its timeline and nurse, as the owner sees it.
pub(crate) async fn view(svc: &OrderIntake, order: &Order) -> Result<OrderView, ApiError> {
    let timeline: Vec<TimelineEntry> = svc
        .store
        .timeline(order.id)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|e| TimelineEntry {
            status: e.status.as_str().to_owned(),
            at: e.at,
        })
        .collect();
    let nurse = match order.nurse_id {
        Some(id) => svc
            .store
            .get_nurse(id)
            .await
            .map_err(store_error)?
            .map(|n| NurseView {
                id: n.id.to_string(),
                name: n.name,
                phone_masked: n.phone.masked(),
                location: None,
            }),
        None => None,
    };
    // While en route the resident sees where the nurse is.
    let nurse = match (nurse, &svc.positions) {
        (Some(mut n), Some(board)) if order.status == yixin_domain::OrderStatus::EnRoute => {
            match board.latest(std::slice::from_ref(&n.id)).await {
                Ok(found) => {
                    n.location = found.into_iter().flatten().next().map(|p| Location {
                        lat: p.lat,
                        lng: p.lng,
                    });
                }
                Err(e) => {
                    tracing::debug!(order_id = %order.id, error = %e, "nurse position not read")
                }
            }
            Some(n)
        }
        (nurse, _) => nurse,
    };
    let patient = svc
        .store
        .order_patient(order.id.0)
        .await
        .map_err(store_error)?
        .map(PatientRef::from);
    Ok(view_of(order, timeline, nurse, patient))
}

/// The order as its owner sees it, from what the caller already holds.
fn view_of(
    order: &Order,
    timeline: Vec<TimelineEntry>,
    nurse: Option<NurseView>,
    patient: Option<PatientRef>,
) -> OrderView {
    OrderView {
        id: order.id.to_string(),
        status: order.status.as_str().to_owned(),
        service_code: order.service_code.clone(),
        created_at: order.created_at,
        promised_by: order.promised_by,
        eta: order.eta,
        nurse,
        timeline,
        location: Location {
            lat: order.location.lat(),
            lng: order.location.lng(),
        },
        address: AddressView {
            text: order.address.text.clone(),
            detail: order.address.detail.clone(),
        },
        contact: ContactView {
            name: order.contact.name.clone(),
            phone: order.contact.phone.as_str().to_owned(),
        },
        notes: order.notes.clone(),
        scheduled_for: order.scheduled_for,
        cancel_reason: order.cancel_reason.clone(),
        rating: order.rating.as_ref().map(|r| RatingView {
            stars: r.stars,
            comment: r.comment.clone(),
        }),
        flags: order.clinical.flags.clone(),
        review_reason: order.clinical.review_reason.clone(),
        notice: crate::clinical::notice(order),
        patient,
        course: Vec::new(),
    }
}

/// sha256 of the canonical JSON of the parsed request (object keys sorted).
fn request_hash(body: &CreateOrderRequest) -> Result<String, ApiError> {
    let canonical = serde_json::to_value(body)
        .and_then(|v| serde_json::to_vec(&v))
        .map_err(ApiError::internal)?;
    Ok(hex::encode(Sha256::digest(&canonical)))
}

fn idempotency_key(req: &HttpRequest) -> Result<String, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Err(ApiError::BadRequest {
            code: "missing_idempotency_key".into(),
            message: "the Idempotency-Key header is required".into(),
            field: Some("Idempotency-Key".into()),
        });
    };
    let key = value.to_str().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.chars().count() > IDEMPOTENCY_KEY_MAX_CHARS {
        return Err(ApiError::BadRequest {
            code: "invalid_idempotency_key".into(),
            message: format!(
                "the Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_CHARS} visible ASCII characters"
            ),
            field: Some("Idempotency-Key".into()),
        });
    }
    Ok(key.to_owned())
}

/// Checks everything that needs no backend and builds the domain request.
pub(crate) fn new_order(
    caller: &ResidentCaller,
    body: &CreateOrderRequest,
    now: DateTime<Utc>,
) -> Result<NewOrder, ApiError> {
    let location = GeoPoint::new(body.location.lat, body.location.lng).map_err(|e| {
        let field = match e.field() {
            Some(f) => format!("location.{f}"),
            None => "location".to_owned(),
        };
        domain_error_at(e, Some(&field))
    })?;
    let address =
        Address::new(&body.address.text, body.address.detail.as_deref()).map_err(domain_error)?;
    let contact = Contact::new(&body.contact.name, &body.contact.phone).map_err(|e| {
        let field = if matches!(e, yixin_domain::DomainError::InvalidPhone { .. }) {
            "contact.phone"
        } else {
            "contact.name"
        };
        domain_error_at(e, Some(field))
    })?;
    let notes = body
        .notes
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let new = NewOrder {
        org_id: OrgId::from(caller.org.as_str()),
        resident_id: ResidentId::from(caller.sub.as_str()),
        service_code: body.service_code.trim().to_owned(),
        location,
        address,
        contact,
        notes,
        scheduled_for: body.scheduled_for,
    };
    new.validate(now).map_err(domain_error)?;
    Ok(new)
}

/// Places an order for the caller.
///
/// The order, its first timeline event and the `OrderCreated` event are
/// written in one transaction before the answer. Requires an
/// `Idempotency-Key`: the same key and body again answers 200 with the same
/// order; the same key with another body is 409 `idempotency_conflict`.
#[utoipa::path(
    tag = "resident",
    security(("bearer" = [])),
    request_body = CreateOrderRequest,
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 200, description = "1 to 200 characters, unique per intended order")),
    responses(
        (status = 201, description = "Created", body = OrderView),
        (status = 200, description = "A replay of an earlier request with this key", body = OrderView),
        (status = 400, description = "Malformed JSON or a missing Idempotency-Key", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a resident", body = ErrorBody),
        (status = 409, description = "Key reused with another body (`idempotency_conflict`), or every nurse who could come is booked at `scheduled_for` (`booking_overlaps`)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Invalid field; `field` names it", body = ErrorBody),
        (status = 429, description = "Too many orders; see Retry-After", body = ErrorBody),
    )
)]
#[post("/v1/orders")]
pub async fn create_order(
    caller: Caller,
    req: HttpRequest,
    svc: web::Data<OrderIntake>,
    body: JsonBody<CreateOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let (caller, agent) = orderer(&svc, caller).await?;
    let body = body.into_inner();
    // An agent's order names one of her registered patients and carries
    // the recorded consent; the patient's name and phone come from the
    // registration.
    let consent = if agent {
        let Some(ob) = body.on_behalf_of.clone() else {
            return Err(domain_error(yixin_domain::DomainError::ConsentRequired {
                field: "on_behalf_of",
            }));
        };
        if body.patient_id.is_none() {
            return Err(ApiError::invalid_field(
                "patient_id",
                "patient_required",
                "an agent orders for one of her registered patients (GET /v1/agent/patients)",
            ));
        }
        Some(ob)
    } else {
        None
    };
    let key = idempotency_key(&req)?;
    let scope = scope_of(&caller);
    let hash = request_hash(&body)?;

    // Microseconds, as stored: the 201 says exactly what a later GET will.
    let now = Utc::now().trunc_subsecs(6);
    // A retry is answered even if the request would no longer pass (e.g. a
    // booked time now past, or the caller now rate limited), so when the
    // checks refuse it, an earlier use of the key decides. The store finds
    // earlier uses itself on the way in, so the common case makes one trip.
    let (new, required_skills, admission, patient) = match admit(&svc, &caller, &scope, &body, now)
        .await
    {
        Ok(admitted) => admitted,
        Err(refusal) => return earlier_use_or(&svc, &caller, &scope, &key, &hash, refusal).await,
    };

    let mut order = Order::place(new, now);
    // Screening: `awaiting_review` instead of `pending`. Its `OrderCreated`
    // still goes out (the dashboard shows the new order); the dispatcher
    // reads the order and leaves it until a coordinator approves it.
    order.admit(admission);
    if let (Some(ob), Some(p)) = (consent, &patient) {
        let home = svc.store.patient_home(p.id).await.map_err(store_error)?;
        order.clinical.on_behalf_of = Some(
            yixin_domain::OnBehalfOf {
                patient_name: p.name.clone(),
                patient_phone: home.and_then(|h| h.phone),
                consent_by: ob.consent_by,
                relation: ob.relation,
                consent_method: ob.consent_method,
                consented_at: ob.consented_at,
            }
            .checked(Utc::now())
            .map_err(domain_error)?,
        );
    }
    // A booking holds a nurse for its time before the order is written (see
    // `booking`); a package booked ahead books its whole course, each visit
    // a scheduled order. A refusal may still be a retry of an earlier use of
    // the key.
    let mut visits = vec![order.clone()];
    let mut reserved: Vec<Option<yixin_domain::NurseId>> = Vec::new();
    if yixin_domain::is_booking(order.scheduled_for, now) {
        let catalog = svc
            .reference
            .catalog(&svc.store)
            .await
            .map_err(store_error)?;
        if let Some(service) = catalog.service(&order.service_code) {
            if let Some(first) = order.scheduled_for {
                for at in service.clinical.visit_times(first).into_iter().skip(1) {
                    let mut visit = order.clone();
                    visit.id = OrderId::new();
                    visit.scheduled_for = Some(at);
                    visit.promised_by = yixin_domain::order::promise(Some(at), now);
                    visits.push(visit);
                }
            }
            match crate::booking::reserve(&svc, &visits, service).await {
                Ok(r) => reserved = r,
                Err(refusal) => {
                    return earlier_use_or(&svc, &caller, &scope, &key, &hash, refusal).await;
                }
            }
        }
    }
    let reserved_any = reserved.iter().any(Option::is_some);
    let later_skills = required_skills.clone();
    let outbox = yixin_contracts::order_created(&order, required_skills);
    let record = IdempotencyRecord {
        scope,
        key,
        request_hash: hash,
        order_id: order.id,
        created_at: now,
    };
    let created = svc.store.create_order(&order, outbox, Some(record)).await;
    if reserved_any && !matches!(created, Ok(CreateOrderOutcome::Created)) {
        crate::booking::release_all(&svc, &visits).await;
    }
    match created.map_err(store_error)? {
        CreateOrderOutcome::Created => {
            // The later visits of a course, each its own scheduled order.
            for visit in visits.iter().skip(1) {
                let outbox = yixin_contracts::order_created(visit, later_skills.clone());
                if let Err(e) = svc.store.create_order(visit, outbox, None).await {
                    crate::booking::release_all(&svc, &visits[1..]).await;
                    return Err(store_error(e));
                }
            }
            // After the order's commit: an order without its patient link is
            // still an order; a failed link is logged, not a failed order.
            if let Some(p) = &patient
                && let Err(e) = svc.store.link_order_patient(order.id.0, p.id).await
            {
                tracing::warn!(order_id = %order.id, error = %e, "patient not linked to the order");
            }
            tracing::debug!(order_id = %order.id, service = %order.service_code, "order placed");
            // Committed: the relay publishes `OrderCreated` now, not at its next poll.
            svc.config.relay.wake.notify_one();
            // Nobody can follow an order that did not exist a moment ago, so
            // there is no live feed to notify; its timeline is the one event
            // just written.
            let timeline = vec![TimelineEntry {
                status: order.status.as_str().to_owned(),
                at: order.created_at,
            }];
            let patient = patient.map(PatientRef::from);
            let mut view = view_of(&order, timeline, None, patient);
            if visits.len() > 1 {
                view.course = visits
                    .iter()
                    .filter_map(|v| {
                        v.scheduled_for.map(|at| CourseVisitView {
                            order_id: v.id.to_string(),
                            scheduled_for: at,
                        })
                    })
                    .collect();
            }
            Ok(HttpResponse::Created().json(view))
        }
        CreateOrderOutcome::Replayed(id) => replay(&svc, &caller, id).await,
    }
}

/// The rate limit, the checks that need no backend, the service and the
/// service area: everything that refuses a new order before it is written.
/// Returns the order to place, the skills its service requires and the
/// admitted intake and the household member it is for. A red-flag answer is
/// refused before anything else is looked at: an emergency is sent to 120
/// whatever else is wrong.
async fn admit(
    svc: &OrderIntake,
    caller: &ResidentCaller,
    scope: &str,
    body: &CreateOrderRequest,
    now: DateTime<Utc>,
) -> Result<
    (
        NewOrder,
        Vec<String>,
        Admission,
        Option<yixin_store::HouseholdMember>,
    ),
    ApiError,
> {
    svc.limiter
        .check(scope)
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    let catalog = svc
        .reference
        .catalog(&svc.store)
        .await
        .map_err(store_error)?;
    let service = catalog
        .orderable_service(body.service_code.trim())
        .map_err(domain_error)?;
    let admission = service
        .clinical
        .admit(
            &body.answers,
            body.consent_version.as_deref(),
            body.doctor_order_ref.as_deref(),
        )
        .map_err(domain_error)?;
    let new = new_order(caller, body, now)?;
    let required_skills = service
        .required_skills
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    let areas = svc
        .reference
        .service_areas(&svc.store, &new.org_id)
        .await
        .map_err(store_error)?;
    ServiceArea::covering(areas.iter(), &new.location).map_err(domain_error)?;
    let patient = match body.patient_id.as_deref() {
        None => None,
        Some(raw) => {
            let unknown = || {
                ApiError::invalid_field(
                    "patient_id",
                    "unknown_patient",
                    "not one of your patients (GET /v1/me/patients, or GET /v1/agent/patients for an agent)",
                )
            };
            let id = Uuid::parse_str(raw.trim()).map_err(|_| unknown())?;
            Some(
                svc.store
                    .household_member(&caller.org, &caller.sub, id)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(unknown)?,
            )
        }
    };
    Ok((new, required_skills, admission, patient))
}

/// For a request [`admit`] refused: the replay (or 409) if the key was used
/// before, else the refusal. When the key cannot be looked up, the refusal.
async fn earlier_use_or(
    svc: &OrderIntake,
    caller: &ResidentCaller,
    scope: &str,
    key: &str,
    hash: &str,
    refusal: ApiError,
) -> Result<HttpResponse, ApiError> {
    match svc.store.idempotency_record(scope, key).await {
        Ok(Some(existing)) if existing.request_hash == hash => {
            replay(svc, caller, existing.order_id).await
        }
        Ok(Some(_)) => Err(store_error(yixin_store::StoreError::IdempotencyConflict)),
        Ok(None) => Err(refusal),
        Err(e) => {
            tracing::warn!(error = %e, "idempotency key not looked up; answering the refusal");
            Err(refusal)
        }
    }
}

async fn replay(
    svc: &OrderIntake,
    caller: &ResidentCaller,
    id: OrderId,
) -> Result<HttpResponse, ApiError> {
    let order = svc
        .store
        .get_order(id)
        .await
        .map_err(store_error)?
        .filter(|o| owns(caller, o))
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("idempotency record without its order"))
        })?;
    Ok(HttpResponse::build(StatusCode::OK).json(view(svc, &order).await?))
}

/// One of the caller's orders.
#[utoipa::path(
    tag = "resident",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, body = OrderView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such order of the caller", body = ErrorBody),
    )
)]
#[get("/v1/orders/{id}")]
pub async fn get_order(
    caller: Caller,
    svc: web::Data<OrderIntake>,
    id: web::Path<String>,
) -> Result<web::Json<OrderView>, ApiError> {
    let (caller, _) = orderer(&svc, caller).await?;
    let order = owned_order(&svc, &caller, &id).await?;
    Ok(web::Json(view(&svc, &order).await?))
}

fn encode_cursor(c: &OrderCursor) -> String {
    hex::encode(format!("{}|{}", c.created_at.timestamp_micros(), c.id.0))
}

fn decode_cursor(raw: &str) -> Result<OrderCursor, ApiError> {
    let bad = || ApiError::BadRequest {
        code: "invalid_cursor".into(),
        message: "the cursor is not one this API returned".into(),
        field: Some("cursor".into()),
    };
    let bytes = hex::decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (micros, id) = text.split_once('|').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let created_at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok(OrderCursor {
        created_at,
        id: OrderId(id),
    })
}

/// The caller's orders, newest first, in pages.
#[utoipa::path(
    tag = "resident",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = OrderPage),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/v1/orders")]
pub async fn list_orders(
    caller: Caller,
    svc: web::Data<OrderIntake>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<OrderPage>, ApiError> {
    let (caller, _) = orderer(&svc, caller).await?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "invalid_query".into(),
            message: "limit must be between 1 and 100".into(),
            field: Some("limit".into()),
        });
    }
    let before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    // One more than asked tells whether there is a next page.
    let mut orders = svc
        .store
        .orders_for_resident(
            &OrgId::from(caller.org.as_str()),
            &ResidentId::from(caller.sub.as_str()),
            before,
            u64::from(limit) + 1,
        )
        .await
        .map_err(store_error)?;
    let more = orders.len() > limit as usize;
    orders.truncate(limit as usize);
    let next_cursor = if more {
        orders.last().map(|o| encode_cursor(&OrderCursor::from(o)))
    } else {
        None
    };
    let mut views = Vec::with_capacity(orders.len());
    for order in &orders {
        views.push(view(&svc, order).await?);
    }
    Ok(web::Json(OrderPage {
        orders: views,
        next_cursor,
    }))
}

/// Cancels one of the caller's orders, until the visit starts.
///
/// A live offer for it is withdrawn and the nurse is freed. Cancelling an
/// order that is already cancelled is a 409 `not_cancellable`, like any
/// order past the point of cancelling.
#[utoipa::path(
    tag = "resident",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    request_body = CancelRequest,
    responses(
        (status = 200, description = "Cancelled", body = OrderView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not_cancellable`: the visit has started or the order is over", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[post("/v1/orders/{id}/cancel")]
pub async fn cancel_order(
    caller: ResidentCaller,
    svc: web::Data<OrderIntake>,
    id: web::Path<String>,
    body: JsonBody<CancelRequest>,
) -> Result<web::Json<OrderView>, ApiError> {
    let reason = body.into_inner().reason;
    let order = owned_order(&svc, &caller, &id).await?;
    // The domain's answer on what we read gives the precise refusal; the
    // store asks it again under the lock.
    order
        .clone()
        .cancel(reason.as_deref(), Utc::now())
        .map_err(domain_error)?;
    let now = Utc::now();
    let mut event = None;
    let cancelled = svc
        .store
        .cancel_order(order.id, reason.as_deref(), now, |next, from| {
            let msg = yixin_contracts::status_changed(next, from, now);
            event = Some(msg.clone());
            msg
        })
        .await
        .map_err(|e| match e {
            yixin_store::StoreError::StaleState { current } => ApiError::conflict(
                "not_cancellable",
                format!("an order that is {current} can no longer be cancelled"),
            ),
            e => store_error(e),
        })?;
    if let Some(event) = &event {
        let broadcasts = yixin_contracts::cancellation_broadcasts(
            &cancelled.order,
            event,
            &cancelled.withdrawn,
            now,
        );
        yixin_queue::send_all(svc.queue.as_ref(), broadcasts, "cancellation").await;
    }
    tracing::info!(order_id = %cancelled.order.id, "order cancelled by the resident");
    Ok(web::Json(view(&svc, &cancelled.order).await?))
}

/// Rates one of the caller's completed orders, once.
#[utoipa::path(
    tag = "resident",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    request_body = RatingRequest,
    responses(
        (status = 200, body = OrderView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`order_not_completed` or `already_rated`", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[post("/v1/orders/{id}/rating")]
pub async fn rate_order(
    caller: ResidentCaller,
    svc: web::Data<OrderIntake>,
    id: web::Path<String>,
    body: JsonBody<RatingRequest>,
) -> Result<web::Json<OrderView>, ApiError> {
    let body = body.into_inner();
    let rating = Rating::new(body.stars, body.comment).map_err(domain_error)?;
    let order = owned_order(&svc, &caller, &id).await?;
    let mut check = order.clone();
    check
        .rate(rating.clone(), Utc::now())
        .map_err(domain_error)?;
    let rated = match svc.store.set_rating(order.id, &rating).await {
        Ok(o) => o,
        Err(yixin_store::StoreError::StaleState { current }) => {
            return Err(ApiError::conflict(
                "order_not_completed",
                format!("only a completed order can be rated; this one is {current}"),
            ));
        }
        Err(yixin_store::StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "already_rated",
                "this order has already been rated",
            ));
        }
        Err(e) => return Err(store_error(e)),
    };
    svc.notify(rated.id).await;
    Ok(web::Json(view(&svc, &rated).await?))
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use actix_web::{App, test};
    use serde_json::{Value, json};
    use utoipa_actix_web::AppExt;
    use yixin_auth::{Authenticator, Role};
    use yixin_queue::{MemoryQueue, QueueConfig};

    use super::*;
    use crate::OrderIntakeConfig;

    fn body(phone: &str) -> Value {
        json!({
            "service_code": "infant_jaundice_test",
            "location": {"lat": 29.39, "lng": 106.32},
            "address": {"text": "福城大道 88 号", "detail": "1102"},
            "contact": {"name": "王", "phone": phone},
            "consent_version": "2026-11-30",
        })
    }

    /// Creating no longer looks the key up first: a retry that the checks
    /// now refuse (rate limit, validation) must still find its first use.
    #[actix_web::test]
    async fn a_refused_retry_is_answered_by_the_keys_first_use() {
        let store = yixin_store::testing::fresh_sqlite().await;
        let org = OrgId::from("demo");
        store.ensure_organization(&org, "Demo").await.unwrap();
        store
            .upsert_service_area(&ServiceArea::shuangfu_demo(org))
            .await
            .unwrap();
        let auth = Authenticator::hs256(
            b"0123456789abcdef0123456789abcdef-test-secret",
            Duration::from_secs(3600),
            Duration::from_secs(5),
        )
        .unwrap();
        let token = auth.mint(Role::Resident, "r-1", "demo").unwrap();
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let config = OrderIntakeConfig {
            orders_per_minute: 1,
            ..OrderIntakeConfig::default()
        };
        let intake = OrderIntake::new(
            store,
            Arc::new(MemoryQueue::new(QueueConfig::default())),
            config,
            shutdown,
        );
        let mount = intake.mount();
        let app = test::init_service(
            App::new()
                .into_utoipa_app()
                .app_data(web::Data::new(auth))
                .configure(move |cfg| mount(cfg))
                .split_for_parts()
                .0,
        )
        .await;
        let place = |key: &'static str, body: Value| {
            test::TestRequest::post()
                .uri("/v1/orders")
                .insert_header(("Authorization", format!("Bearer {token}")))
                .insert_header(("Idempotency-Key", key))
                .set_json(body)
                .to_request()
        };

        let first = test::call_service(&app, place("k1", body("13812345678"))).await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let first: Value = test::read_body_json(first).await;

        // Over the limit (one a minute), but a replay of the first request.
        let again = test::call_service(&app, place("k1", body("13812345678"))).await;
        assert_eq!(again.status(), StatusCode::OK);
        let again: Value = test::read_body_json(again).await;
        assert_eq!(again["id"], first["id"]);

        // The same key with another, invalid body: the key's conflict wins.
        let other = test::call_service(&app, place("k1", body("12"))).await;
        assert_eq!(other.status(), StatusCode::CONFLICT);
        let other: Value = test::read_body_json(other).await;
        assert_eq!(other["error"]["code"], "idempotency_conflict");

        // A new key is limited.
        let limited = test::call_service(&app, place("k2", body("13812345678"))).await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
