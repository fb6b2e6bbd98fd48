//! Who a caller is: their [`Role`] and the [`Claims`] their token carries.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AuthError;

/// What a caller may do. Serialised lowercase (`"resident"`, `"nurse"`,
/// `"coordinator"`), in tokens and in JSON bodies alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Orders visits for themselves and sees only their own orders.
    Resident,
    /// Receives offers and works jobs; sees only their own.
    Nurse,
    /// Dispatches for one organisation and sees all of its orders and nurses.
    Coordinator,
    /// Orders for a patient who may have no phone (family doctor, grid
    /// worker 网格员, ward nurse at discharge), with the patient's or
    /// family's consent recorded; sees only the orders they placed.
    Agent,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 4] = [Role::Resident, Role::Nurse, Role::Coordinator, Role::Agent];

    /// The wire name: the same string as in tokens and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Resident => "resident",
            Role::Nurse => "nurse",
            Role::Coordinator => "coordinator",
            Role::Agent => "agent",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the three role names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`: expected resident, nurse, coordinator or agent")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    /// Exactly the wire names; no case folding, so a token and a request
    /// body can only ever spell a role one way.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// The claims of a Yixin token (see the Auth section of the API contract).
///
/// Other claims a token may carry (`jti`, `iss`, …) are ignored; these five
/// are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id: a resident, nurse or coordinator id.
    pub sub: String,
    pub role: Role,
    /// The organisation (e.g. one hospital) the caller belongs to.
    pub org: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
}

impl Claims {
    /// `Ok` when the caller has `role`, else [`AuthError::WrongRole`] (a 403).
    pub fn require_role(&self, role: Role) -> Result<(), AuthError> {
        if self.role == role {
            Ok(())
        } else {
            Err(AuthError::WrongRole {
                expected: role,
                actual: self.role,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_wire_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::Value::String(role.as_str().to_owned())
            );
            let back: Role = serde_json::from_value(serde_json::json!(role.as_str())).unwrap();
            assert_eq!(back, role);
        }
    }

    #[test]
    fn unknown_or_miscased_roles_are_refused() {
        for name in ["admin", "Nurse", "NURSE", "", " nurse"] {
            assert_eq!(name.parse::<Role>(), Err(UnknownRole(name.to_owned())));
        }
        assert!(serde_json::from_value::<Role>(serde_json::json!("admin")).is_err());
    }

    #[test]
    fn require_role_names_both_roles() {
        let claims = Claims {
            sub: "n-1".into(),
            role: Role::Nurse,
            org: "demo".into(),
            exp: 0,
            iat: 0,
        };
        assert!(claims.require_role(Role::Nurse).is_ok());
        assert!(matches!(
            claims.require_role(Role::Coordinator),
            Err(AuthError::WrongRole {
                expected: Role::Coordinator,
                actual: Role::Nurse
            })
        ));
    }
}
