//! The one error type every HTTP handler returns, and its mapping to the
//! JSON error body of the public contract: `{"error":{"code","message","field"}}`.
//!
//! Crates below the HTTP layer keep their own error enums and convert into
//! [`ApiError`] (each with a `From` impl next to that enum), so the status
//! codes are decided here and only here.

use std::borrow::Cow;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

/// Stable, snake_case error code: the same strings appear in HTTP bodies and
/// in WebSocket `error` frames, so clients can branch on them.
pub type ErrorCode = Cow<'static, str>;

/// Everything a request can fail with, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request could not be read (malformed JSON, bad header, bad query).
    #[error("{message}")]
    BadRequest {
        code: ErrorCode,
        message: String,
        field: Option<String>,
    },
    /// 401: no token, or a token that is expired, forged or malformed.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a valid token whose role or owner may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 401 with its own code (e.g. `invalid_code` of a sign-in code).
    #[error("{message}")]
    UnauthorizedAs { code: ErrorCode, message: String },
    /// 403 with its own code (e.g. `not_on_roster`).
    #[error("{message}")]
    ForbiddenAs { code: ErrorCode, message: String },
    /// 404: no such thing, or one the caller may not know exists.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state (idempotency key
    /// reused with another body, an order already taken, …).
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    /// 413: the body is larger than the configured limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 422: well-formed but invalid (a field out of range, a location
    /// outside every service area, …).
    #[error("{message}")]
    Unprocessable {
        code: ErrorCode,
        message: String,
        field: Option<String>,
    },
    /// 429: too many requests; `Retry-After` carries the seconds to wait.
    #[error("too many requests, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 503 with our own words for the client (e.g. the SMS gateway failed,
    /// no live quote here), and `Retry-After`.
    #[error("{0}")]
    Unavailable(String),
    /// 503: a backend (database, queue) did not answer in time. The detail
    /// (driver text) goes to the log only; the client gets a fixed message
    /// and `Retry-After`.
    #[error("a backend is temporarily unavailable; retry shortly")]
    BackendUnavailable(String),
    /// 500: a bug or an unexpected backend failure. Logged with its detail;
    /// the client only learns that something went wrong.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The JSON body of every 4xx/5xx response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code, a human message, and the offending field
/// when one field is to blame.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "outside_service_area")]
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "location")]
    pub field: Option<String>,
    /// The request's id (also the `X-Request-Id` response header and in the
    /// server's log line about this error): quote it when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "4f9c1e0a2b7d4c3e8f6a5b4c3d2e1f00")]
    pub request_id: Option<String>,
}

impl ApiError {
    pub fn bad_request(code: impl Into<ErrorCode>, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid_field(
        field: impl Into<String>,
        code: impl Into<ErrorCode>,
        message: impl Into<String>,
    ) -> Self {
        Self::Unprocessable {
            code: code.into(),
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn unprocessable(code: impl Into<ErrorCode>, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }

    pub fn conflict(code: impl Into<ErrorCode>, message: impl Into<String>) -> Self {
        Self::Conflict {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    /// An unexpected failure: 500, its detail logged only. A store or queue
    /// error saying its backend is unavailable (anywhere in the chain)
    /// becomes [`ApiError::BackendUnavailable`] instead: 503 with `Retry-After`.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        let err = err.into();
        if backend_unavailable(&err) {
            Self::BackendUnavailable(format!("{err:#}"))
        } else {
            Self::Internal(err)
        }
    }

    /// The stable code clients see, also used in WebSocket error frames.
    pub fn code(&self) -> &str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::UnauthorizedAs { code, .. }
            | Self::ForbiddenAs { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) | Self::BackendUnavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            Self::BadRequest { field, .. } | Self::Unprocessable { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// The body sent to the client. Internal errors never carry their detail.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                field: self.field().map(str::to_owned),
                request_id: crate::request_id::current(),
            },
        }
    }
}

/// Whether a store or queue error in `err`'s chain says its backend did not
/// answer (rather than refusing the request).
fn backend_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<yixin_store::StoreError>()
            .is_some_and(yixin_store::StoreError::is_unavailable)
            || matches!(
                cause.downcast_ref::<yixin_queue::QueueError>(),
                Some(yixin_queue::QueueError::Unavailable(_))
            )
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::UnauthorizedAs { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::ForbiddenAs { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::BackendUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let request_id = crate::request_id::current();
        let request_id = request_id.as_deref().unwrap_or("-");
        // One line each, the cause chain joined (`{:#}`): no backtrace.
        match self {
            Self::Internal(err) => {
                tracing::error!(request_id, error = %format!("{err:#}"), "request failed")
            }
            Self::Unavailable(why) | Self::BackendUnavailable(why) => {
                tracing::warn!(request_id, %why, "backend unavailable")
            }
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::RateLimited { retry_after_secs } => {
                response.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            Self::Unavailable(_) | Self::BackendUnavailable(_) => {
                response.insert_header((
                    "Retry-After",
                    crate::request_id::retry_after_secs().to_string(),
                ));
            }
            _ => {}
        }
        if matches!(self, Self::Unauthorized(_) | Self::UnauthorizedAs { .. }) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_json(err: &ApiError) -> serde_json::Value {
        let bytes = err
            .error_response()
            .into_body()
            .try_into_bytes()
            .expect("body is in memory");
        serde_json::from_slice(&bytes).expect("body is JSON")
    }

    #[test]
    fn field_errors_name_the_field() {
        let err = ApiError::invalid_field("location", "outside_service_area", "not served here");
        assert_eq!(err.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
        let json = body_json(&err);
        assert_eq!(json["error"]["code"], "outside_service_area");
        assert_eq!(json["error"]["field"], "location");
        assert_eq!(json["error"]["message"], "not served here");
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let err = ApiError::internal(anyhow::anyhow!("password=hunter2 connection refused"));
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let json = body_json(&err);
        assert_eq!(json["error"]["code"], "internal");
        assert!(!json.to_string().contains("hunter2"));
        assert!(json["error"].get("field").is_none());
    }

    #[test]
    fn unavailable_backends_are_503_without_their_text() {
        let db = yixin_store::StoreError::Unavailable(sea_orm_timeout());
        let err = ApiError::internal(anyhow::Error::from(db).context("reading the order"));
        assert_eq!(err.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let response = err.error_response();
        assert_eq!(
            response
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
        let json = body_json(&err);
        assert_eq!(json["error"]["code"], "unavailable");
        assert!(!json.to_string().contains("pool"), "{json}");
        let queue = yixin_queue::QueueError::Unavailable("connection refused".into());
        let err = ApiError::internal(queue);
        assert_eq!(err.code(), "unavailable");
        assert!(!body_json(&err).to_string().contains("refused"));
        // Other failures stay 500.
        let err = ApiError::internal(yixin_store::StoreError::Corrupt("x".into()));
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    fn sea_orm_timeout() -> yixin_store::DbErr {
        yixin_store::DbErr::ConnectionAcquire(yixin_store::ConnAcquireErr::Timeout)
    }

    #[test]
    fn rate_limited_says_when_to_retry() {
        let response = ApiError::RateLimited {
            retry_after_secs: 7,
        }
        .error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
    }
}
