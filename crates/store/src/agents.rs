//! The agent list and where agents' registered patients live. A registered
//! patient is a household member (`resident_patients`) owned by
//! [`agent_owner`]; its home is one row of `agent_patient_homes`.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;
use yixin_domain::{Agent, AgentKind, OrgId, PhoneNumber};

use crate::convert::ts;
use crate::entity::{agent, agent_patient_home};
use crate::error::StoreError;
use crate::store::Store;

/// The owner an agent's orders and registered patients are kept under, so
/// they are nobody else's and no resident's.
pub fn agent_owner(agent_id: &str) -> String {
    format!("agent:{agent_id}")
}

/// Where a registered patient lives and how to reach them (validated by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct PatientHome {
    pub phone: Option<String>,
    pub address_text: String,
    pub address_detail: Option<String>,
    pub lat: f64,
    pub lng: f64,
    pub notes: Option<String>,
}

fn agent_of(m: agent::Model) -> Result<Agent, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("agents {}: {what}", m.id));
    Ok(Agent {
        id: m.id,
        org_id: OrgId::from(m.org_id.as_str()),
        name: m.name.clone(),
        phone: PhoneNumber::new(&m.phone).map_err(|e| corrupt(e.to_string()))?,
        kind: AgentKind::parse(&m.kind).map_err(|e| corrupt(e.to_string()))?,
        active: m.active,
        created_at: m.created_at,
    })
}

fn agent_row(a: &Agent) -> agent::ActiveModel {
    agent::ActiveModel {
        id: Set(a.id),
        org_id: Set(a.org_id.as_str().to_owned()),
        name: Set(a.name.clone()),
        phone: Set(a.phone.as_str().to_owned()),
        kind: Set(a.kind.as_str().to_owned()),
        active: Set(a.active),
        created_at: Set(ts(a.created_at)),
    }
}

impl Store {
    /// Adds an agent; a phone already on the organisation's list is a `Conflict`.
    pub async fn insert_agent(&self, a: &Agent) -> Result<(), StoreError> {
        agent::Entity::insert(agent_row(a))
            .exec_without_returning(&self.db)
            .await
            .map_err(|e| StoreError::from_constraint(e, "agent"))?;
        Ok(())
    }

    /// Saves an existing agent's changes (name, phone, kind, active).
    pub async fn update_agent(&self, a: &Agent) -> Result<(), StoreError> {
        agent::Entity::update(agent_row(a))
            .exec(&self.db)
            .await
            .map_err(|e| StoreError::from_constraint(e, "agent"))?;
        Ok(())
    }

    /// The organisation's agents, oldest first.
    pub async fn agents(&self, org: &OrgId) -> Result<Vec<Agent>, StoreError> {
        agent::Entity::find()
            .filter(agent::Column::OrgId.eq(org.as_str()))
            .order_by_asc(agent::Column::CreatedAt)
            .order_by_asc(agent::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(agent_of)
            .collect()
    }

    /// One agent of the organisation (active or not).
    pub async fn agent(&self, org: &OrgId, id: Uuid) -> Result<Option<Agent>, StoreError> {
        agent::Entity::find_by_id(id)
            .filter(agent::Column::OrgId.eq(org.as_str()))
            .one(&self.db)
            .await?
            .map(agent_of)
            .transpose()
    }

    /// The active agent of the organisation's list with this phone, if any.
    pub async fn active_agent_by_phone(
        &self,
        org: &OrgId,
        phone: &PhoneNumber,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(agent::Entity::find()
            .filter(agent::Column::OrgId.eq(org.as_str()))
            .filter(agent::Column::Phone.eq(phone.as_str()))
            .filter(agent::Column::Active.eq(true))
            .one(&self.db)
            .await?
            .map(|a| a.id))
    }

    /// Whether `id` is an active agent of the organisation's list.
    pub async fn is_active_agent(&self, org: &OrgId, id: Uuid) -> Result<bool, StoreError> {
        Ok(agent::Entity::find_by_id(id)
            .filter(agent::Column::OrgId.eq(org.as_str()))
            .filter(agent::Column::Active.eq(true))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// Where a registered patient lives, if recorded.
    pub async fn patient_home(&self, patient: Uuid) -> Result<Option<PatientHome>, StoreError> {
        Ok(agent_patient_home::Entity::find_by_id(patient)
            .one(&self.db)
            .await?
            .map(|m| PatientHome {
                phone: m.phone,
                address_text: m.address_text,
                address_detail: m.address_detail,
                lat: m.lat,
                lng: m.lng,
                notes: m.notes,
            }))
    }

    /// Where each of these registered patients lives, by patient id (one query).
    pub async fn patient_homes(
        &self,
        patients: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, PatientHome>, StoreError> {
        if patients.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        Ok(agent_patient_home::Entity::find()
            .filter(agent_patient_home::Column::PatientId.is_in(patients.iter().copied()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| {
                (
                    m.patient_id,
                    PatientHome {
                        phone: m.phone,
                        address_text: m.address_text,
                        address_detail: m.address_detail,
                        lat: m.lat,
                        lng: m.lng,
                        notes: m.notes,
                    },
                )
            })
            .collect())
    }

    /// Inserts or replaces where a registered patient lives.
    pub async fn save_patient_home(
        &self,
        patient: Uuid,
        home: &PatientHome,
    ) -> Result<(), StoreError> {
        agent_patient_home::Entity::insert(agent_patient_home::ActiveModel {
            patient_id: Set(patient),
            phone: Set(home.phone.clone()),
            address_text: Set(home.address_text.clone()),
            address_detail: Set(home.address_detail.clone()),
            lat: Set(home.lat),
            lng: Set(home.lng),
            notes: Set(home.notes.clone()),
        })
        .on_conflict(
            OnConflict::column(agent_patient_home::Column::PatientId)
                .update_columns([
                    agent_patient_home::Column::Phone,
                    agent_patient_home::Column::AddressText,
                    agent_patient_home::Column::AddressDetail,
                    agent_patient_home::Column::Lat,
                    agent_patient_home::Column::Lng,
                    agent_patient_home::Column::Notes,
                ])
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| StoreError::from_constraint(e, "patient home"))?;
        Ok(())
    }
}
