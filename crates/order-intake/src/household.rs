//! `/v1/me/addresses` and `/v1/me/patients`: the resident's household —
//! saved addresses and the people they order for. Each resident sees and
//! changes only their own (another's id is a 404).

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{Datelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use yixin_auth::ResidentCaller;
use yixin_domain::GeoPoint;
use yixin_platform::{ApiError, ErrorBody, JsonBody, views::Location};
use yixin_store::{HouseholdMember, SavedAddress};

use crate::{OrderIntake, errors::store_error};

/// Most addresses, and most people, one resident keeps.
pub const MAX_PER_HOUSEHOLD: usize = 20;

/// A saved address as sent and shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddressItem {
    /// Given by the server; ignored in a request.
    #[serde(default)]
    pub id: String,
    /// A short name: 家, 父母家…; at most 20 characters.
    #[schema(example = "家", max_length = 20)]
    pub label: String,
    #[schema(example = "双福街道 福城大道 88 号", min_length = 1, max_length = 200)]
    pub text: String,
    #[serde(default)]
    #[schema(example = "3 栋 2 单元 1102", max_length = 200)]
    pub detail: Option<String>,
    pub location: Location,
}

/// Changes to a saved address: only the fields given.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct AddressPatch {
    pub label: Option<String>,
    pub text: Option<String>,
    pub detail: Option<String>,
    pub location: Option<Location>,
}

/// Someone the resident orders for, as sent and shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PatientItem {
    /// Given by the server; ignored in a request.
    #[serde(default)]
    pub id: String,
    #[schema(example = "王秀英", min_length = 1, max_length = 50)]
    pub name: String,
    /// `female` or `male`.
    #[schema(example = "female")]
    pub sex: String,
    #[schema(example = 1948, minimum = 1900)]
    pub birth_year: i32,
    /// 本人, 父亲, 母亲…; at most 20 characters.
    #[schema(example = "母亲", max_length = 20)]
    pub relation: String,
    /// Known conditions, at most 500 characters.
    #[serde(default)]
    #[schema(example = "高血压", max_length = 500)]
    pub conditions: Option<String>,
    /// Allergies, at most 500 characters.
    #[serde(default)]
    #[schema(example = "青霉素", max_length = 500)]
    pub allergies: Option<String>,
}

/// Changes to a household member: only the fields given.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct PatientPatch {
    pub name: Option<String>,
    pub sex: Option<String>,
    pub birth_year: Option<i32>,
    pub relation: Option<String>,
    pub conditions: Option<String>,
    pub allergies: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AddressList {
    pub addresses: Vec<AddressItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatientList {
    pub patients: Vec<PatientItem>,
}

fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::invalid_field(
            field,
            "invalid_length",
            format!("`{field}` must be {min} to {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

fn optional(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => text(field, v, 1, max).map(Some),
    }
}

/// Checks a saved address (pure).
pub fn check_address(
    a: &AddressItem,
) -> Result<(String, String, Option<String>, GeoPoint), ApiError> {
    let label = text("label", &a.label, 1, 20)?;
    let body = text("text", &a.text, 1, 200)?;
    let detail = optional("detail", a.detail.as_deref(), 200)?;
    let point = GeoPoint::new(a.location.lat, a.location.lng)
        .map_err(|e| ApiError::invalid_field("location", "invalid_location", e.to_string()))?;
    Ok((label, body, detail, point))
}

/// Checks a household member (pure); `this_year` bounds the birth year.
pub fn check_patient(p: &PatientItem, this_year: i32) -> Result<PatientItem, ApiError> {
    let sex = match p.sex.trim() {
        s @ ("female" | "male") => s.to_owned(),
        _ => {
            return Err(ApiError::invalid_field(
                "sex",
                "invalid_sex",
                "`sex` is `female` or `male`",
            ));
        }
    };
    if !(1900..=this_year).contains(&p.birth_year) {
        return Err(ApiError::invalid_field(
            "birth_year",
            "invalid_birth_year",
            format!("`birth_year` is between 1900 and {this_year}"),
        ));
    }
    Ok(PatientItem {
        id: p.id.clone(),
        name: text("name", &p.name, 1, 50)?,
        sex,
        birth_year: p.birth_year,
        relation: text("relation", &p.relation, 1, 20)?,
        conditions: optional("conditions", p.conditions.as_deref(), 500)?,
        allergies: optional("allergies", p.allergies.as_deref(), 500)?,
    })
}

fn address_item(a: SavedAddress) -> AddressItem {
    AddressItem {
        id: a.id.to_string(),
        label: a.label,
        text: a.text,
        detail: a.detail,
        location: Location {
            lat: a.lat,
            lng: a.lng,
        },
    }
}

pub(crate) fn patient_item(p: HouseholdMember) -> PatientItem {
    PatientItem {
        id: p.id.to_string(),
        name: p.name,
        sex: p.sex,
        birth_year: p.birth_year,
        relation: p.relation,
        conditions: p.conditions,
        allergies: p.allergies,
    }
}

fn item_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("no such item"))
}

