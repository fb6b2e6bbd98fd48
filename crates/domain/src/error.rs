//! The one error type of the domain core.

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::ids::OfferId;
use crate::offer::OfferStatus;
use crate::order::OrderStatus;

/// Why a domain rule refused an input or an operation.
///
/// Every variant has a stable snake_case [`code`](DomainError::code) (the same
/// string travels in HTTP error bodies and WebSocket error frames) and, where
/// one input field is to blame, names it through [`field`](DomainError::field).
/// Serialises as `{"code", "message", "field"?}`, the body of the API's
/// `error` object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// A latitude or longitude outside its range, NaN or infinite.
    #[error("{field} must be a finite number between {min} and {max}, got {value}")]
    InvalidCoordinate {
        /// `"lat"` or `"lng"`.
        field: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },

    /// Not a mainland China mobile number.
    #[error("invalid phone number: {reason}")]
    InvalidPhone { reason: &'static str },

    /// A skill code that is not lowercase ascii letters, digits and `_`, 1 to 40 long.
    #[error("invalid skill code {value:?}: {reason}")]
    InvalidSkill { value: String, reason: &'static str },

    /// Stars outside 1..=5 or a comment that is too long.
    #[error("invalid rating: {reason}")]
    InvalidRating {
        /// `"stars"` or `"comment"`.
        field: &'static str,
        reason: &'static str,
    },

    /// A service-area polygon that is not a valid, closed, simple GeoJSON polygon.
    #[error("invalid polygon: {reason}")]
    InvalidPolygon { reason: String },

    /// A required text field is missing or blank.
    #[error("{field} is required")]
    Required { field: &'static str },

    /// A text field longer than its limit (counted in characters, not bytes).
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },

    /// A `scheduled_for` time that cannot be booked.
    #[error("invalid scheduled time: {reason}")]
    InvalidSchedule { reason: &'static str },

    /// An identifier that does not parse.
    #[error("{field} is not a valid identifier: {value:?}")]
    InvalidId { field: &'static str, value: String },

    /// A status (or other enumerated value) that does not exist.
    #[error("{field} has no value {value:?}")]
    InvalidStatus { field: &'static str, value: String },

    /// The order state machine does not allow this step.
    #[error("an order cannot go from {from} to {to}")]
    IllegalTransition { from: OrderStatus, to: OrderStatus },

    /// The visit has started (or the order is over): it can no longer be cancelled.
    #[error("an order that is {status} can no longer be cancelled")]
    NotCancellable { status: OrderStatus },

    /// Only completed orders can be rated.
    #[error("only a completed order can be rated; this one is {status}")]
    NotCompleted { status: OrderStatus },

    /// An order is rated once.
    #[error("this order has already been rated")]
    AlreadyRated,

    /// The offer's deadline has passed.
    #[error("offer {offer_id} has expired")]
    OfferExpired { offer_id: OfferId },

    /// The offer was already answered, expired or withdrawn.
    #[error("offer {offer_id} is {status}, no longer open")]
    OfferNotOpen {
        offer_id: OfferId,
        status: OfferStatus,
    },

    /// An offer cannot be expired before its deadline.
    #[error("offer {offer_id} is still within its deadline")]
    OfferStillLive { offer_id: OfferId },

    /// No service with this code in the catalogue.
    #[error("unknown service {code:?}")]
    UnknownService { code: String },

    /// The service exists but is not offered at the moment.
    #[error("service {code:?} is not available")]
    ServiceInactive { code: String },

    /// The location is in none of the organisation's service areas.
    #[error("the location is outside every service area")]
    OutsideServiceArea,

    /// The nurse lacks skills the service requires.
    #[error("the nurse lacks required skills: {}", join_skills(missing))]
    MissingSkills { missing: Vec<crate::catalog::Skill> },

    /// The catalogue data is inconsistent (duplicate codes, unknown category...).
    #[error("invalid catalogue: {reason}")]
    InvalidCatalog { reason: String },

    /// A field named by its path (e.g. `certificates[1].expires_on`) that a
    /// rule refused; `code` says which rule (`required`, `too_long`, …).
    #[error("{field}: {reason}")]
    InvalidField {
        field: String,
        code: &'static str,
        reason: String,
    },
    /// A value of the wrong type, with control characters, too long or not one of the choices.
    #[error("{field}: {reason}")]
    InvalidValue { field: String, reason: String },

    /// A field (intake answer, record value) the service does not have.
    #[error("{field} is not a field of this service")]
    UnknownField { field: String },

    /// A number outside its plausible range.
    #[error("{field} is outside its plausible range{}", range_text(*min, *max))]
    OutOfRange {
        field: String,
        min: Option<f64>,
        max: Option<f64>,
    },

    /// A required field (named at run time, e.g. `values.pulse`) is missing.
    #[error("{field} is required")]
    MissingField { field: String },

    /// A red-flag intake answer: an emergency, never a home visit.
    #[error("{}", crate::clinical::EMERGENCY_MESSAGE)]
    EmergencyCall120 { field: String },

    /// Consent was not given (`consent_version` at ordering, `consent_by` at `started`).
    #[error("consent is required: {field}")]
    ConsentRequired { field: &'static str },

    /// The accepted consent is not the service's current version.
    #[error("the consent text has changed; accept version {current}")]
    ConsentOutdated { current: String },

    /// The service needs a doctor's order reference.
    #[error("this service needs a doctor's order: give its reference in doctor_order_ref")]
    DoctorOrderRequired,

    /// `completed` before the visit record was submitted.
    #[error("submit the visit record first; missing: {}", missing.join(", "))]
    RecordRequired { missing: Vec<String> },

    /// `arrived` reported too far from the order's address.
    #[error(
        "you are {distance_m} m from the address; arrival is accepted within {allowed_m} m (ask a coordinator to override)"
    )]
    TooFarFromAddress { distance_m: u32, allowed_m: u32 },

    /// `arrived` without a known, fresh position (none sent, none recent).
    #[error("no recent position of the phone: send `location` with the step or turn on location")]
    PositionUnknown,

    /// Resolving an alarm nobody has acknowledged yet.
    #[error("acknowledge the alarm before resolving it")]
    AlarmNotAcknowledged,

    /// Acknowledging or resolving an alarm that is already resolved.
    #[error("the alarm is already resolved")]
    AlarmResolved,
}

fn range_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!(" ({a} to {b})"),
        (Some(a), None) => format!(" (at least {a})"),
        (None, Some(b)) => format!(" (at most {b})"),
        (None, None) => String::new(),
    }
}

fn join_skills(skills: &[crate::catalog::Skill]) -> String {
    skills
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl DomainError {
    /// The stable snake_case code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCoordinate { .. } => "invalid_coordinate",
            Self::InvalidPhone { .. } => "invalid_phone",
            Self::InvalidSkill { .. } => "invalid_skill",
            Self::InvalidRating { .. } => "invalid_rating",
            Self::InvalidPolygon { .. } => "invalid_polygon",
            Self::Required { .. } => "required",
            Self::TooLong { .. } => "too_long",
            Self::InvalidSchedule { .. } => "invalid_schedule",
            Self::InvalidId { .. } => "invalid_id",
            Self::InvalidStatus { .. } => "invalid_status",
            Self::IllegalTransition { .. } => "illegal_transition",
            Self::NotCancellable { .. } => "not_cancellable",
            Self::NotCompleted { .. } => "order_not_completed",
            Self::AlreadyRated => "already_rated",
            Self::OfferExpired { .. } => "offer_expired",
            Self::OfferNotOpen { .. } => "offer_not_open",
            Self::OfferStillLive { .. } => "offer_still_live",
            Self::UnknownService { .. } => "unknown_service",
            Self::ServiceInactive { .. } => "service_inactive",
            Self::OutsideServiceArea => "outside_service_area",
            Self::MissingSkills { .. } => "missing_skills",
            Self::InvalidCatalog { .. } => "invalid_catalog",
            Self::InvalidField { code, .. } => code,
            Self::InvalidValue { .. } => "invalid_value",
            Self::UnknownField { .. } => "unknown_field",
            Self::OutOfRange { .. } => "out_of_range",
            Self::MissingField { .. } => "required",
            Self::EmergencyCall120 { .. } => "emergency_call_120",
            Self::ConsentRequired { .. } => "consent_required",
            Self::ConsentOutdated { .. } => "consent_outdated",
            Self::DoctorOrderRequired => "doctor_order_required",
            Self::RecordRequired { .. } => "record_required",
            Self::TooFarFromAddress { .. } => "too_far_from_address",
            Self::PositionUnknown => "position_unknown",
            Self::AlarmNotAcknowledged => "alarm_not_acknowledged",
            Self::AlarmResolved => "alarm_resolved",
        }
    }

    /// The input field to blame, when there is one (API field names, snake_case).
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidValue { field, .. }
            | Self::UnknownField { field }
            | Self::OutOfRange { field, .. }
            | Self::MissingField { field }
            | Self::EmergencyCall120 { field } => Some(field),
            Self::ConsentRequired { field } => Some(field),
            Self::ConsentOutdated { .. } => Some("consent_version"),
            Self::DoctorOrderRequired => Some("doctor_order_ref"),
            Self::RecordRequired { missing } => {
                missing.first().map(String::as_str).or(Some("values"))
            }
            Self::InvalidCoordinate { field, .. }
            | Self::InvalidRating { field, .. }
            | Self::Required { field }
            | Self::TooLong { field, .. }
            | Self::InvalidId { field, .. }
            | Self::InvalidStatus { field, .. } => Some(field),
            Self::InvalidPhone { .. } => Some("phone"),
            Self::InvalidSkill { .. } => Some("skills"),
            Self::InvalidPolygon { .. } => Some("polygon"),
            Self::InvalidSchedule { .. } => Some("scheduled_for"),
            Self::UnknownService { .. } | Self::ServiceInactive { .. } => Some("service_code"),
            Self::OutsideServiceArea | Self::TooFarFromAddress { .. } | Self::PositionUnknown => {
                Some("location")
            }
            Self::MissingSkills { .. } => Some("nurse_id"),
            Self::IllegalTransition { .. }
            | Self::NotCancellable { .. }
            | Self::NotCompleted { .. }
            | Self::AlreadyRated
            | Self::OfferExpired { .. }
            | Self::OfferNotOpen { .. }
            | Self::OfferStillLive { .. }
            | Self::InvalidCatalog { .. }
            | Self::InvalidField { .. }
            | Self::AlarmNotAcknowledged
            | Self::AlarmResolved => None,
        }
    }

    /// The field to blame as a path: [`DomainError::field`], or the path
    /// of an `InvalidField` (`certificates[1].expires_on`).
    pub fn field_path(&self) -> Option<String> {
        match self {
            Self::InvalidField { field, .. } => Some(field.clone()),
            other => other.field().map(str::to_owned),
        }
    }
}

impl Serialize for DomainError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let field = self.field();
        let mut s = serializer.serialize_struct("DomainError", 2 + usize::from(field.is_some()))?;
        s.serialize_field("code", self.code())?;
        s.serialize_field("message", &self.to_string())?;
        match field {
            Some(f) => s.serialize_field("field", f)?,
            None => s.skip_field("field")?,
        }
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_api_error_body() {
        let e = DomainError::OutsideServiceArea;
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "outside_service_area");
        assert_eq!(v["field"], "location");
        assert!(v["message"].as_str().unwrap().contains("outside"));

        let e = DomainError::AlreadyRated;
        let v = serde_json::to_value(&e).unwrap();
        assert!(v.get("field").is_none());
    }

    #[test]
    fn codes_are_snake_case() {
        let samples = [
            DomainError::InvalidPhone { reason: "x" },
            DomainError::InvalidPolygon { reason: "x".into() },
            DomainError::IllegalTransition {
                from: OrderStatus::Completed,
                to: OrderStatus::Pending,
            },
            DomainError::OfferExpired {
                offer_id: OfferId::new(),
            },
            DomainError::MissingSkills { missing: vec![] },
        ];
        for e in samples {
            assert!(
                e.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                e.code()
            );
        }
    }
}
