//! Building an `Authenticator` from settings: bad key material stops
//! start-up with a message naming the configuration key, and nothing secret
//! is ever printed.

use std::time::Duration;

use secrecy::SecretString;
use yixin_auth::{AuthError, Authenticator};
use yixin_platform::config::{AuthSettings, JwtAlgorithm};

use crate::support::*;

#[track_caller]
fn config_error(settings: &AuthSettings) -> String {
    match Authenticator::from_settings(settings) {
        Err(err @ AuthError::Config(_)) => err.to_string(),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[track_caller]
fn assert_names(settings: &AuthSettings, key: &str) {
    let message = config_error(settings);
    assert!(message.contains(key), "{message:?} does not name {key}");
    for secret in secret_fragments() {
        assert!(!message.contains(secret), "{message:?} leaks key material");
    }
}

#[test]
fn hs256_needs_a_long_enough_secret() {
    assert_names(&settings(JwtAlgorithm::Hs256), "auth.jwt_secret");
    let short = AuthSettings {
        jwt_secret: Some(SecretString::from("only-31-bytes-long-0123456789ab")),
        ..settings(JwtAlgorithm::Hs256)
    };
    assert_names(&short, "auth.jwt_secret");
    let exactly_32 = AuthSettings {
        jwt_secret: Some(SecretString::from("exactly-32-bytes-long-0123456789")),
        ..settings(JwtAlgorithm::Hs256)
    };
    assert!(
        Authenticator::from_settings(&exactly_32)
            .unwrap()
            .can_mint()
    );
}

#[test]
fn keys_of_another_algorithm_are_refused() {
    let hs_with_public = AuthSettings {
        public_key_pem: Some(RSA_PUBLIC.to_owned()),
        ..hs_settings()
    };
    assert_names(&hs_with_public, "auth.public_key_pem");
    let hs_with_private = AuthSettings {
        private_key_pem: Some(SecretString::from(RSA_PRIVATE)),
        ..hs_settings()
    };
    assert_names(&hs_with_private, "auth.private_key_pem");
    let rs_with_secret = AuthSettings {
        jwt_secret: Some(SecretString::from(SECRET)),
        ..rs_settings(true)
    };
    assert_names(&rs_with_secret, "auth.jwt_secret");
}

#[test]
fn asymmetric_algorithms_need_a_public_key() {
    assert_names(&settings(JwtAlgorithm::Rs256), "auth.public_key_pem");
    assert_names(&settings(JwtAlgorithm::EdDsa), "auth.public_key_pem");
    // A private key alone is not enough: verification uses the public key.
    let private_only = AuthSettings {
        private_key_pem: Some(SecretString::from(RSA_PRIVATE)),
        ..settings(JwtAlgorithm::Rs256)
    };
    assert_names(&private_only, "auth.public_key_pem");
}

#[test]
fn unusable_public_keys_are_refused() {
    let cases = [
        (JwtAlgorithm::Rs256, "not a pem".to_owned()),
        (JwtAlgorithm::Rs256, String::new()),
        (
            JwtAlgorithm::Rs256,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_owned(),
        ),
        // The private key where the public one belongs.
        (JwtAlgorithm::Rs256, RSA_PRIVATE.to_owned()),
        (JwtAlgorithm::EdDsa, ED_PRIVATE.to_owned()),
        // A key of the other type.
        (JwtAlgorithm::Rs256, ED_PUBLIC.to_owned()),
        (JwtAlgorithm::EdDsa, RSA_PUBLIC.to_owned()),
        // Too small.
        (JwtAlgorithm::Rs256, RSA_1024_PUBLIC.to_owned()),
    ];
    for (algorithm, pem) in cases {
        let s = AuthSettings {
            public_key_pem: Some(pem.clone()),
            ..settings(algorithm)
        };
        let message = config_error(&s);
        assert!(
            message.contains("auth.public_key_pem"),
            "{pem:.30}: {message}"
        );
    }
}

#[test]
fn unusable_or_mismatched_private_keys_are_refused() {
    let cases = [
        (JwtAlgorithm::Rs256, RSA_PUBLIC, "garbage"),
        // Someone else's key pair.
        (JwtAlgorithm::Rs256, RSA_OTHER_PUBLIC, RSA_PRIVATE),
        // The public key where the private one belongs.
        (JwtAlgorithm::Rs256, RSA_PUBLIC, RSA_PUBLIC),
        (JwtAlgorithm::EdDsa, ED_PUBLIC, ED_PUBLIC),
        // A private key of the other type.
        (JwtAlgorithm::Rs256, RSA_PUBLIC, ED_PRIVATE),
        (JwtAlgorithm::EdDsa, ED_PUBLIC, RSA_PRIVATE),
    ];
    for (algorithm, public, private) in cases {
        let s = AuthSettings {
            public_key_pem: Some(public.to_owned()),
            private_key_pem: Some(SecretString::from(private)),
            ..settings(algorithm)
        };
        assert_names(&s, "auth.private_key_pem");
    }
}

#[test]
fn ttl_and_leeway_come_from_settings() {
    let auth = Authenticator::from_settings(&hs_settings()).unwrap();
    assert_eq!(auth.ttl(), Duration::from_secs(600));
    assert_eq!(auth.leeway(), Duration::from_secs(LEEWAY_SECS));
    assert_eq!(auth.algorithm(), JwtAlgorithm::Hs256);
    let zero_ttl = AuthSettings {
        token_ttl_secs: 0,
        ..hs_settings()
    };
    assert_names(&zero_ttl, "auth.token_ttl_secs");
}

#[test]
fn debug_output_holds_no_key_material() {
    for settings in [hs_settings(), rs_settings(true), ed_settings(true)] {
        let auth = Authenticator::from_settings(&settings).unwrap();
        let debug = format!("{auth:?} {auth:#?}");
        assert!(debug.contains("can_mint: true"), "{debug}");
        for needle in secret_fragments().into_iter().chain(["test-only", "BEGIN"]) {
            assert!(!debug.contains(needle), "Debug leaks {needle}: {debug}");
        }
        // Byte-array renderings of the secret (`[116, 101, 115, …]`).
        assert!(!debug.contains("116, 101, 115, 116"), "{debug}");
    }
}
