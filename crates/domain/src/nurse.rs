//! Nurses on the roster.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::Skill;
use crate::credentials::Credentials;
use crate::error::DomainError;
use crate::ids::{NurseId, OrgId};
use crate::phone::PhoneNumber;

/// Longest nurse name, in characters.
pub const NURSE_NAME_MAX_CHARS: usize = 50;
/// Longest external id (an identity provider's subject), in characters.
pub const EXTERNAL_ID_MAX_CHARS: usize = 128;

/// An identity provider's own subject for a roster nurse, checked: trimmed,
/// 1 to [`EXTERNAL_ID_MAX_CHARS`] characters, no whitespace or control
/// characters inside (it is compared exactly with a token's `sub`).
pub fn external_id(raw: &str) -> Result<String, DomainError> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(DomainError::Required {
            field: "external_id",
        });
    }
    if id.chars().count() > EXTERNAL_ID_MAX_CHARS {
        return Err(DomainError::TooLong {
            field: "external_id",
            max: EXTERNAL_ID_MAX_CHARS,
        });
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        // No spaces or control characters: it is compared exactly with a token's `sub`.
        return Err(DomainError::InvalidId {
            field: "external_id",
            value: id.chars().take(32).collect(),
        });
    }
    Ok(id.to_owned())
}

/// Whether a nurse is working (and so may receive offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShiftState {
    #[default]
    Off,
    On,
}

impl ShiftState {
    /// `"off"` or `"on"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On => "on",
        }
    }
}

impl fmt::Display for ShiftState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ShiftState {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "on" => Ok(Self::On),
            _ => Err(DomainError::InvalidStatus {
                field: "state",
                value: s.chars().take(32).collect(),
            }),
        }
    }
}

/// A nurse of one organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nurse {
    pub id: NurseId,
    pub org_id: OrgId,
    pub name: String,
    pub phone: PhoneNumber,
    /// Sorted and without duplicates when built with [`Nurse::new`].
    pub skills: Vec<Skill>,
    /// The identity provider's subject for this nurse, if the organisation
    /// signs nurses in with its own tokens (unique within the organisation).
    #[serde(default)]
    pub external_id: Option<String>,
    /// Inactive nurses stay on record but never receive work.
    pub active: bool,
    pub shift: ShiftState,
    pub created_at: DateTime<Utc>,
    /// Licence, title, certificates and their review; `None` until a
    /// coordinator enters them (such a nurse is never offered work).
    #[serde(default)]
    pub credentials: Option<Credentials>,
}

