//! `POST /v1/auth/dev-token`: mint a token for any role, subject and
//! organisation, without a password. For development and the embedded demo
//! only: the binary mounts it (with [`configure_dev_login`]) only when dev
//! login is enabled, so elsewhere the path is a plain 404.

use actix_web::{HttpRequest, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yixin_platform::{ApiError, ErrorBody};

use crate::{AuthError, Role, extract::authenticator};

/// Longest `sub` / `org` accepted.
pub const MAX_IDENTIFIER_LEN: usize = 64;

/// What to mint a token for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevTokenRequest {
    /// `resident`, `nurse` or `coordinator`.
    // Read as a string (absent = empty) so an unknown or missing role is a
    // 422 naming the field rather than a generic 400.
    #[serde(default)]
    #[schema(value_type = Role, required = true)]
    pub role: String,
    /// The user id: 1–64 characters of `A-Z a-z 0-9 _ . : @ -`.
    #[serde(default)]
    #[schema(
        required = true,
        example = "resident-1",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9_.:@-]{1,64}$"
    )]
    pub sub: String,
    /// The organisation: 1–64 characters of `A-Z a-z 0-9 _ . : @ -`.
    #[serde(default)]
    #[schema(
        required = true,
        example = "demo",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9_.:@-]{1,64}$"
    )]
    pub org: String,
}

/// A minted token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DevTokenResponse {
    /// The JWT, to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the token stops being accepted (RFC 3339, UTC).
    pub expires_at: DateTime<Utc>,
}

/// True for 1..=64 characters of `[A-Za-z0-9_.:@-]`.
pub fn is_valid_identifier(s: &str) -> bool {
    (1..=MAX_IDENTIFIER_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-'))
}

impl DevTokenRequest {
    /// The role, or a 422 naming the offending field.
    pub fn validate(&self) -> Result<Role, ApiError> {
        let role = self
            .role
            .parse::<Role>()
            .map_err(|err| ApiError::invalid_field("role", "unknown_role", err.to_string()))?;
        for (field, value) in [("sub", &self.sub), ("org", &self.org)] {
            if !is_valid_identifier(value) {
                return Err(ApiError::invalid_field(
                    field,
                    "invalid_identifier",
                    format!(
                        "`{field}` must be 1 to {MAX_IDENTIFIER_LEN} characters of \
                         A-Z, a-z, 0-9, `_`, `.`, `:`, `@`, `-`"
                    ),
                ));
            }
        }
        Ok(role)
    }
}

/// Mint a development token (only mounted when dev login is enabled).
#[utoipa::path(
    tag = "auth",
    operation_id = "dev_token",
    request_body = DevTokenRequest,
    responses(
        (status = 200, description = "A token for the requested identity", body = DevTokenResponse),
        (status = 400, description = "The body is not the expected JSON", body = ErrorBody),
        (status = 404, description = "Dev login is disabled", body = ErrorBody),
        (status = 422, description = "Unknown role, or an invalid `sub`/`org`; `field` names it", body = ErrorBody),
    )
)]
#[post("/v1/auth/dev-token")]
pub async fn dev_token(
    req: HttpRequest,
    body: web::Bytes,
) -> Result<web::Json<DevTokenResponse>, ApiError> {
    // The body is parsed here rather than by `web::Json` so that bad JSON
    // gets the contract's error body, not actix's plain-text one.
    let malformed = |err: serde_json::Error| {
        ApiError::bad_request(
            "malformed_json",
            format!("the body must be a JSON object {{\"role\", \"sub\", \"org\"}}: {err}"),
        )
    };
    // Via a map first: serde would otherwise also accept a JSON array.
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&body).map_err(malformed)?;
    let request =
        DevTokenRequest::deserialize(serde_json::Value::Object(object)).map_err(malformed)?;
    let role = request.validate()?;
    let issued = authenticator(&req)?.issue(role, &request.sub, &request.org)?;
    let expires_at = DateTime::<Utc>::from_timestamp(issued.claims.exp, 0).ok_or_else(|| {
        ApiError::internal(AuthError::Config("token expiry out of range".to_owned()))
    })?;
    tracing::info!(role = %role, sub = %request.sub, org = %request.org, "dev token minted");
    Ok(web::Json(DevTokenResponse {
        token: issued.token,
        expires_at,
    }))
}

/// Mounts `POST /v1/auth/dev-token`. Call it only when dev login is enabled
/// (`Settings::dev_login_enabled`) and the authenticator
/// [can mint](crate::Authenticator::can_mint); without it the path is a 404.
///
/// Needs `web::Data<Authenticator>` on the app. For utoipa-actix-web
/// composition, register [`dev_token`] directly with `.service(dev_token)`;
/// for a hand-written OpenAPI document, merge [`DevLoginApi`].
pub fn configure_dev_login(cfg: &mut web::ServiceConfig) {
    cfg.service(dev_token);
}

/// The OpenAPI fragment of dev login: merge it into the served document
/// only when the route is mounted.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(dev_token),
    components(schemas(DevTokenRequest, DevTokenResponse, Role)),
    tags((name = "auth", description = "Tokens"))
)]
pub struct DevLoginApi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["a", "resident-1", "n_2.x:y@z", &"x".repeat(64)] {
            assert!(is_valid_identifier(ok), "{ok}");
        }
        for bad in ["", " ", "a b", "é", "a/b", "<script>", &"x".repeat(65)] {
            assert!(!is_valid_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn openapi_lists_the_route_and_schemas() {
        use utoipa::OpenApi;
        let doc = serde_json::to_value(DevLoginApi::openapi()).unwrap();
        let op = &doc["paths"]["/v1/auth/dev-token"]["post"];
        assert!(op.is_object(), "{doc:#}");
        assert!(op["responses"]["422"].is_object());
        let schemas = &doc["components"]["schemas"];
        let required = schemas["DevTokenRequest"]["required"].as_array().unwrap();
        for field in ["role", "sub", "org"] {
            assert!(required.iter().any(|f| f == field), "{field} not required");
        }
        assert!(schemas["DevTokenResponse"].is_object());
        assert!(schemas["Role"].is_object());
    }
}
