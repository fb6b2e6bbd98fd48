//! Authentication and role checks for Yixin's HTTP and WebSocket APIs.
//!
//! This crate owns:
//! - the token format ([`Claims`], [`Role`]) of the API contract's Auth section;
//! - [`Authenticator`]: verifies JWTs with the configured key (HS256 secret,
//!   RS256 or Ed25519 public key), the algorithm pinned by configuration, and
//!   mints them where it holds the signing key;
//! - the actix extractors [`Caller`], [`ResidentCaller`], [`NurseCaller`],
//!   [`CoordinatorCaller`] (401 for a missing or bad token, 403 for the wrong
//!   role), and [`AuthError`] with its mapping into
//!   [`ApiError`](yixin_platform::ApiError);
//! - the development login route `POST /v1/auth/dev-token` ([`configure_dev_login`]).
//!
//! It must not touch: users, passwords or sessions (tokens are issued
//! elsewhere, or by dev login); ownership rules ("a resident sees only their
//! own orders") — services compare [`Claims::sub`] and [`Claims::org`]
//! themselves; storage; configuration loading (it receives
//! [`AuthSettings`](yixin_platform::config::AuthSettings)); and whether dev
//! login is mounted, which the binary decides.
//!
//! ```ignore
//! let auth = web::Data::new(Authenticator::from_settings(&settings.auth)?);
//! App::new().app_data(auth.clone()).configure(|cfg| {
//!     if settings.dev_login_enabled() && auth.can_mint() {
//!         yixin_auth::configure_dev_login(cfg);
//!     }
//! });
//!
//! // A resident-only handler; `caller.sub` / `caller.org` say who is asking.
//! async fn my_orders(caller: ResidentCaller) -> String {
//!     format!("orders of {} in {}", caller.sub, caller.org)
//! }
//! ```

mod authenticator;
mod claims;
mod dev_login;
mod error;
mod extract;

pub use authenticator::{
    Authenticator, IssuedToken, MAX_TOKEN_BYTES, MIN_HS256_SECRET_BYTES, MIN_RSA_BITS,
};
pub use claims::{Claims, Role, UnknownRole};
pub use dev_login::{
    DevLoginApi, DevTokenRequest, DevTokenResponse, MAX_IDENTIFIER_LEN, configure_dev_login,
    dev_token, is_valid_identifier,
};
pub use error::AuthError;
pub use extract::{
    AgentCaller, Caller, CoordinatorCaller, NurseCaller, ResidentCaller, authenticate, bearer_token,
};

/// The bearer security scheme of the OpenAPI document is the platform's;
/// re-exported so code annotating protected routes finds it here too.
pub use yixin_platform::http::{BEARER_SCHEME, BearerSecurity};

#[cfg(test)]
mod tests {
    use utoipa::{Modify, OpenApi};

    use super::*;

    #[test]
    fn bearer_security_adds_the_scheme() {
        let mut doc = DevLoginApi::openapi();
        BearerSecurity.modify(&mut doc);
        let json = serde_json::to_value(doc).unwrap();
        let scheme = &json["components"]["securitySchemes"][BEARER_SCHEME];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
        assert_eq!(scheme["bearerFormat"], "JWT");
    }
}