impl Nurse {
    /// A new, active, off-shift nurse. The name is trimmed and required
    /// (at most [`NURSE_NAME_MAX_CHARS`]); at least one skill is required.
    pub fn new(
        org_id: OrgId,
        name: &str,
        phone: PhoneNumber,
        skills: Vec<Skill>,
        now: DateTime<Utc>,
    ) -> Result<Nurse, DomainError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(DomainError::Required { field: "name" });
        }
        if name.chars().count() > NURSE_NAME_MAX_CHARS {
            return Err(DomainError::TooLong {
                field: "name",
                max: NURSE_NAME_MAX_CHARS,
            });
        }
        let mut skills = skills;
        skills.sort();
        skills.dedup();
        if skills.is_empty() {
            return Err(DomainError::Required { field: "skills" });
        }
        Ok(Nurse {
            id: NurseId::new(),
            org_id,
            name: name.to_owned(),
            phone,
            skills,
            external_id: None,
            active: true,
            shift: ShiftState::Off,
            created_at: now,
            credentials: None,
        })
    }

    /// Whether the nurse holds every one of `required` (an empty list is always met).
    pub fn has_skills(&self, required: &[Skill]) -> bool {
        required.iter().all(|s| self.skills.contains(s))
    }

    /// The skills of `required` the nurse lacks, for a `missing_skills` error.
    pub fn missing_skills(&self, required: &[Skill]) -> Vec<Skill> {
        required
            .iter()
            .filter(|s| !self.skills.contains(s))
            .cloned()
            .collect()
    }

    /// `missing_skills` unless the nurse holds every one of `required`.
    pub fn check_skills(&self, required: &[Skill]) -> Result<(), DomainError> {
        let missing = self.missing_skills(required);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(DomainError::MissingSkills { missing })
        }
    }

    /// Active and on shift: may be offered work (freshness of the position and
    /// whether the nurse is busy are the dispatcher's business).
    pub fn is_working(&self) -> bool {
        self.active && self.shift == ShiftState::On
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skills(codes: &[&str]) -> Vec<Skill> {
        codes.iter().map(|c| Skill::new(c).unwrap()).collect()
    }

    fn nurse() -> Nurse {
        Nurse::new(
            OrgId::from("demo"),
            " 李护士 ",
            PhoneNumber::new("13912345678").unwrap(),
            skills(&["wound_care", "catheter", "wound_care"]),
            DateTime::from_timestamp(1_740_000_000, 0).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn new_nurse_defaults() {
        let n = nurse();
        assert_eq!(n.name, "李护士");
        assert_eq!(n.skills, skills(&["catheter", "wound_care"]));
        assert!(n.active);
        assert_eq!(n.shift, ShiftState::Off);
        assert!(!n.is_working());
    }

    #[test]
    fn new_nurse_validation() {
        let phone = PhoneNumber::new("13912345678").unwrap();
        let now = DateTime::from_timestamp(0, 0).unwrap();
        let org = OrgId::from("demo");
        let e = Nurse::new(org.clone(), " ", phone.clone(), skills(&["picc"]), now).unwrap_err();
        assert_eq!(e.field(), Some("name"));
        let e = Nurse::new(org.clone(), "a", phone.clone(), vec![], now).unwrap_err();
        assert_eq!((e.code(), e.field()), ("required", Some("skills")));
        let e = Nurse::new(org, &"a".repeat(51), phone, skills(&["picc"]), now).unwrap_err();
        assert_eq!(e.code(), "too_long");
    }

    #[test]
    fn external_ids_are_trimmed_and_checked() {
        assert_eq!(external_id(" idp|42 ").unwrap(), "idp|42");
        assert_eq!(external_id("  ").unwrap_err().code(), "required");
        assert_eq!(
            external_id(&"x".repeat(129)).unwrap_err().field(),
            Some("external_id")
        );
        assert!(external_id("a b").is_err());
        assert!(external_id("a\u{7}").is_err());
    }

    #[test]
    fn skill_matching() {
        let n = nurse();
        assert!(n.has_skills(&[]));
        assert!(n.has_skills(&skills(&["catheter"])));
        assert!(n.has_skills(&skills(&["wound_care", "catheter"])));
        assert!(!n.has_skills(&skills(&["catheter", "picc"])));
        assert_eq!(
            n.missing_skills(&skills(&["picc", "catheter"])),
            skills(&["picc"])
        );
        assert_eq!(
            n.check_skills(&skills(&["picc"])).unwrap_err().code(),
            "missing_skills"
        );
    }

    #[test]
    fn shift_state_text_and_json() {
        for (s, name) in [(ShiftState::Off, "off"), (ShiftState::On, "on")] {
            assert_eq!(s.as_str(), name);
            assert_eq!(name.parse::<ShiftState>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(
            "ON".parse::<ShiftState>().unwrap_err().field(),
            Some("state")
        );
    }

    #[test]
    fn nurse_serde_round_trip() {
        let mut n = nurse();
        n.shift = ShiftState::On;
        let json = serde_json::to_string(&n).unwrap();
        assert!(json.contains("\"shift\":\"on\""));
        assert!(json.contains("\"created_at\":\"2025-02-19T21:20:00Z\""));
        assert_eq!(serde_json::from_str::<Nurse>(&json).unwrap(), n);
    }
}
