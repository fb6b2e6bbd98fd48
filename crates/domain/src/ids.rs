//! Identifier newtypes, so an order id can never be passed where a nurse id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh id. UUIDv7, so ids sort by creation time and index well.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The wrapped uuid.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| DomainError::InvalidId {
                    field: $field,
                    value: s.chars().take(64).collect(),
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

uuid_id!(
    /// Identifies an order.
    OrderId,
    "order_id"
);
uuid_id!(
    /// Identifies a nurse.
    NurseId,
    "nurse_id"
);
uuid_id!(
    /// Identifies one offer of one order to one nurse.
    OfferId,
    "offer_id"
);
uuid_id!(
    /// Identifies a service area.
    AreaId,
    "area_id"
);
uuid_id!(
    /// Identifies a nurse's alarm (SOS, missed check-in, silent phone).
    AlarmId,
    "alarm_id"
);

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps an id as issued by the identity provider.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// An organisation (e.g. one hospital), the `org` claim of a JWT, e.g. `"demo"`.
    OrgId
);
string_id!(
    /// A resident, the JWT `sub` of a resident.
    ResidentId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_round_trip_through_text_and_json() {
        let id = OrderId::new();
        assert_eq!(id.to_string().parse::<OrderId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), id);
    }

    #[test]
    fn new_ids_are_v7_and_distinct() {
        let a = NurseId::new();
        let b = NurseId::new();
        assert_ne!(a, b);
        assert_eq!(a.0.get_version_num(), 7);
    }

    #[test]
    fn bad_id_names_its_field() {
        let e = "nope".parse::<OfferId>().unwrap_err();
        assert_eq!(e.code(), "invalid_id");
        assert_eq!(e.field(), Some("offer_id"));
    }

    #[test]
    fn string_ids_are_transparent() {
        let org = OrgId::from("demo");
        assert_eq!(serde_json::to_string(&org).unwrap(), "\"demo\"");
        assert_eq!(org.to_string(), "demo");
        let r: ResidentId = serde_json::from_str("\"u-1\"").unwrap();
        assert_eq!(r.as_str(), "u-1");
    }
}
