//! `/v1/agent/patients`: an agent's registered patients — people she orders
//! for who may have no smartphone. A registered patient is a household
//! member (the resident household model, [`crate::household`]) owned by
//! `agent:<agent id>`, plus where they live (phone optional, address,
//! point, notes). Each agent sees and changes only her own: another
//! agent's patient is a 404, and an order naming one is refused.
//!
//! Every route (and every order an agent places or reads) first checks
//! that the token's agent is still an active agent of the organisation's
//! list ([`listed_agent`]): a deactivated agent's unexpired token stops
//! working at once.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{Datelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use yixin_auth::{AgentCaller, Claims};
use yixin_domain::{GeoPoint, OrgId, PhoneNumber};
use yixin_platform::{ApiError, ErrorBody, JsonBody, views::Location};
use yixin_store::{HouseholdMember, PatientHome, agent_owner};

use crate::household::{PatientItem, check_patient};
use crate::orders::AddressBody;
use crate::{OrderIntake, errors::store_error};

/// Most registered patients one agent keeps.
pub const MAX_AGENT_PATIENTS: usize = 500;

/// What a registered patient's household `relation` says: the agent's patient.
pub const AGENT_PATIENT_RELATION: &str = "签约患者";

/// The owner (`agent:<id>`) a token of role `agent` acts as, once its agent
/// is checked to be an active agent of the organisation's list; 403
/// `agent_not_listed` otherwise (never listed, or deactivated).
pub(crate) async fn listed_agent(svc: &OrderIntake, claims: &Claims) -> Result<String, ApiError> {
    let refused = || ApiError::ForbiddenAs {
        code: "agent_not_listed".into(),
        message: "this agent is not an active agent of the organisation's list".to_owned(),
    };
    let id = Uuid::parse_str(&claims.sub).map_err(|_| refused())?;
    if svc
        .store
        .is_active_agent(&OrgId::from(claims.org.as_str()), id)
        .await
        .map_err(store_error)?
    {
        Ok(agent_owner(&claims.sub))
    } else {
        Err(refused())
    }
}

/// A registered patient as sent and shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentPatient {
    /// Given by the server; ignored in a request.
    #[serde(default)]
    pub id: String,
    #[schema(example = "张大爷", min_length = 1, max_length = 50)]
    pub name: String,
    /// `female` or `male`.
    #[schema(example = "male")]
    pub sex: String,
    #[schema(example = 1941, minimum = 1900)]
    pub birth_year: i32,
    /// The patient's own phone, if they have one.
    #[serde(default)]
    #[schema(example = "13812345678", max_length = 40)]
    pub phone: Option<String>,
    pub address: AddressBody,
    pub location: Location,
    /// Known conditions, at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub conditions: Option<String>,
    /// Allergies, at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub allergies: Option<String>,
    /// For the nurse: how to get in, who to call…; at most 500 characters.
    #[serde(default)]
    #[schema(example = "独居，钥匙在邻居 302 家", max_length = 500)]
    pub notes: Option<String>,
}

/// Changes to a registered patient: only the fields given.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatientPatch {
    pub name: Option<String>,
    pub sex: Option<String>,
    pub birth_year: Option<i32>,
    /// An empty string removes it.
    pub phone: Option<String>,
    pub address: Option<AddressBody>,
    pub location: Option<Location>,
    pub conditions: Option<String>,
    pub allergies: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentPatientList {
    pub patients: Vec<AgentPatient>,
}

