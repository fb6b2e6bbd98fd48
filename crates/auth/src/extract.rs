//! actix extractors: [`Caller`] for any authenticated caller, and one
//! role-enforcing extractor per role.
//!
//! The token comes from `Authorization: Bearer <jwt>` (scheme
//! case-insensitive) or, on a WebSocket upgrade request only and when that
//! header is absent, from the `?token=<jwt>` query parameter — browsers
//! cannot set headers on a WebSocket handshake. Elsewhere a query token is
//! ignored (it would end up in access logs and browser history).
//! The [`Authenticator`] must be registered as `web::Data<Authenticator>`.

use std::{
    future::{Ready, ready},
    ops::Deref,
};

use actix_web::{
    FromRequest, HttpRequest,
    dev::Payload,
    http::header::{AUTHORIZATION, HeaderValue},
    web,
};
use serde::Deserialize;
use yixin_platform::ApiError;

use crate::{AuthError, Authenticator, Claims, Role};

/// The bearer token of a request: the `Authorization: Bearer` header if
/// present, else, on a WebSocket upgrade request, the `?token=` query
/// parameter.
///
/// [`AuthError::MissingToken`] when there is neither; [`AuthError::Malformed`]
/// when the header is of another scheme, repeated, or not `Bearer <token>`.
pub fn bearer_token(req: &HttpRequest) -> Result<String, AuthError> {
    let mut headers = req.headers().get_all(AUTHORIZATION);
    if let Some(value) = headers.next() {
        if headers.next().is_some() {
            return Err(AuthError::Malformed);
        }
        return parse_authorization(value).map(str::to_owned);
    }
    if !is_websocket_upgrade(req) {
        return Err(AuthError::MissingToken);
    }
    #[derive(Deserialize)]
    struct TokenQuery {
        token: Option<String>,
    }
    match web::Query::<TokenQuery>::from_query(req.query_string()) {
        Ok(query) => match query.into_inner().token {
            Some(token) if !token.is_empty() => Ok(token),
            _ => Err(AuthError::MissingToken),
        },
        // e.g. `token` given twice
        Err(_) => Err(AuthError::Malformed),
    }
}

/// A `GET` asking to upgrade to WebSocket (`Upgrade: websocket`).
fn is_websocket_upgrade(req: &HttpRequest) -> bool {
    req.method() == actix_web::http::Method::GET
        && req
            .headers()
            .get(actix_web::http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
            })
}

fn parse_authorization(value: &HeaderValue) -> Result<&str, AuthError> {
    let value = value.to_str().map_err(|_| AuthError::Malformed)?.trim();
    let (scheme, token) = value.split_once([' ', '\t']).ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.contains(|c: char| c.is_ascii_whitespace())
    {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// Authenticates a request the way every extractor here does: finds the
/// [`Authenticator`] in app data, takes the [`bearer_token`] and verifies it.
///
/// For handlers that need the claims outside an extractor (e.g. a WebSocket
/// upgrade that decides late). A missing `web::Data<Authenticator>` is a
/// wiring bug and answers 500.
pub fn authenticate(req: &HttpRequest) -> Result<Claims, ApiError> {
    let auth = authenticator(req)?;
    let result = bearer_token(req).and_then(|token| auth.verify(&token));
    result.map_err(|err| {
        tracing::debug!(reason = %err, path = req.path(), "request not authenticated");
        ApiError::from(err)
    })
}

pub(crate) fn authenticator(req: &HttpRequest) -> Result<&Authenticator, ApiError> {
    req.app_data::<web::Data<Authenticator>>()
        .map(|data| data.get_ref())
        .ok_or_else(|| {
            ApiError::internal(AuthError::Config(
                "no web::Data<Authenticator> registered on the app".to_owned(),
            ))
        })
}

fn authenticate_as(req: &HttpRequest, role: Role) -> Result<Claims, ApiError> {
    let claims = authenticate(req)?;
    claims.require_role(role).map_err(|err| {
        tracing::debug!(reason = %err, sub = %claims.sub, path = req.path(), "request forbidden");
        ApiError::from(err)
    })?;
    Ok(claims)
}

/// Any authenticated caller. 401 (with `WWW-Authenticate: Bearer`) when the
/// token is missing or invalid.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(Caller))
    }
}