fn too_many() -> ApiError {
    ApiError::conflict(
        "household_full",
        format!("at most {MAX_PER_HOUSEHOLD} entries; delete one first"),
    )
}

/// The caller's saved addresses, oldest first.
#[utoipa::path(tag = "resident", security(("bearer" = [])),
    responses((status = 200, body = AddressList), (status = 403, body = ErrorBody)))]
#[get("/v1/me/addresses")]
pub async fn list_addresses(
    caller: ResidentCaller,
    svc: web::Data<OrderIntake>,
) -> Result<web::Json<AddressList>, ApiError> {
    let addresses = svc
        .store
        .addresses(&caller.org, &caller.sub)
        .await
        .map_err(store_error)?;
    Ok(web::Json(AddressList {
        addresses: addresses.into_iter().map(address_item).collect(),
    }))
}

/// Saves an address.
#[utoipa::path(tag = "resident", security(("bearer" = [])), request_body = AddressItem,
    responses((status = 201, body = AddressItem), (status = 403, body = ErrorBody),
        (status = 409, description = "`household_full`", body = ErrorBody)))]
#[post("/v1/me/addresses")]
pub async fn add_address(
    caller: ResidentCaller,
    svc: web::Data<OrderIntake>,
    body: JsonBody<AddressItem>,
) -> Result<HttpResponse, ApiError> {
    let (label, text, detail, point) = check_address(&body.into_inner())?;
    let existing = svc
        .store
        .addresses(&caller.org, &caller.sub)
        .await
        .map_err(store_error)?;
    if existing.len() >= MAX_PER_HOUSEHOLD {
        return Err(too_many());
    }
    let saved = SavedAddress {
        id: Uuid::now_v7(),
        label,
        text,
        detail,
        lat: point.lat(),
        lng: point.lng(),
        created_at: Utc::now(),
    };
    svc.store
        .save_address(&caller.org, &caller.sub, &saved)
        .await
        .map_err(store_error)?;
    Ok(HttpResponse::Created().json(address_item(saved)))
}

/// Changes a saved address.
#[utoipa::path(tag = "resident", security(("bearer" = [])), request_body = AddressPatch,
    params(("id" = String, Path)),
    responses((status = 200, body = AddressItem), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
#[patch("/v1/me/addresses/{id}")]
pub async fn change_address(
    caller: ResidentCaller,
    svc: web::Data<OrderIntake>,
    path: web::Path<String>,
    body: JsonBody<AddressPatch>,
) -> Result<web::Json<AddressItem>, ApiError> {
    let id = item_id(&path)?;
    let current = svc
        .store
        .address(&caller.org, &caller.sub, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found("no such address"))?;
    let patch = body.into_inner();
    let mut item = address_item(current.clone());
    if let Some(v) = patch.label {
        item.label = v;
    }
    if let Some(v) = patch.text {
        item.text = v;
    }
    if let Some(v) = patch.detail {
        item.detail = Some(v);
    }
    if let Some(v) = patch.location {
        item.location = v;
    }
    let (label, text, detail, point) = check_address(&item)?;
    let saved = SavedAddress {
        label,
        text,
        detail,
        lat: point.lat(),
        lng: point.lng(),
        ..current
    };
    svc.store
        .save_address(&caller.org, &caller.sub, &saved)
        .await
        .map_err(store_error)?;
    Ok(web::Json(address_item(saved)))
}

/// Deletes a saved address.
#[utoipa::path(tag = "resident", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/v1/me/addresses/{id}")]
pub async fn delete_address(
    caller: ResidentCaller,
    svc: web::Data<OrderIntake>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = item_id(&path)?;
    if svc
        .store
        .delete_address(&caller.org, &caller.sub, id)
        .await
        .map_err(store_error)?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("no such address"))
    }
}

/// The people the caller orders for, oldest first.
#[utoipa::path(tag = "resident", security(("bearer" = [])),
    responses((status = 200, body = PatientList), (status = 403, body = ErrorBody)))]
#[get("/v1/me/patients")]
pub async fn list_patients(
    caller: ResidentCaller,
    svc: web::Data<OrderIntake>,
) -> Result<web::Json<PatientList>, ApiError> {
    let patients = svc
        .store
        .household(&caller.org, &caller.sub)
        .await
        .map_err(store_error)?;
    Ok(web::Json(PatientList {
        patients: patients.into_iter().map(patient_item).collect(),
    }))
}

/// Adds someone the caller orders for.
#[utoipa::path(tag = "resident", security(("bearer" = [])), request_body = PatientItem,
    responses((status = 201, body = PatientItem), (status = 403, body = ErrorBody),
        (status = 409, description = "`household_full`", body = ErrorBody)))]