fn trimmed(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.chars().count() > max => Err(ApiError::invalid_field(
            field,
            "invalid_length",
            format!("`{field}` must be at most {max} characters"),
        )),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

/// Checks a registered patient (pure): the household part as for a
/// resident's household, and the home.
pub fn check_agent_patient(
    p: &AgentPatient,
    this_year: i32,
) -> Result<(PatientItem, PatientHome), ApiError> {
    let member = check_patient(
        &PatientItem {
            id: p.id.clone(),
            name: p.name.clone(),
            sex: p.sex.clone(),
            birth_year: p.birth_year,
            relation: AGENT_PATIENT_RELATION.to_owned(),
            conditions: p.conditions.clone(),
            allergies: p.allergies.clone(),
        },
        this_year,
    )?;
    let phone = match p.phone.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(raw) => Some(
            PhoneNumber::new(raw)
                .map_err(|e| ApiError::invalid_field("phone", "invalid_phone", e.to_string()))?
                .as_str()
                .to_owned(),
        ),
    };
    let address_text = trimmed("address.text", Some(&p.address.text), 200)?.ok_or_else(|| {
        ApiError::invalid_field(
            "address.text",
            "invalid_length",
            "`address.text` is required",
        )
    })?;
    let address_detail = trimmed("address.detail", p.address.detail.as_deref(), 200)?;
    let point = GeoPoint::new(p.location.lat, p.location.lng)
        .map_err(|e| ApiError::invalid_field("location", "invalid_location", e.to_string()))?;
    let notes = trimmed("notes", p.notes.as_deref(), 500)?;
    Ok((
        member,
        PatientHome {
            phone,
            address_text,
            address_detail,
            lat: point.lat(),
            lng: point.lng(),
            notes,
        },
    ))
}

fn shown(m: &HouseholdMember, home: Option<PatientHome>) -> AgentPatient {
    let home = home.unwrap_or(PatientHome {
        phone: None,
        address_text: String::new(),
        address_detail: None,
        lat: 0.0,
        lng: 0.0,
        notes: None,
    });
    AgentPatient {
        id: m.id.to_string(),
        name: m.name.clone(),
        sex: m.sex.clone(),
        birth_year: m.birth_year,
        phone: home.phone,
        address: AddressBody {
            text: home.address_text,
            detail: home.address_detail,
        },
        location: Location {
            lat: home.lat,
            lng: home.lng,
        },
        conditions: m.conditions.clone(),
        allergies: m.allergies.clone(),
        notes: home.notes,
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("no such patient")
}

/// One of the agent's registered patients with their home, or 404.
pub(crate) async fn own_patient(
    svc: &OrderIntake,
    org: &str,
    owner: &str,
    raw_id: &str,
) -> Result<(HouseholdMember, Option<PatientHome>), ApiError> {
    let id = Uuid::parse_str(raw_id.trim()).map_err(|_| not_found())?;
    let member = svc
        .store
        .household_member(org, owner, id)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    let home = svc.store.patient_home(id).await.map_err(store_error)?;
    Ok((member, home))
}

/// The agent's registered patients, oldest first.
#[utoipa::path(tag = "resident", security(("bearer" = [])),
    responses((status = 200, body = AgentPatientList),
        (status = 403, description = "Not an agent, or `agent_not_listed`", body = ErrorBody)))]
#[get("/v1/agent/patients")]
pub async fn list_agent_patients(
    caller: AgentCaller,
    svc: web::Data<OrderIntake>,
) -> Result<web::Json<AgentPatientList>, ApiError> {
    let owner = listed_agent(&svc, &caller).await?;
    let members = svc
        .store
        .household(&caller.org, &owner)
        .await
        .map_err(store_error)?;
    let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
    let mut homes = svc.store.patient_homes(&ids).await.map_err(store_error)?;
    let patients = members
        .iter()
        .map(|m| shown(m, homes.remove(&m.id)))
        .collect();
    Ok(web::Json(AgentPatientList { patients }))
}

/// Registers a patient in the agent's list.
#[utoipa::path(tag = "resident", security(("bearer" = [])), request_body = AgentPatient,
    responses((status = 201, body = AgentPatient),
        (status = 403, description = "Not an agent, or `agent_not_listed`", body = ErrorBody),
        (status = 409, description = "`patient_list_full`", body = ErrorBody)))]