impl Deref for Caller {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        ///
        /// 401 when the token is missing or invalid, 403 when it is valid but
        /// of another role.
        #[derive(Debug, Clone)]
        pub struct $name(pub Claims);

        impl $name {
            /// The role this extractor admits.
            pub const ROLE: Role = $role;
        }

        impl FromRequest for $name {
            type Error = ApiError;
            type Future = Ready<Result<Self, Self::Error>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready(authenticate_as(req, Self::ROLE).map($name))
            }
        }

        impl Deref for $name {
            type Target = Claims;

            fn deref(&self) -> &Claims {
                &self.0
            }
        }

        impl From<$name> for Caller {
            fn from(caller: $name) -> Caller {
                Caller(caller.0)
            }
        }
    };
}

role_extractor!(
    /// An authenticated resident.
    ResidentCaller,
    Role::Resident
);
role_extractor!(
    /// An authenticated nurse.
    NurseCaller,
    Role::Nurse
);
role_extractor!(
    /// An authenticated coordinator.
    CoordinatorCaller,
    Role::Coordinator
);
role_extractor!(
    /// An authenticated agent (orders for someone else).
    AgentCaller,
    Role::Agent
);

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn token_of(req: TestRequest) -> Result<String, AuthError> {
        bearer_token(&req.to_http_request())
    }

    #[test]
    fn header_forms() {
        for value in [
            "Bearer abc.def.ghi",
            "bearer abc.def.ghi",
            "BEARER  abc.def.ghi ",
        ] {
            let req = TestRequest::default().insert_header((AUTHORIZATION, value));
            assert_eq!(token_of(req).unwrap(), "abc.def.ghi", "{value}");
        }
        for value in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "abc.def.ghi",
            "Bearer a b",
        ] {
            let req = TestRequest::default().insert_header((AUTHORIZATION, value));
            assert!(
                matches!(token_of(req), Err(AuthError::Malformed)),
                "{value}"
            );
        }
    }

    fn upgrade(uri: &str) -> TestRequest {
        TestRequest::with_uri(uri).insert_header((actix_web::http::header::UPGRADE, "websocket"))
    }

    #[test]
    fn query_parameter_is_the_fallback_on_websocket_upgrades() {
        let req = upgrade("/ws?x=1&token=abc.def.ghi");
        assert_eq!(token_of(req).unwrap(), "abc.def.ghi");
        let req = upgrade("/ws?token=");
        assert!(matches!(token_of(req), Err(AuthError::MissingToken)));
        let req = upgrade("/ws?token=a&token=b");
        assert!(matches!(token_of(req), Err(AuthError::Malformed)));
        let req = upgrade("/ws");
        assert!(matches!(token_of(req), Err(AuthError::MissingToken)));
    }

    #[test]
    fn query_parameter_is_ignored_elsewhere() {
        let req = TestRequest::with_uri("/v1/orders?token=abc.def.ghi");
        assert!(matches!(token_of(req), Err(AuthError::MissingToken)));
        let req = TestRequest::post()
            .uri("/ws?token=abc.def.ghi")
            .insert_header((actix_web::http::header::UPGRADE, "websocket"));
        assert!(matches!(token_of(req), Err(AuthError::MissingToken)));
    }

    #[test]
    fn header_wins_over_query() {
        let req =
            upgrade("/ws?token=from-query").insert_header((AUTHORIZATION, "Bearer from-header"));
        assert_eq!(token_of(req).unwrap(), "from-header");
    }

    #[test]
    fn repeated_authorization_headers_are_refused() {
        let req = TestRequest::default()
            .append_header((AUTHORIZATION, "Bearer a"))
            .append_header((AUTHORIZATION, "Bearer b"));
        assert!(matches!(token_of(req), Err(AuthError::Malformed)));
    }
}
