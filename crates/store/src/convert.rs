//! Rows to domain values, through the domain constructors: a row that fails
//! validation becomes `StoreError::Corrupt` naming the table and the key,
//! never a panic.

use std::fmt::Display;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::prelude::Json;
use yixin_domain::{
    Address, AreaId, Category, Contact, Credentials, GeoJsonPolygon, GeoPoint, Nurse, NurseId,
    Offer, OfferId, OfferStatus, Order, OrderId, OrderStatus, OrgId, PhoneNumber, Rating,
    ResidentId, Service, ServiceArea, ShiftState, Skill, TimelineEvent, Verification, VisitRecord,
};

use crate::entity::{
    idempotency_key, nurse, nurse_credentials, nurse_location, offer, order, order_event, outbox,
    service, service_area, service_category, visit_record,
};
use crate::error::StoreError;
use crate::types::{IdempotencyRecord, LocationFix, OutboxMessage};

/// Timestamps are stored with microsecond precision (PostgreSQL's), on every
/// backend, so a value reads back the same everywhere.
pub(crate) fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

fn corrupt(table: &str, key: impl Display, what: impl Display) -> StoreError {
    StoreError::Corrupt(format!("{table} {key}: {what}"))
}

/// A JSON array of skill codes.
pub(crate) fn skills_to_json(skills: &[Skill]) -> Json {
    Json::Array(
        skills
            .iter()
            .map(|s| Json::String(s.as_str().to_owned()))
            .collect(),
    )
}

pub(crate) fn skills_from_json(
    table: &str,
    key: &str,
    json: &Json,
) -> Result<Vec<Skill>, StoreError> {
    let Json::Array(items) = json else {
        return Err(corrupt(table, key, "skills are not a JSON array"));
    };
    items
        .iter()
        .map(|item| match item {
            Json::String(s) => Skill::new(s).map_err(|e| corrupt(table, key, e)),
            other => Err(corrupt(
                table,
                key,
                format!("skill {other} is not a string"),
            )),
        })
        .collect()
}

fn u32_from(table: &str, key: &str, field: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(table, key, format!("{field} {v} out of range")))
}

pub(crate) fn category(m: service_category::Model) -> Category {
    Category {
        code: m.code,
        name_zh: m.name_zh,
        name_en: m.name_en,
        sort: m.sort,
    }
}

/// A serialisable value as JSON (the clinical columns); `null` if it cannot be.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

fn from_json<T: serde::de::DeserializeOwned + Default>(
    table: &str,
    key: &str,
    json: Option<Json>,
) -> Result<T, StoreError> {
    match json {
        None | Some(Json::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v).map_err(|e| corrupt(table, key, e)),
    }
}

pub(crate) fn service(m: service::Model) -> Result<Service, StoreError> {
    const T: &str = "services";
    Ok(Service {
        clinical: from_json(T, &m.code, m.clinical)?,
        required_skills: skills_from_json(T, &m.code, &m.required_skills)?,
        requirements: match m.requirements {
            None => Default::default(),
            Some(j) => serde_json::from_value(j).map_err(|e| corrupt(T, &m.code, e))?,
        },
        duration_min: u32_from(T, &m.code, "duration_min", m.duration_min)?,
        price_cents: u32_from(T, &m.code, "price_cents", m.price_cents)?,
        code: m.code,
        category_code: m.category_code,
        name_zh: m.name_zh,
        name_en: m.name_en,
        active: m.active,
    })
}

pub(crate) fn service_area(m: service_area::Model) -> Result<ServiceArea, StoreError> {
    const T: &str = "service_areas";
    let polygon: GeoJsonPolygon =
        serde_json::from_value(m.polygon).map_err(|e| corrupt(T, m.id, e))?;
    ServiceArea::new(AreaId(m.id), OrgId(m.org_id), m.name, polygon)
        .map_err(|e| corrupt(T, m.id, e))
}

pub(crate) fn nurse(m: nurse::Model) -> Result<Nurse, StoreError> {
    const T: &str = "nurses";
    let key = m.id.to_string();
    let name = m.name.trim();
    if name.is_empty() {
        return Err(corrupt(T, &key, "blank name"));
    }
    Ok(Nurse {
        id: NurseId(m.id),
        org_id: OrgId(m.org_id),
        name: name.to_owned(),
        phone: PhoneNumber::new(&m.phone).map_err(|e| corrupt(T, &key, e))?,
        skills: skills_from_json(T, &key, &m.skills)?,
        external_id: m.external_id,
        active: m.active,
        shift: m
            .shift_state
            .parse::<ShiftState>()
            .map_err(|e| corrupt(T, &key, e))?,
        created_at: m.created_at,
        credentials: None,
    })
}