#[post("/v1/agent/patients")]
pub async fn add_agent_patient(
    caller: AgentCaller,
    svc: web::Data<OrderIntake>,
    body: JsonBody<AgentPatient>,
) -> Result<HttpResponse, ApiError> {
    let owner = listed_agent(&svc, &caller).await?;
    let (p, home) = check_agent_patient(&body.into_inner(), Utc::now().year())?;
    let existing = svc
        .store
        .household(&caller.org, &owner)
        .await
        .map_err(store_error)?;
    if existing.len() >= MAX_AGENT_PATIENTS {
        return Err(ApiError::conflict(
            "patient_list_full",
            format!("at most {MAX_AGENT_PATIENTS} patients; delete one first"),
        ));
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
        .save_household_member(&caller.org, &owner, &member)
        .await
        .map_err(store_error)?;
    svc.store
        .save_patient_home(member.id, &home)
        .await
        .map_err(store_error)?;
    Ok(HttpResponse::Created().json(shown(&member, Some(home))))
}

/// Changes one of the agent's registered patients.
#[utoipa::path(tag = "resident", security(("bearer" = [])), request_body = AgentPatientPatch,
    params(("id" = String, Path)),
    responses((status = 200, body = AgentPatient),
        (status = 403, description = "Not an agent, or `agent_not_listed`", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
#[patch("/v1/agent/patients/{id}")]
pub async fn change_agent_patient(
    caller: AgentCaller,
    svc: web::Data<OrderIntake>,
    path: web::Path<String>,
    body: JsonBody<AgentPatientPatch>,
) -> Result<web::Json<AgentPatient>, ApiError> {
    let owner = listed_agent(&svc, &caller).await?;
    let (current, home) = own_patient(&svc, &caller.org, &owner, &path).await?;
    let patch = body.into_inner();
    let mut item = shown(&current, home);
    if let Some(v) = patch.name {
        item.name = v;
    }
    if let Some(v) = patch.sex {
        item.sex = v;
    }
    if let Some(v) = patch.birth_year {
        item.birth_year = v;
    }
    if let Some(v) = patch.phone {
        item.phone = Some(v);
    }
    if let Some(v) = patch.address {
        item.address = v;
    }
    if let Some(v) = patch.location {
        item.location = v;
    }
    if let Some(v) = patch.conditions {
        item.conditions = Some(v);
    }
    if let Some(v) = patch.allergies {
        item.allergies = Some(v);
    }
    if let Some(v) = patch.notes {
        item.notes = Some(v);
    }
    let (p, home) = check_agent_patient(&item, Utc::now().year())?;
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
        .save_household_member(&caller.org, &owner, &member)
        .await
        .map_err(store_error)?;
    svc.store
        .save_patient_home(member.id, &home)
        .await
        .map_err(store_error)?;
    Ok(web::Json(shown(&member, Some(home))))
}

/// Removes one of the agent's registered patients (orders placed for them
/// keep their record and consent).
#[utoipa::path(tag = "resident", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204),
        (status = 403, description = "Not an agent, or `agent_not_listed`", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
#[delete("/v1/agent/patients/{id}")]
pub async fn delete_agent_patient(
    caller: AgentCaller,
    svc: web::Data<OrderIntake>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let owner = listed_agent(&svc, &caller).await?;
    let id = Uuid::parse_str(path.trim()).map_err(|_| not_found())?;
    if svc
        .store
        .delete_household_member(&caller.org, &owner, id)
        .await
        .map_err(store_error)?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(not_found())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn patient() -> AgentPatient {
        AgentPatient {
            id: String::new(),
            name: " 张大爷 ".into(),
            sex: "male".into(),
            birth_year: 1941,
            phone: Some(" ".into()),
            address: AddressBody {
                text: "福城大道 88 号".into(),
                detail: None,
            },
            location: Location {
                lat: 29.39,
                lng: 106.32,
            },
            conditions: None,
            allergies: None,
            notes: Some(" 独居 ".into()),
        }
    }

    #[test]
    fn a_registered_patient_needs_no_phone_but_an_address_and_a_point() {
        let (member, home) = check_agent_patient(&patient(), 2026).unwrap();
        assert_eq!(member.name, "张大爷");
        assert_eq!(member.relation, AGENT_PATIENT_RELATION);
        assert_eq!(home.phone, None);
        assert_eq!(home.notes.as_deref(), Some("独居"));
        let bad_phone = AgentPatient {
            phone: Some("12345".into()),
            ..patient()
        };
        assert_eq!(
            check_agent_patient(&bad_phone, 2026).unwrap_err().field(),
            Some("phone")
        );
        let no_address = AgentPatient {
            address: AddressBody {
                text: " ".into(),
                detail: None,
            },
            ..patient()
        };
        assert_eq!(
            check_agent_patient(&no_address, 2026).unwrap_err().field(),
            Some("address.text")
        );
        let bad_point = AgentPatient {
            location: Location {
                lat: 95.0,
                lng: 0.0,
            },
            ..patient()
        };
        assert_eq!(
            check_agent_patient(&bad_point, 2026).unwrap_err().field(),
            Some("location")
        );
    }
}
