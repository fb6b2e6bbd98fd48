//! Keys, settings and hand-made tokens shared by the tests.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use secrecy::SecretString;
use serde_json::{Value, json};
use yixin_auth::Authenticator;
use yixin_platform::config::{AuthSettings, JwtAlgorithm};

// TEST-ONLY keys: see tests/fixtures/README.md.
pub const RSA_PRIVATE: &str = include_str!("../fixtures/test_only_rsa_private.pem");
pub const RSA_PUBLIC: &str = include_str!("../fixtures/test_only_rsa_public.pem");
pub const RSA_OTHER_PUBLIC: &str = include_str!("../fixtures/test_only_rsa_other_public.pem");
pub const RSA_1024_PUBLIC: &str = include_str!("../fixtures/test_only_rsa1024_public.pem");
pub const ED_PRIVATE: &str = include_str!("../fixtures/test_only_ed25519_private.pem");
pub const ED_PUBLIC: &str = include_str!("../fixtures/test_only_ed25519_public.pem");

pub const SECRET: &str = "test-only-hs256-secret-0123456789abcdef";
pub const LEEWAY_SECS: u64 = 30;

/// Pieces of the secrets that must never appear in output: the HS256 secret
/// and a base64 line from inside each private key.
pub fn secret_fragments() -> Vec<&'static str> {
    let rsa = RSA_PRIVATE.lines().nth(10).unwrap();
    let ed = ED_PRIVATE.lines().nth(1).unwrap();
    assert!(rsa.len() > 40 && ed.len() > 40);
    vec![SECRET, rsa, ed]
}

pub fn settings(algorithm: JwtAlgorithm) -> AuthSettings {
    AuthSettings {
        algorithm,
        token_ttl_secs: 600,
        leeway_secs: LEEWAY_SECS,
        ..AuthSettings::default()
    }
}

pub fn hs_settings() -> AuthSettings {
    AuthSettings {
        jwt_secret: Some(SecretString::from(SECRET)),
        ..settings(JwtAlgorithm::Hs256)
    }
}

pub fn rs_settings(with_private: bool) -> AuthSettings {
    AuthSettings {
        public_key_pem: Some(RSA_PUBLIC.to_owned()),
        private_key_pem: with_private.then(|| SecretString::from(RSA_PRIVATE)),
        ..settings(JwtAlgorithm::Rs256)
    }
}

pub fn ed_settings(with_private: bool) -> AuthSettings {
    AuthSettings {
        public_key_pem: Some(ED_PUBLIC.to_owned()),
        private_key_pem: with_private.then(|| SecretString::from(ED_PRIVATE)),
        ..settings(JwtAlgorithm::EdDsa)
    }
}

pub fn hs() -> Authenticator {
    Authenticator::from_settings(&hs_settings()).unwrap()
}

pub fn hs_with(ttl: Duration, leeway: Duration) -> Authenticator {
    Authenticator::hs256(SECRET.as_bytes(), ttl, leeway).unwrap()
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims a Yixin token carries, valid for ten minutes from now.
pub fn good_claims() -> Value {
    let now = now();
    json!({"sub": "r-1", "role": "resident", "org": "demo", "iat": now, "exp": now + 600})
}

/// Unpadded base64url (RFC 4648 §5), written out so the tests depend on no
/// encoder of the code under test.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// `base64url(header) "." base64url(payload)`: the signing input.
pub fn signing_input(header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(payload.to_string().as_bytes())
    )
}

/// A token built by hand: the signing input, signed with `key` under `alg`
/// (`jsonwebtoken::crypto::sign` only computes the signature bytes).
pub fn forge(header: &Value, payload: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    let input = signing_input(header, payload);
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{signature}")
}

pub fn hs_key(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret)
}

pub fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap()
}

pub fn ed_key() -> EncodingKey {
    EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap()
}

pub fn header(alg: &str) -> Value {
    json!({"alg": alg, "typ": "JWT"})
}

/// A correctly signed HS256 token (with [`SECRET`]) carrying `payload`.
pub fn hs_token(payload: &Value) -> String {
    forge(
        &header("HS256"),
        payload,
        Algorithm::HS256,
        &hs_key(SECRET.as_bytes()),
    )
}

#[test]
fn b64url_matches_rfc_4648_vectors() {
    // RFC 4648 §10, without padding.
    for (input, expected) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(b64url(input.as_bytes()), expected);
    }
    assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
}