#[post("/v1/me/patients")]
pub async fn add_patient(
    caller: ResidentCaller,
    svc: web::Data<OrderIntake>,
    body: JsonBody<PatientItem>,
) -> Result<HttpResponse, ApiError> {
    let p = check_patient(&body.into_inner(), Utc::now().year())?;
    let existing = svc
        .store
        .household(&caller.org, &caller.sub)
        .await
        .map_err(store_error)?;
    if existing.len() >= MAX_PER_HOUSEHOLD {
        return Err(too_many());
    }
    let member = HouseholdMember {
        id: Uuid::now_v7(),
        name: p.name,
        sex: p.sex,
        birth_year: p.birth_year,
        relation: p.relation,
        conditions: p.conditions,
        allergies: p.allergies,
        created_at: Utc::now(),
    };
    svc.store
        .save_household_member(&caller.org, &caller.sub, &member)
        .await
        .map_err(store_error)?;
    Ok(HttpResponse::Created().json(patient_item(member)))
}

/// Changes a household member.
#[utoipa::path(tag = "resident", security(("bearer" = [])), request_body = PatientPatch,
    params(("id" = String, Path)),
    responses((status = 200, body = PatientItem), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
#[patch("/v1/me/patients/{id}")]
pub async fn change_patient(
    caller: ResidentCaller,
    svc: web::Data<OrderIntake>,
    path: web::Path<String>,
    body: JsonBody<PatientPatch>,
) -> Result<web::Json<PatientItem>, ApiError> {
    let id = item_id(&path)?;
    let current = svc
        .store
        .household_member(&caller.org, &caller.sub, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found("no such person"))?;
    let patch = body.into_inner();
    let mut item = patient_item(current.clone());
    if let Some(v) = patch.name {
        item.name = v;
    }
    if let Some(v) = patch.sex {
        item.sex = v;
    }
    if let Some(v) = patch.birth_year {
        item.birth_year = v;
    }
    if let Some(v) = patch.relation {
        item.relation = v;
    }
    if let Some(v) = patch.conditions {
        item.conditions = Some(v);
    }
    if let Some(v) = patch.allergies {
        item.allergies = Some(v);
    }
    let p = check_patient(&item, Utc::now().year())?;
    let member = HouseholdMember {
        name: p.name,
        sex: p.sex,
        birth_year: p.birth_year,
        relation: p.relation,
        conditions: p.conditions,
        allergies: p.allergies,
        ..current
    };
    svc.store
        .save_household_member(&caller.org, &caller.sub, &member)
        .await
        .map_err(store_error)?;
    Ok(web::Json(patient_item(member)))
}

/// Removes a household member (orders placed for them keep their record).
#[utoipa::path(tag = "resident", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/v1/me/patients/{id}")]
pub async fn delete_patient(
    caller: ResidentCaller,
    svc: web::Data<OrderIntake>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = item_id(&path)?;
    if svc
        .store
        .delete_household_member(&caller.org, &caller.sub, id)
        .await
        .map_err(store_error)?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("no such person"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn person() -> PatientItem {
        PatientItem {
            id: String::new(),
            name: " 王秀英 ".to_owned(),
            sex: "female".to_owned(),
            birth_year: 1948,
            relation: "母亲".to_owned(),
            conditions: Some("  ".to_owned()),
            allergies: Some("青霉素".to_owned()),
        }
    }

    #[test]
    fn a_household_member_is_checked_and_trimmed() {
        let p = check_patient(&person(), 2026).unwrap();
        assert_eq!(p.name, "王秀英");
        assert_eq!(p.conditions, None);
        for (change, field) in [
            (
                PatientItem {
                    sex: "x".into(),
                    ..person()
                },
                "sex",
            ),
            (
                PatientItem {
                    birth_year: 1899,
                    ..person()
                },
                "birth_year",
            ),
            (
                PatientItem {
                    birth_year: 2027,
                    ..person()
                },
                "birth_year",
            ),
            (
                PatientItem {
                    name: " ".into(),
                    ..person()
                },
                "name",
            ),
            (
                PatientItem {
                    relation: "x".repeat(21),
                    ..person()
                },
                "relation",
            ),
        ] {
            assert_eq!(
                check_patient(&change, 2026).unwrap_err().field(),
                Some(field)
            );
        }
    }

    #[test]
    fn an_address_needs_text_and_a_valid_point() {
        let a = AddressItem {
            id: String::new(),
            label: "家".into(),
            text: "福城大道 88 号".into(),
            detail: None,
            location: Location {
                lat: 29.39,
                lng: 106.32,
            },
        };
        assert!(check_address(&a).is_ok());
        let bad = AddressItem {
            location: Location {
                lat: 91.0,
                lng: 0.0,
            },
            ..a.clone()
        };
        assert_eq!(check_address(&bad).unwrap_err().field(), Some("location"));
        let bad = AddressItem {
            text: String::new(),
            ..a
        };
        assert_eq!(check_address(&bad).unwrap_err().field(), Some("text"));
    }
}
