//! Phone sign-in with one-time SMS codes, for residents, nurses and agents:
//! `POST /v1/auth/otp` sends a code, `POST /v1/auth/otp/verify` trades it
//! for a token.
//!
//! Owns: the code rules ([`rules`], pure), the SMS sender port and its
//! adapters ([`sender`]), the two routes and their rate limits. A resident
//! is created by their first verified sign-in (token `sub` = the resident's
//! id); a nurse must be an active nurse of the organisation's roster (token
//! `sub` = the nurse's id), an agent an active agent of its agent list
//! (token `sub` = the agent's id).
//!
//! Must not touch: tokens beyond asking the [`Authenticator`] to mint one,
//! orders, the roster and the agent list (it only reads them).

mod http;
pub mod rules;
pub mod sender;

use std::{sync::Arc, time::Duration};

use actix_web::web;
use secrecy::SecretString;
use yixin_auth::Authenticator;
use yixin_platform::{Mount, config::SigninSettings, limiter::RateLimiter};
use yixin_store::Store;

pub use http::{OtpRequest, OtpSent, OtpVerifyRequest, SignedIn, request_code, verify_code};
pub use rules::{CodeHasher, CodeRules};
pub use sender::{LogSender, SmsMessage, SmsSender, WebhookSender};

/// A misconfiguration found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SigninError {
    #[error("configuration key `signin.{key}`: {message}")]
    Config { key: &'static str, message: String },
}

/// The sign-in service, built once by the binary.
pub struct Signin {
    store: Store,
    auth: Arc<Authenticator>,
    sender: Arc<dyn SmsSender>,
    hasher: CodeHasher,
    rules: CodeRules,
    template: String,
    per_phone: RateLimiter,
    per_address: RateLimiter,
}

impl Signin {
    /// From configuration; `code_key` is the HMAC key of stored codes.
    pub fn from_settings(
        settings: &SigninSettings,
        store: Store,
        auth: Arc<Authenticator>,
        code_key: &[u8],
    ) -> Result<Self, SigninError> {
        let sender: Arc<dyn SmsSender> = match settings.sender.as_str() {
            "log" => Arc::new(LogSender),
            "webhook" => {
                let url = settings.webhook_url.clone().ok_or(SigninError::Config {
                    key: "webhook_url",
                    message: "required for sender = webhook".to_owned(),
                })?;
                let secret: SecretString =
                    settings.webhook_secret.clone().ok_or(SigninError::Config {
                        key: "webhook_secret",
                        message: "required for sender = webhook".to_owned(),
                    })?;
                Arc::new(
                    WebhookSender::new(
                        url,
                        secret,
                        Duration::from_millis(settings.webhook_timeout_ms),
                    )
                    .map_err(|e| SigninError::Config {
                        key: "webhook_url",
                        message: e.to_string(),
                    })?,
                )
            }
            other => {
                return Err(SigninError::Config {
                    key: "sender",
                    message: format!("unknown sender `{other}` (log or webhook)"),
                });
            }
        };
        let rules = CodeRules {
            ttl: chrono::Duration::seconds(i64::try_from(settings.code_ttl_secs).unwrap_or(300)),
            max_attempts: settings.max_attempts,
            resend_after: chrono::Duration::seconds(
                i64::try_from(settings.resend_after_secs).unwrap_or(60),
            ),
        };
        let hour = Duration::from_secs(3_600);
        Ok(Self {
            store,
            auth,
            sender,
            hasher: CodeHasher::new(code_key),
            rules,
            template: settings.template.clone(),
            per_phone: RateLimiter::new(settings.per_phone_per_hour, hour),
            per_address: RateLimiter::new(settings.per_address_per_hour, hour),
        })
    }

    /// Replaces the sender (tests, or an operator's own adapter).
    pub fn with_sender(mut self, sender: Arc<dyn SmsSender>) -> Self {
        self.sender = sender;
        self
    }

    /// The two routes and their app data.
    pub fn mount(self) -> Mount {
        let data = web::Data::new(self);
        Arc::new(move |cfg| {
            cfg.app_data(data.clone());
            cfg.service(request_code);
            cfg.service(verify_code);
        })
    }
}
