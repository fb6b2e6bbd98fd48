//! The one place where domain and store errors become HTTP errors for this
//! service. (Functions, not `From` impls: both types are foreign here.)

use yixin_domain::DomainError;
use yixin_platform::ApiError;
use yixin_store::StoreError;

/// A domain refusal: state conflicts are 409, bad input is 422 naming the field.
pub fn domain_error(err: DomainError) -> ApiError {
    domain_error_at(err, None)
}

/// Like [`domain_error`], with the field path the request used (e.g.
/// `contact.phone` where the domain only says `phone`).
pub fn domain_error_at(err: DomainError, field: Option<&str>) -> ApiError {
    match err {
        DomainError::NotCancellable { .. }
        | DomainError::NotCompleted { .. }
        | DomainError::AlreadyRated
        | DomainError::IllegalTransition { .. } => ApiError::conflict(err.code(), err.to_string()),
        other => {
            let field = field
                .map(str::to_owned)
                .or(other.field().map(str::to_owned));
            ApiError::Unprocessable {
                code: other.code().into(),
                message: other.to_string(),
                field,
            }
        }
    }
}

/// A store failure as the client sees it.
pub fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound => ApiError::not_found("no such order"),
        StoreError::IdempotencyConflict => ApiError::conflict(
            "idempotency_conflict",
            "this Idempotency-Key was used with a different request",
        ),
        StoreError::Conflict(message) => ApiError::conflict("conflict", message),
        StoreError::StaleState { current } => ApiError::conflict(
            "stale_state",
            format!("the order changed meanwhile; it is now {current}"),
        ),
        other => ApiError::internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;
    use yixin_domain::OrderStatus;

    #[test]
    fn state_conflicts_are_409_and_input_errors_422() {
        let e = domain_error(DomainError::NotCancellable {
            status: OrderStatus::InService,
        });
        assert_eq!(e.status_code().as_u16(), 409);
        assert_eq!(e.code(), "not_cancellable");
        let e = domain_error_at(
            DomainError::InvalidPhone { reason: "x" },
            Some("contact.phone"),
        );
        assert_eq!(e.status_code().as_u16(), 422);
        assert_eq!(e.field(), Some("contact.phone"));
        let e = store_error(StoreError::IdempotencyConflict);
        assert_eq!(e.code(), "idempotency_conflict");
    }
}
