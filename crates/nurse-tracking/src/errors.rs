//! The errors of nurse-tracking, and the one place they become HTTP errors
//! (or `error` frames on the socket, which carry the same code).

use yixin_domain::OfferClosedReason;
use yixin_platform::ApiError;
use yixin_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    #[error("{0}")]
    BadFrame(String),
    #[error("unknown frame type `{0}`")]
    UnknownFrame(String),
    #[error("{0}")]
    InvalidFrame(String),
    #[error("{message}")]
    InvalidFix { field: String, message: String },
    #[error("`{field}` must not contain control characters (NUL and the like)")]
    ControlCharacter { field: String },
    #[error("at most {max} fixes per batch")]
    TooManyFixes { max: usize },
    #[error("{what} `{value}` is not a valid id")]
    InvalidId { what: &'static str, value: String },
    #[error("this token's subject is not a nurse on the organisation's roster")]
    NotOnRoster,
    #[error("the nurse is deactivated")]
    Deactivated,
    #[error("no such offer")]
    OfferNotFound,
    #[error("the offer is closed: {0}")]
    OfferClosed(OfferClosedReason),
    #[error("the nurse already has an active job")]
    NurseBusy,
    #[error("no such job")]
    JobNotFound,
    #[error("the job is {current}; `{step}` cannot come now")]
    StepOutOfOrder { step: &'static str, current: String },
    #[error("go off shift after the current job is completed")]
    ShiftOffWithJob,
    /// A clinical rule refused the step or the record (consent, record, a bad value).
    #[error("{0}")]
    Clinical(yixin_domain::DomainError),
    /// A backend did not answer; the reason is for the log only.
    #[error("temporarily unavailable; retry shortly")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl TrackingError {
    /// The machine-readable code (the same over HTTP and the socket).
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadFrame(_) => "bad_frame",
            Self::UnknownFrame(_) => "unknown_frame",
            Self::InvalidFrame(_) => "invalid_frame",
            Self::InvalidFix { .. } => "invalid_fix",
            Self::ControlCharacter { .. } => "control_character",
            Self::TooManyFixes { .. } => "too_many_fixes",
            Self::InvalidId { .. } => "invalid_id",
            Self::NotOnRoster => "not_on_roster",
            Self::Deactivated => "nurse_deactivated",
            Self::OfferNotFound => "offer_not_found",
            Self::OfferClosed(OfferClosedReason::Expired) => "offer_expired",
            Self::OfferClosed(OfferClosedReason::Taken) => "offer_taken",
            Self::OfferClosed(OfferClosedReason::Cancelled) => "offer_cancelled",
            Self::NurseBusy => "nurse_busy",
            Self::JobNotFound => "job_not_found",
            Self::StepOutOfOrder { .. } => "step_out_of_order",
            Self::ShiftOffWithJob => "active_job",
            Self::Clinical(e) => e.code(),
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The request field at fault, if one is.
    pub fn field(&self) -> Option<String> {
        match self {
            Self::InvalidFix { field, .. } | Self::ControlCharacter { field } => {
                Some(field.clone())
            }
            Self::TooManyFixes { .. } => Some("fixes".into()),
            Self::InvalidId { what, .. } => Some((*what).into()),
            Self::Clinical(e) => e.field().map(str::to_owned),
            _ => None,
        }
    }

    /// A store failure: unavailable (503) when the database did not answer,
    /// else internal (500); the database's text stays in the log.
    pub fn store(err: StoreError) -> Self {
        if err.is_unavailable() {
            Self::Unavailable(format!("{:#}", anyhow::Error::from(err)))
        } else {
            Self::Internal(err.into())
        }
    }
}

impl From<TrackingError> for ApiError {
    fn from(e: TrackingError) -> Self {
        let code = e.code();
        let field = e.field();
        match e {
            TrackingError::BadFrame(_)
            | TrackingError::UnknownFrame(_)
            | TrackingError::InvalidFrame(_) => ApiError::BadRequest {
                code: code.into(),
                message: e.to_string(),
                field,
            },
            TrackingError::InvalidFix { .. }
            | TrackingError::ControlCharacter { .. }
            | TrackingError::TooManyFixes { .. }
            | TrackingError::InvalidId { .. }
            | TrackingError::Clinical(_) => ApiError::Unprocessable {
                code: code.into(),
                message: e.to_string(),
                field,
            },
            TrackingError::NotOnRoster | TrackingError::Deactivated => {
                ApiError::Forbidden(e.to_string())
            }
            TrackingError::OfferNotFound | TrackingError::JobNotFound => {
                ApiError::NotFound(e.to_string())
            }
            TrackingError::OfferClosed(_)
            | TrackingError::NurseBusy
            | TrackingError::StepOutOfOrder { .. }
            | TrackingError::ShiftOffWithJob => ApiError::conflict(code, e.to_string()),
            TrackingError::Unavailable(m) => ApiError::BackendUnavailable(m),
            TrackingError::Internal(inner) => ApiError::internal(inner),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    #[test]
    fn http_statuses_follow_the_kind_of_error() {
        let status = |e: TrackingError| ApiError::from(e).status_code().as_u16();
        assert_eq!(status(TrackingError::BadFrame("x".into())), 400);
        assert_eq!(
            status(TrackingError::InvalidFix {
                field: "fixes[0].lat".into(),
                message: "x".into()
            }),
            422
        );
        assert_eq!(status(TrackingError::NotOnRoster), 403);
        assert_eq!(status(TrackingError::OfferNotFound), 404);
        assert_eq!(
            status(TrackingError::OfferClosed(OfferClosedReason::Taken)),
            409
        );
        let e = ApiError::from(TrackingError::OfferClosed(OfferClosedReason::Expired));
        assert_eq!(e.code(), "offer_expired");
    }
}
