//! The SMS sender port and its two adapters: `log` (the code goes to the
//! server log only: development and the embedded demo) and `webhook` (an
//! HMAC-signed HTTP POST of `{phone, template, params}` to the operator's
//! SMS gateway).

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::rules::hmac_sha256;

/// Header carrying the webhook signature: `t=<unix seconds>,v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Yixin-Signature";

/// One text message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsMessage {
    /// The normalised 11-digit number.
    pub phone: String,
    /// The gateway's template id.
    pub template: String,
    /// The template's parameters: `code` and `minutes` (its lifetime).
    pub params: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("SMS gateway unreachable: {0}")]
    Unreachable(String),
    #[error("SMS gateway refused the message: HTTP {0}")]
    Refused(u16),
}

/// Sends a text message (the port).
#[async_trait]
pub trait SmsSender: Send + Sync {
    async fn send(&self, message: &SmsMessage) -> Result<(), SendError>;
}

/// Writes the message to the server log (and nowhere else).
#[derive(Debug, Default, Clone)]
pub struct LogSender;

#[async_trait]
impl SmsSender for LogSender {
    async fn send(&self, message: &SmsMessage) -> Result<(), SendError> {
        // Deliberately the whole code: this sender exists so a developer
        // (or the browser test) can sign in without a gateway.
        tracing::warn!(
            target: "yixin_signin::sms",
            phone = %message.phone,
            template = %message.template,
            params = %message.params,
            "sms (log sender, not sent)"
        );
        Ok(())
    }
}

/// POSTs the message as JSON to the gateway, signed with [`sign`].
pub struct WebhookSender {
    url: String,
    secret: SecretString,
    http: reqwest::Client,
}

impl WebhookSender {
    pub fn new(url: String, secret: SecretString, timeout: Duration) -> Result<Self, SendError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| SendError::Unreachable(e.to_string()))?;
        Ok(Self { url, secret, http })
    }
}

/// The signature header value of `body` sent at unix second `t`:
/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    format!("t={t},v1={}", hex::encode(hmac_sha256(secret, &signed)))
}

#[async_trait]
impl SmsSender for WebhookSender {
    async fn send(&self, message: &SmsMessage) -> Result<(), SendError> {
        let body =
            serde_json::to_vec(message).map_err(|e| SendError::Unreachable(e.to_string()))?;
        let t = chrono::Utc::now().timestamp();
        let signature = sign(self.secret.expose_secret().as_bytes(), t, &body);
        let response = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Unreachable(e.without_url().to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(SendError::Refused(response.status().as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_time_and_body() {
        let a = sign(b"secret", 1_800_000_000, b"{\"phone\":\"1\"}");
        assert!(a.starts_with("t=1800000000,v1="), "{a}");
        assert_eq!(a.len(), "t=1800000000,v1=".len() + 64);
        assert_ne!(a, sign(b"secret", 1_800_000_001, b"{\"phone\":\"1\"}"));
        assert_ne!(a, sign(b"secret", 1_800_000_000, b"{\"phone\":\"2\"}"));
        assert_ne!(a, sign(b"other", 1_800_000_000, b"{\"phone\":\"1\"}"));
        // RFC 4231 test case 2 checks the HMAC itself.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
