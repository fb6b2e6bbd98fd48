//! Agents: people who order for someone else (family doctor, grid worker
//! 网格员, ward nurse at discharge), on an organisation-managed list. A
//! token of role `agent` acts for the list entry whose id is its `sub`,
//! and only while that entry is active.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DomainError, OrgId, PhoneNumber};

/// Longest agent name, in characters.
pub const AGENT_NAME_MAX_CHARS: usize = 50;

/// What kind of agent: who orders for someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// 家庭医生: a family doctor of the patient's contract.
    FamilyDoctor,
    /// 网格员: the community grid worker.
    GridWorker,
    /// A ward nurse arranging care at discharge.
    WardNurse,
}

impl AgentKind {
    pub const ALL: [AgentKind; 3] = [Self::FamilyDoctor, Self::GridWorker, Self::WardNurse];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FamilyDoctor => "family_doctor",
            Self::GridWorker => "grid_worker",
            Self::WardNurse => "ward_nurse",
        }
    }

    /// Parses the stored or sent name; anything else is `InvalidStatus` on `kind`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == raw.trim())
            .ok_or_else(|| DomainError::InvalidStatus {
                field: "kind",
                value: raw.to_owned(),
            })
    }
}

/// One entry of an organisation's agent list.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: Uuid,
    pub org_id: OrgId,
    pub name: String,
    pub phone: PhoneNumber,
    pub kind: AgentKind,
    /// `false`: cannot sign in, and her tokens no longer place orders.
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// Trims and checks an agent's name.
pub fn agent_name(raw: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(DomainError::Required { field: "name" });
    }
    if name.chars().count() > AGENT_NAME_MAX_CHARS {
        return Err(DomainError::TooLong {
            field: "name",
            max: AGENT_NAME_MAX_CHARS,
        });
    }
    Ok(name.to_owned())
}

impl Agent {
    /// A new, active agent.
    pub fn new(
        org_id: OrgId,
        name: &str,
        phone: PhoneNumber,
        kind: AgentKind,
        now: DateTime<Utc>,
    ) -> Result<Self, DomainError> {
        Ok(Self {
            id: Uuid::now_v7(),
            org_id,
            name: agent_name(name)?,
            phone,
            kind,
            active: true,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_refused() {
        for k in AgentKind::ALL {
            assert_eq!(AgentKind::parse(k.as_str()).unwrap(), k);
        }
        assert!(AgentKind::parse("resident").is_err());
    }

    #[test]
    fn a_name_is_required_and_bounded() {
        let phone = PhoneNumber::new("13800138000").unwrap();
        let org = OrgId::from("demo");
        let a = Agent::new(
            org.clone(),
            " 李医生 ",
            phone.clone(),
            AgentKind::FamilyDoctor,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(a.name, "李医生");
        assert!(a.active);
        assert!(
            Agent::new(
                org.clone(),
                " ",
                phone.clone(),
                AgentKind::GridWorker,
                Utc::now()
            )
            .is_err()
        );
        assert!(
            Agent::new(
                org,
                &"x".repeat(51),
                phone,
                AgentKind::WardNurse,
                Utc::now()
            )
            .is_err()
        );
    }
}