pub(crate) fn credentials(m: nurse_credentials::Model) -> Result<Credentials, StoreError> {
    const T: &str = "nurse_credentials";
    let key = m.nurse_id.to_string();
    Ok(Credentials {
        licence_no: m.licence_no,
        first_registered_on: m.first_registered_on,
        title: m.title.parse().map_err(|e| corrupt(T, &key, e))?,
        certificates: serde_json::from_value(m.certificates).map_err(|e| corrupt(T, &key, e))?,
        verification: m
            .verification
            .parse::<Verification>()
            .map_err(|e| corrupt(T, &key, e))?,
        reviewed_by: m.reviewed_by,
        reviewed_at: m.reviewed_at,
        reject_reason: m.reject_reason,
        updated_by: m.updated_by,
        updated_at: m.updated_at,
    })
}

pub(crate) fn order(m: order::Model) -> Result<Order, StoreError> {
    const T: &str = "orders";
    let key = m.id.to_string();
    let bad = |e: yixin_domain::DomainError| corrupt(T, &key, e);
    let rating = match m.rating_stars {
        None => None,
        Some(stars) => {
            let stars = u8::try_from(stars).map_err(|_| corrupt(T, &key, "rating out of range"))?;
            Some(Rating::new(stars, m.rating_comment).map_err(bad)?)
        }
    };
    Ok(Order {
        clinical: from_json(T, &key, m.clinical)?,
        id: OrderId(m.id),
        org_id: OrgId(m.org_id),
        resident_id: ResidentId(m.resident_id),
        service_code: m.service_code,
        location: GeoPoint::new(m.lat, m.lng).map_err(bad)?,
        address: Address::new(&m.address_text, m.address_detail.as_deref()).map_err(bad)?,
        contact: Contact::new(&m.contact_name, &m.contact_phone).map_err(bad)?,
        notes: m.notes,
        scheduled_for: m.scheduled_for,
        status: m.status.parse::<OrderStatus>().map_err(bad)?,
        created_at: m.created_at,
        promised_by: m.promised_by,
        nurse_id: m.nurse_id.map(NurseId),
        eta: m.eta,
        cancel_reason: m.cancel_reason,
        rating,
        updated_at: m.updated_at,
        chained_after: m.chained_after.map(OrderId),
    })
}

pub(crate) fn visit_record(m: visit_record::Model) -> Result<VisitRecord, StoreError> {
    const T: &str = "visit_records";
    let key = format!("{} v{}", m.order_id, m.version);
    Ok(VisitRecord {
        values: serde_json::from_value(m.field_values).map_err(|e| corrupt(T, &key, e))?,
        version: u32::try_from(m.version).map_err(|_| corrupt(T, &key, "version"))?,
        order_id: OrderId(m.order_id),
        org_id: OrgId(m.org_id),
        nurse_id: NurseId(m.nurse_id),
        service_code: m.service_code,
        notes: m.notes,
        submitted_at: m.submitted_at,
    })
}

pub(crate) fn timeline_event(m: order_event::Model) -> Result<TimelineEvent, StoreError> {
    Ok(TimelineEvent {
        order_id: OrderId(m.order_id),
        status: m
            .status
            .parse::<OrderStatus>()
            .map_err(|e| corrupt("order_events", m.id, e))?,
        at: m.at,
    })
}

pub(crate) fn offer(m: offer::Model) -> Result<Offer, StoreError> {
    const T: &str = "offers";
    let key = m.id.to_string();
    Ok(Offer {
        id: OfferId(m.id),
        order_id: OrderId(m.order_id),
        nurse_id: NurseId(m.nurse_id),
        status: m
            .status
            .parse::<OfferStatus>()
            .map_err(|e| corrupt(T, &key, e))?,
        created_at: m.created_at,
        expires_at: m.expires_at,
        eta_min: u32_from(T, &key, "eta_min", m.eta_min)?,
        distance_m: u32_from(T, &key, "distance_m", m.distance_m)?,
        answered_at: m.answered_at,
        decline_reason: m.decline_reason,
        qualified_by: m
            .qualified_by
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| corrupt(T, &key, e))?,
        free_at: m.free_at,
    })
}

pub(crate) fn idempotency_record(m: idempotency_key::Model) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: m.scope,
        key: m.key,
        request_hash: m.request_hash,
        order_id: OrderId(m.order_id),
        created_at: m.created_at,
    }
}

pub(crate) fn outbox_message(m: outbox::Model) -> OutboxMessage {
    OutboxMessage {
        id: m.id,
        topic: m.topic,
        payload: m.payload,
        created_at: m.created_at,
    }
}

pub(crate) fn location_fix(m: nurse_location::Model) -> Result<LocationFix, StoreError> {
    Ok(LocationFix {
        nurse_id: NurseId(m.nurse_id),
        location: GeoPoint::new(m.lat, m.lng).map_err(|e| corrupt("nurse_locations", m.id, e))?,
        accuracy_m: m.accuracy_m,
        recorded_at: m.recorded_at,
        received_at: m.received_at,
    })
}
