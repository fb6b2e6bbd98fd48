//! Verification against hand-made tokens: every forgery, expiry and
//! malformation is an `AuthError` that answers 401.

use std::time::Duration;

use actix_web::{ResponseError, http::StatusCode};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use yixin_auth::{AuthError, Authenticator, Role};
use yixin_platform::ApiError;

use crate::support::*;

/// Asserts `token` is refused with a 401 and returns why.
#[track_caller]
fn refused(auth: &Authenticator, token: &str) -> AuthError {
    let err = auth.verify(token).expect_err("token must be refused");
    assert!(err.is_unauthenticated(), "{err:?}");
    let status = ApiError::from(err.clone()).status_code();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{err:?}");
    err
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

#[test]
fn a_well_formed_hand_made_token_is_accepted() {
    // Guards the forging helpers: the refusals below are not accidents.
    let claims = hs().verify(&hs_token(&good_claims())).unwrap();
    assert_eq!(claims.sub, "r-1");
    assert_eq!(claims.role, Role::Resident);
    assert_eq!(claims.org, "demo");
}

#[test]
fn alg_none_is_refused() {
    let auth = hs();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let unsigned = format!("{}.", signing_input(&header(alg), &good_claims()));
        assert!(
            matches!(refused(&auth, &unsigned), AuthError::Malformed),
            "{alg}"
        );
        // …and with a valid HS256 signature over the same input appended.
        let input = signing_input(&header(alg), &good_claims());
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &hs_key(SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        assert!(
            matches!(
                refused(&auth, &format!("{input}.{sig}")),
                AuthError::Malformed
            ),
            "{alg}"
        );
    }
    // Also on the asymmetric authenticators.
    for auth in [
        Authenticator::from_settings(&rs_settings(false)).unwrap(),
        Authenticator::from_settings(&ed_settings(false)).unwrap(),
    ] {
        let unsigned = format!("{}.", signing_input(&header("none"), &good_claims()));
        refused(&auth, &unsigned);
    }
}

#[test]
fn hs256_token_is_refused_where_rs256_is_configured() {
    // The key-confusion attack: sign HS256 with the (public!) RSA key as the
    // HMAC secret, hoping the verifier uses its key with the token's `alg`.
    let auth = Authenticator::from_settings(&rs_settings(false)).unwrap();
    let token = forge(
        &header("HS256"),
        &good_claims(),
        Algorithm::HS256,
        &hs_key(RSA_PUBLIC.as_bytes()),
    );
    assert!(matches!(refused(&auth, &token), AuthError::WrongAlgorithm));
    // Same with the header lying about the algorithm: an HMAC "signature"
    // under an RS256 header.
    let input = signing_input(&header("RS256"), &good_claims());
    let hmac = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &hs_key(RSA_PUBLIC.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    assert!(matches!(
        refused(&auth, &format!("{input}.{hmac}")),
        AuthError::InvalidSignature
    ));
}

#[test]
fn other_algorithms_than_the_configured_one_are_refused() {
    let rs = Authenticator::from_settings(&rs_settings(false)).unwrap();
    let ed = Authenticator::from_settings(&ed_settings(false)).unwrap();
    let ed_token = forge(
        &header("EdDSA"),
        &good_claims(),
        Algorithm::EdDSA,
        &ed_key(),
    );
    let rs_token = forge(
        &header("RS256"),
        &good_claims(),
        Algorithm::RS256,
        &rsa_key(),
    );
    assert!(matches!(refused(&rs, &ed_token), AuthError::WrongAlgorithm));
    assert!(matches!(refused(&ed, &rs_token), AuthError::WrongAlgorithm));
    assert!(matches!(
        refused(&hs(), &rs_token),
        AuthError::WrongAlgorithm
    ));
    // Same family, other algorithm: RS512 / PS256 where RS256 is pinned.
    for (alg, name) in [(Algorithm::RS512, "RS512"), (Algorithm::PS256, "PS256")] {
        let token = forge(&header(name), &good_claims(), alg, &rsa_key());
        assert!(
            matches!(refused(&rs, &token), AuthError::WrongAlgorithm),
            "{name}"
        );
    }
    // HS512 where HS256 is pinned.
    let token = forge(
        &header("HS512"),
        &good_claims(),
        Algorithm::HS512,
        &hs_key(SECRET.as_bytes()),
    );
    assert!(matches!(refused(&hs(), &token), AuthError::WrongAlgorithm));
}

#[test]
fn wrong_signatures_are_refused() {
    let auth = hs();
    let other = forge(
        &header("HS256"),
        &good_claims(),
        Algorithm::HS256,
        &hs_key(b"another-secret-of-at-least-32-bytes!"),
    );
    assert!(matches!(
        refused(&auth, &other),
        AuthError::InvalidSignature
    ));

    // A genuine token whose payload was swapped for a promoted one.
    let genuine = hs_token(&good_claims());
    let signature = genuine.rsplit('.').next().unwrap();
    let promoted = with(good_claims(), "role", json!("coordinator"));
    let tampered = format!("{}.{signature}", signing_input(&header("HS256"), &promoted));
    assert!(matches!(
        refused(&auth, &tampered),
        AuthError::InvalidSignature
    ));

    // Signature stripped.
    let stripped = format!("{}.", signing_input(&header("HS256"), &good_claims()));
    assert!(matches!(
        refused(&auth, &stripped),
        AuthError::InvalidSignature
    ));

    // RS256 signed by another key; EdDSA with a flipped signature.
    let rs = Authenticator::rs256(RSA_OTHER_PUBLIC.as_bytes(), None, secs(60), secs(0)).unwrap();
    let rs_token = forge(
        &header("RS256"),
        &good_claims(),
        Algorithm::RS256,
        &rsa_key(),
    );
    assert!(matches!(
        refused(&rs, &rs_token),
        AuthError::InvalidSignature
    ));
    let ed = Authenticator::from_settings(&ed_settings(false)).unwrap();
    let ed_token = forge(
        &header("EdDSA"),
        &good_claims(),
        Algorithm::EdDSA,
        &ed_key(),
    );
    let (input, sig) = ed_token.rsplit_once('.').unwrap();
    let flipped = format!("{input}.{}", flip_first_char(sig));
    assert!(matches!(
        refused(&ed, &flipped),
        AuthError::InvalidSignature
    ));
    // Truncated Ed25519 signatures are refused, not a panic (whether the
    // base64 still decodes depends on the cut).
    for cut in [0, 8, 10, 43, 84] {
        let err = refused(&ed, &format!("{input}.{}", &sig[..cut]));
        assert!(
            matches!(err, AuthError::InvalidSignature | AuthError::Malformed),
            "{cut}: {err:?}"
        );
    }
}

fn flip_first_char(s: &str) -> String {
    let first = if s.starts_with('A') { 'B' } else { 'A' };
    format!("{first}{}", &s[1..])
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn expiry_honours_the_leeway() {
    let auth = hs_with(secs(600), secs(LEEWAY_SECS));
    let now = now();
    let leeway = i64::try_from(LEEWAY_SECS).unwrap();
    let expired = with(good_claims(), "exp", json!(now - leeway - 10));
    assert!(matches!(
        refused(&auth, &hs_token(&expired)),
        AuthError::Expired
    ));
    // Expired, but within the tolerated clock skew.
    let skewed = with(good_claims(), "exp", json!(now - leeway + 10));
    assert!(auth.verify(&hs_token(&skewed)).is_ok());
    // Without leeway the same token is refused.
    let strict = hs_with(secs(600), secs(0));
    assert!(matches!(
        refused(&strict, &hs_token(&skewed)),
        AuthError::Expired
    ));
}

#[test]
fn minted_tokens_expire() {
    // A 1 s token with no leeway, checked 2 s later.
    let auth = hs_with(secs(1), secs(0));
    let token = auth.mint(Role::Nurse, "n-1", "demo").unwrap();
    assert!(auth.verify(&token).is_ok());
    std::thread::sleep(Duration::from_millis(2100));
    assert!(matches!(refused(&auth, &token), AuthError::Expired));
}

#[test]
fn malformed_tokens_are_refused() {
    let auth = hs();
    let good = hs_token(&good_claims());
    let (h, rest) = good.split_once('.').unwrap();
    let cases = [
        "abc".to_owned(),
        "a.b".to_owned(),
        "..".to_owned(),
        "...".to_owned(),
        format!("{good}.extra"),
        format!("!!!.{rest}"),
        format!("{}.{rest}", b64url(b"not json")),
        format!("{}.{rest}", b64url(b"{\"typ\":\"JWT\"}")),
        format!("{}.{rest}", b64url(b"[\"HS256\"]")),
        format!("{h}.{}", "x".repeat(9000)),
        "Bearer x.y.z".to_owned(),
        "é.é.é".to_owned(),
    ];
    for token in cases {
        let err = refused(&auth, &token);
        assert!(
            matches!(err, AuthError::Malformed | AuthError::InvalidSignature),
            "{token:.40}: {err:?}"
        );
    }
    // A signed token whose payload is not JSON at all.
    let input = format!(
        "{}.{}",
        b64url(header("HS256").to_string().as_bytes()),
        b64url(b"nope")
    );
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &hs_key(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    assert!(matches!(
        refused(&auth, &format!("{input}.{sig}")),
        AuthError::InvalidClaims(_) | AuthError::Malformed
    ));
    assert!(matches!(auth.verify(""), Err(AuthError::MissingToken)));
}

#[test]
fn signed_tokens_with_missing_claims_are_refused() {
    let auth = hs();
    for claim in ["sub", "role", "org", "exp", "iat"] {
        let err = refused(&auth, &hs_token(&without(good_claims(), claim)));
        match err {
            AuthError::InvalidClaims(msg) => assert!(msg.contains(claim), "{claim}: {msg}"),
            other => panic!("{claim}: {other:?}"),
        }
    }
    assert!(matches!(
        refused(&auth, &hs_token(&json!({}))),
        AuthError::InvalidClaims(_)
    ));
}

#[test]
fn signed_tokens_with_bad_claims_are_refused() {
    let auth = hs();
    let now = now();
    let cases = [
        with(good_claims(), "role", json!("admin")),
        with(good_claims(), "role", json!("Nurse")),
        with(good_claims(), "role", json!(null)),
        with(good_claims(), "role", json!(["nurse"])),
        with(good_claims(), "sub", json!("")),
        with(good_claims(), "org", json!("")),
        with(good_claims(), "sub", json!(42)),
        with(good_claims(), "exp", json!("tomorrow")),
        with(good_claims(), "exp", json!(-1)),
        with(good_claims(), "iat", json!(now + 3600)),
        with(good_claims(), "nbf", json!(now + 3600)),
        with(good_claims(), "aud", json!("someone-else")),
    ];
    for claims in cases {
        let err = refused(&auth, &hs_token(&claims));
        assert!(
            matches!(err, AuthError::InvalidClaims(_) | AuthError::Expired),
            "{claims}: {err:?}"
        );
    }
    let err = refused(
        &auth,
        &hs_token(&with(good_claims(), "role", json!("admin"))),
    );
    assert!(err.to_string().contains("admin"), "{err}");
}

#[test]
fn unknown_critical_header_extensions_are_refused() {
    let header = json!({"alg": "HS256", "typ": "JWT", "crit": ["exp-ext"], "exp-ext": 1});
    let token = forge(
        &header,
        &good_claims(),
        Algorithm::HS256,
        &hs_key(SECRET.as_bytes()),
    );
    assert!(matches!(refused(&hs(), &token), AuthError::Malformed));
}

#[test]
fn extra_claims_and_header_fields_are_tolerated() {
    let claims = with(good_claims(), "jti", json!("abc"));
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "k1"});
    let token = forge(
        &header,
        &claims,
        Algorithm::HS256,
        &hs_key(SECRET.as_bytes()),
    );
    assert!(hs().verify(&token).is_ok());
}

#[test]
fn rs256_and_eddsa_round_trip() {
    for (full, verify_only) in [
        (rs_settings(true), rs_settings(false)),
        (ed_settings(true), ed_settings(false)),
    ] {
        let minter = Authenticator::from_settings(&full).unwrap();
        let verifier = Authenticator::from_settings(&verify_only).unwrap();
        assert!(minter.can_mint());
        assert!(!verifier.can_mint());
        let issued = minter
            .issue(Role::Coordinator, "c-1", "hospital-3")
            .unwrap();
        assert_eq!(issued.claims.exp - issued.claims.iat, 600);
        assert_eq!(verifier.verify(&issued.token).unwrap(), issued.claims);
        assert_eq!(minter.verify(&issued.token).unwrap(), issued.claims);
        assert!(matches!(
            verifier.mint(Role::Nurse, "n-1", "demo"),
            Err(AuthError::CannotMint)
        ));
    }
}

#[test]
fn hand_made_rs256_and_eddsa_tokens_verify() {
    let rs = Authenticator::from_settings(&rs_settings(false)).unwrap();
    let token = forge(
        &header("RS256"),
        &good_claims(),
        Algorithm::RS256,
        &rsa_key(),
    );
    assert_eq!(rs.verify(&token).unwrap().sub, "r-1");
    let ed = Authenticator::from_settings(&ed_settings(false)).unwrap();
    let token = forge(
        &header("EdDSA"),
        &good_claims(),
        Algorithm::EdDSA,
        &ed_key(),
    );
    assert_eq!(ed.verify(&token).unwrap().sub, "r-1");
}
