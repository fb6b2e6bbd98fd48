//! What authentication can fail with, and how each failure reaches the
//! client as an [`ApiError`].

use yixin_platform::ApiError;

use crate::Role;

/// Why a caller was not authenticated or authorised, or why the
/// [`Authenticator`](crate::Authenticator) could not be built or mint.
///
/// Messages never contain a token or key material: they go into responses
/// and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401: no `Authorization: Bearer` header and no `?token=`.
    #[error("missing bearer token")]
    MissingToken,
    /// 401: not a JWT (wrong shape, bad base64 or JSON, unreadable header,
    /// an `Authorization` header of another scheme, `alg: none`, …).
    #[error("malformed token")]
    Malformed,
    /// 401: `exp` is in the past by more than the configured leeway.
    #[error("token expired")]
    Expired,
    /// 401: the signature does not match the configured key.
    #[error("invalid token signature")]
    InvalidSignature,
    /// 401: the header names an algorithm other than the configured one
    /// (e.g. an HS256 token where RS256 is configured: the key-confusion
    /// attack). The algorithm is pinned by configuration, never by the token.
    #[error("token signed with an algorithm this service does not accept")]
    WrongAlgorithm,
    /// 401: a signed token whose claims are missing, of the wrong type, or
    /// unusable (unknown role, empty `sub`, `iat` in the future, …).
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
    /// 403: a valid token whose role may not make this call.
    #[error("this call is for the {expected} role, not {actual}")]
    WrongRole { expected: Role, actual: Role },
    /// 500: bad key material or settings. At start-up the message names the
    /// configuration key (`auth.jwt_secret`, `auth.public_key_pem`, …).
    #[error("auth configuration: {0}")]
    Config(String),
    /// 500: minting was asked of an authenticator that only holds a public
    /// key (RS256/EdDSA without `auth.private_key_pem`).
    #[error("this service holds no private key and cannot mint tokens")]
    CannotMint,
}

impl AuthError {
    /// True for the failures that are the caller's fault and answer 401.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            Self::MissingToken
                | Self::Malformed
                | Self::Expired
                | Self::InvalidSignature
                | Self::WrongAlgorithm
                | Self::InvalidClaims(_)
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::WrongRole { .. } => ApiError::Forbidden(err.to_string()),
            AuthError::Config(_) | AuthError::CannotMint => ApiError::internal(err),
            AuthError::MissingToken
            | AuthError::Malformed
            | AuthError::Expired
            | AuthError::InvalidSignature
            | AuthError::WrongAlgorithm
            | AuthError::InvalidClaims(_) => ApiError::Unauthorized(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{ResponseError, http::StatusCode};

    use super::*;

    #[test]
    fn each_error_maps_to_its_status() {
        let cases = [
            (AuthError::MissingToken, StatusCode::UNAUTHORIZED),
            (AuthError::Malformed, StatusCode::UNAUTHORIZED),
            (AuthError::Expired, StatusCode::UNAUTHORIZED),
            (AuthError::InvalidSignature, StatusCode::UNAUTHORIZED),
            (AuthError::WrongAlgorithm, StatusCode::UNAUTHORIZED),
            (
                AuthError::InvalidClaims("x".into()),
                StatusCode::UNAUTHORIZED,
            ),
            (
                AuthError::WrongRole {
                    expected: Role::Nurse,
                    actual: Role::Resident,
                },
                StatusCode::FORBIDDEN,
            ),
            (
                AuthError::Config("x".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (AuthError::CannotMint, StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (err, status) in cases {
            let unauthenticated = err.is_unauthenticated();
            let api = ApiError::from(err);
            assert_eq!(api.status_code(), status, "{api:?}");
            assert_eq!(unauthenticated, status == StatusCode::UNAUTHORIZED);
        }
    }

    #[test]
    fn config_errors_do_not_reach_the_client() {
        let api = ApiError::from(AuthError::Config("auth.jwt_secret: too short".into()));
        assert_eq!(api.body().error.code, "internal");
        assert!(!api.body().error.message.contains("jwt_secret"));
    }
}
