//! [`Authenticator`]: verifies tokens with the configured key and, where it
//! holds the signing key, mints them.

use std::{fmt, time::Duration};

use chrono::Utc;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    errors::{Error as JwtError, ErrorKind},
    jwk::{AlgorithmParameters, Jwk},
};
use secrecy::ExposeSecret;
use yixin_platform::config::{AuthSettings, JwtAlgorithm};

use crate::{AuthError, Claims, Role};

/// Shortest HS256 secret accepted: 256 bits, the size of the HMAC output.
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Smallest RSA modulus accepted.
pub const MIN_RSA_BITS: usize = 2048;
/// Longer "tokens" are refused before any parsing. Ours are ~300 bytes
/// (HS256/EdDSA) to ~500 bytes (RS256).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Verifies (and, where it holds a private key or the HS256 secret, mints)
/// tokens. Built once from settings at start-up and shared as actix
/// `web::Data<Authenticator>`; the extractors ([`Caller`](crate::Caller), …)
/// find it there.
///
/// The algorithm is pinned by configuration: a token whose header names any
/// other algorithm (`none`, HS256 where RS256 is configured, …) is refused
/// before its signature is looked at.
pub struct Authenticator {
    algorithm: JwtAlgorithm,
    jwt_algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    ttl: Duration,
    ttl_secs: i64,
    leeway: Duration,
    leeway_secs: i64,
}

/// A freshly minted token and the claims it carries.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
}

impl fmt::Debug for Authenticator {
    // Hand-written so no key material can ever reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithm", &self.algorithm)
            .field("can_mint", &self.can_mint())
            .field("ttl", &self.ttl)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

fn config(key: &str, message: impl fmt::Display) -> AuthError {
    AuthError::Config(format!("{key}: {message}"))
}

impl Authenticator {
    /// Builds the authenticator the settings describe, checking the key
    /// material now so a bad key stops start-up instead of failing every
    /// request. Errors name the configuration key at fault.
    ///
    /// - `hs256`: `auth.jwt_secret` (≥ 32 bytes) both verifies and mints.
    /// - `rs256` / `eddsa`: `auth.public_key_pem` verifies; the optional
    ///   `auth.private_key_pem` mints and must be the public key's pair.
    ///
    /// Keys for another algorithm than the configured one are refused rather
    /// than silently ignored.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, AuthError> {
        let ttl = Duration::from_secs(settings.token_ttl_secs);
        let leeway = Duration::from_secs(settings.leeway_secs);
        match settings.algorithm {
            JwtAlgorithm::Hs256 => {
                for (key, is_set) in [
                    ("auth.public_key_pem", settings.public_key_pem.is_some()),
                    ("auth.private_key_pem", settings.private_key_pem.is_some()),
                ] {
                    if is_set {
                        return Err(config(
                            key,
                            "is set but auth.algorithm is hs256; \
                             set auth.algorithm to rs256 or eddsa, or remove the key",
                        ));
                    }
                }
                let secret = settings.jwt_secret.as_ref().ok_or_else(|| {
                    config(
                        "auth.jwt_secret",
                        "must be set when auth.algorithm is hs256",
                    )
                })?;
                Self::hs256(secret.expose_secret().as_bytes(), ttl, leeway)
            }
            JwtAlgorithm::Rs256 | JwtAlgorithm::EdDsa => {
                if settings.jwt_secret.is_some() {
                    return Err(config(
                        "auth.jwt_secret",
                        "is set but auth.algorithm is not hs256; remove it",
                    ));
                }
                let public = settings.public_key_pem.as_deref().ok_or_else(|| {
                    config(
                        "auth.public_key_pem",
                        "must be set when auth.algorithm is rs256 or eddsa",
                    )
                })?;
                let private = settings
                    .private_key_pem
                    .as_ref()
                    .map(|pem| pem.expose_secret().as_bytes());
                Self::asymmetric(settings.algorithm, public.as_bytes(), private, ttl, leeway)
            }
        }
    }

    /// An HS256 authenticator from a raw secret (≥ 32 bytes): verifies and
    /// mints. For tests and the embedded mode.
    pub fn hs256(secret: &[u8], ttl: Duration, leeway: Duration) -> Result<Self, AuthError> {
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(config(
                "auth.jwt_secret",
                format_args!(
                    "must be at least {MIN_HS256_SECRET_BYTES} bytes, got {}",
                    secret.len()
                ),
            ));
        }
        Self::build(
            JwtAlgorithm::Hs256,
            DecodingKey::from_secret(secret),
            Some(EncodingKey::from_secret(secret)),
            ttl,
            leeway,
        )
    }

    /// An RS256 authenticator from PEM keys (SPKI `PUBLIC KEY` or PKCS#1
    /// `RSA PUBLIC KEY`; PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    /// Without a private key it only verifies.
    pub fn rs256(
        public_pem: &[u8],
        private_pem: Option<&[u8]>,
        ttl: Duration,
        leeway: Duration,
    ) -> Result<Self, AuthError> {
        Self::asymmetric(JwtAlgorithm::Rs256, public_pem, private_pem, ttl, leeway)
    }

    /// An EdDSA (Ed25519) authenticator from PEM keys (SPKI `PUBLIC KEY`,
    /// PKCS#8 `PRIVATE KEY`). Without a private key it only verifies.
    pub fn eddsa(
        public_pem: &[u8],
        private_pem: Option<&[u8]>,
        ttl: Duration,
        leeway: Duration,
    ) -> Result<Self, AuthError> {
        Self::asymmetric(JwtAlgorithm::EdDsa, public_pem, private_pem, ttl, leeway)
    }

    fn asymmetric(
        algorithm: JwtAlgorithm,
        public_pem: &[u8],
        private_pem: Option<&[u8]>,
        ttl: Duration,
        leeway: Duration,
    ) -> Result<Self, AuthError> {
        const PUBLIC: &str = "auth.public_key_pem";
        const PRIVATE: &str = "auth.private_key_pem";

        // A private key pasted where the public one belongs would parse (the
        // PEM decoder is lenient) and then fail every verification.
        if contains(public_pem, b"PRIVATE KEY") {
            return Err(config(
                PUBLIC,
                "holds a private key; give the public key (`openssl pkey -pubout`)",
            ));
        }
        let (jwt_algorithm, decoding) = match algorithm {
            JwtAlgorithm::Rs256 => (Algorithm::RS256, DecodingKey::from_rsa_pem(public_pem)),
            JwtAlgorithm::EdDsa => (Algorithm::EdDSA, DecodingKey::from_ed_pem(public_pem)),
            JwtAlgorithm::Hs256 => {
                return Err(AuthError::Config(
                    "auth.algorithm: hs256 takes auth.jwt_secret, not PEM keys".to_owned(),
                ));
            }
        };
        let what = key_name(algorithm);
        let decoding = decoding
            .map_err(|e| config(PUBLIC, format_args!("not a PEM {what} public key ({e})")))?;
        check_public_key(jwt_algorithm, &decoding)
            .map_err(|e| config(PUBLIC, format_args!("unusable {what} public key ({e})")))?;

        let encoding = match private_pem {
            None => None,
            Some(pem) => {
                let encoding = match algorithm {
                    JwtAlgorithm::EdDsa => EncodingKey::from_ed_pem(pem),
                    _ => EncodingKey::from_rsa_pem(pem),
                }
                .map_err(|e| config(PRIVATE, format_args!("not a PEM {what} private key ({e})")))?;
                // Sign a probe and verify it with the public key: proves the
                // private key parses and that the two keys are a pair.
                let probe = b"yixin-auth key check";
                let signature = jsonwebtoken::crypto::sign(probe, &encoding, jwt_algorithm)
                    .map_err(|e| {
                        config(
                            PRIVATE,
                            format_args!("cannot sign with this {what} key ({e})"),
                        )
                    })?;
                let pair =
                    jsonwebtoken::crypto::verify(&signature, probe, &decoding, jwt_algorithm)
                        .map_err(|e| config(PUBLIC, format_args!("cannot verify ({e})")))?;
                if !pair {
                    return Err(config(
                        PRIVATE,
                        "does not belong to auth.public_key_pem (they are not a key pair)",
                    ));
                }
                Some(encoding)
            }
        };
        Self::build(algorithm, decoding, encoding, ttl, leeway)
    }

    fn build(
        algorithm: JwtAlgorithm,
        decoding: DecodingKey,
        encoding: Option<EncodingKey>,
        ttl: Duration,
        leeway: Duration,
    ) -> Result<Self, AuthError> {
        let ttl_secs = i64::try_from(ttl.as_secs())
            .ok()
            .filter(|secs| *secs >= 1)
            .ok_or_else(|| config("auth.token_ttl_secs", "must be between 1 and 2^63-1"))?;
        let leeway_secs = i64::try_from(leeway.as_secs())
            .map_err(|_| config("auth.leeway_secs", "must be below 2^63"))?;
        let jwt_algorithm = match algorithm {
            JwtAlgorithm::Hs256 => Algorithm::HS256,
            JwtAlgorithm::Rs256 => Algorithm::RS256,
            JwtAlgorithm::EdDsa => Algorithm::EdDSA,
        };
        // Exactly one algorithm: the configured one.
        let mut validation = Validation::new(jwt_algorithm);
        validation.leeway = leeway.as_secs();
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // Our tokens carry no `aud`; one that does was meant for someone else.
        validation.validate_aud = true;
        validation.aud = None;
        Ok(Self {
            algorithm,
            jwt_algorithm,
            decoding,
            encoding,
            validation,
            ttl,
            ttl_secs,
            leeway,
            leeway_secs,
        })
    }

    /// The configured (pinned) algorithm.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// Lifetime of minted tokens.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Clock skew tolerated when checking `exp`, `nbf` and `iat`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// True when this authenticator holds a signing key (HS256 always;
    /// RS256/EdDSA only with `auth.private_key_pem`).
    pub fn can_mint(&self) -> bool {
        self.encoding.is_some()
    }

    /// Checks `token`'s algorithm, signature, expiry and claims; returns its
    /// claims. Every failure is one of the 401 [`AuthError`]s.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        // Pin the algorithm before anything else looks at the token; an
        // `alg` this library does not know at all (`none`) is unreadable.
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != self.jwt_algorithm {
            return Err(AuthError::WrongAlgorithm);
        }
        // RFC 7515 §4.1.11: extensions we do not understand must be refused.
        if header.crit.is_some() {
            return Err(AuthError::Malformed);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(verify_error)?
            .claims;
        if claims.sub.is_empty() {
            return Err(AuthError::InvalidClaims("`sub` is empty".to_owned()));
        }
        if claims.org.is_empty() {
            return Err(AuthError::InvalidClaims("`org` is empty".to_owned()));
        }
        check_no_control_characters(&claims.sub, &claims.org)?;
        if claims.iat > Utc::now().timestamp().saturating_add(self.leeway_secs) {
            return Err(AuthError::InvalidClaims(
                "`iat` is in the future".to_owned(),
            ));
        }
        Ok(claims)
    }

    /// A token for `sub` in `org` with `role`, valid from now for the
    /// configured TTL. [`AuthError::CannotMint`] on a verify-only
    /// authenticator; [`AuthError::InvalidClaims`] for an empty `sub`/`org`.
    pub fn mint(&self, role: Role, sub: &str, org: &str) -> Result<String, AuthError> {
        self.issue(role, sub, org).map(|issued| issued.token)
    }

    /// [`Authenticator::mint`], also returning the claims (for `exp`).
    pub fn issue(&self, role: Role, sub: &str, org: &str) -> Result<IssuedToken, AuthError> {
        let key = self.encoding.as_ref().ok_or(AuthError::CannotMint)?;
        if sub.is_empty() {
            return Err(AuthError::InvalidClaims("`sub` is empty".to_owned()));
        }
        if org.is_empty() {
            return Err(AuthError::InvalidClaims("`org` is empty".to_owned()));
        }
        check_no_control_characters(sub, org)?;
        let iat = Utc::now().timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            org: org.to_owned(),
            exp: iat.saturating_add(self.ttl_secs),
            iat,
        };
        let token = jsonwebtoken::encode(&Header::new(self.jwt_algorithm), &claims, key)
            .map_err(|e| AuthError::Config(format!("signing failed ({e})")))?;
        Ok(IssuedToken { token, claims })
    }
}

fn key_name(algorithm: JwtAlgorithm) -> &'static str {
    match algorithm {
        JwtAlgorithm::Hs256 => "HS256",
        JwtAlgorithm::Rs256 => "RSA",
        JwtAlgorithm::EdDsa => "Ed25519",
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Parses the public key the way verification will, so a broken key fails
/// at start-up: the RSA modulus must parse and be large enough, the Ed25519
/// key must be 32 bytes and a valid curve point.
fn check_public_key(algorithm: Algorithm, key: &DecodingKey) -> Result<(), String> {
    let jwk = Jwk::from_decoding_key(key, Some(algorithm)).map_err(|e| e.to_string())?;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            // `n` is unpadded base64url of the big-endian modulus.
            let bits = rsa.n.trim_end_matches('=').len() * 6 / 8 * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "the modulus has about {bits} bits, at least {MIN_RSA_BITS} are required"
                ));
            }
        }
        AlgorithmParameters::OctetKeyPair(_) => {
            // The verifier decompresses the point when it is built; an empty
            // signature then merely fails to verify (`Ok(false)`).
            jsonwebtoken::crypto::verify("", b"", key, algorithm).map_err(|e| e.to_string())?;
        }
        _ => return Err("unexpected key type".to_owned()),
    }
    Ok(())
}

/// Maps a `decode` failure (the header already parsed and the algorithm
/// matched) to the reason the client is told.
/// `sub` and `org` are compared with database text and written to logs: a
/// control character (NUL above all, which PostgreSQL refuses) makes the
/// token invalid.
fn check_no_control_characters(sub: &str, org: &str) -> Result<(), AuthError> {
    for (name, value) in [("sub", sub), ("org", org)] {
        if value.chars().any(char::is_control) {
            return Err(AuthError::InvalidClaims(format!(
                "`{name}` holds a control character"
            )));
        }
    }
    Ok(())
}

fn verify_error(err: JwtError) -> AuthError {
    match err.into_kind() {
        ErrorKind::InvalidSignature => AuthError::InvalidSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => AuthError::WrongAlgorithm,
        ErrorKind::ImmatureSignature => AuthError::InvalidClaims("`nbf` is in the future".into()),
        ErrorKind::InvalidAudience => {
            AuthError::InvalidClaims("the token is meant for another audience".into())
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::InvalidClaims(format!("missing `{claim}`"))
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::InvalidClaims(format!("`{claim}` has the wrong type"))
        }
        // The header parsed, so a JSON error is in the (signed) claims.
        ErrorKind::Json(e) => AuthError::InvalidClaims(e.to_string()),
        // Key problems cannot come from the token (the algorithm is pinned
        // and the key was checked at start-up): they are ours.
        kind @ (ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Provider(_)) => AuthError::Config(format!("verification key: {kind:?}")),
        _ => AuthError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn hs() -> Authenticator {
        Authenticator::hs256(SECRET, Duration::from_secs(60), Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn mint_then_verify_round_trips() {
        let auth = hs();
        let issued = auth.issue(Role::Nurse, "n-7", "demo").unwrap();
        let claims = auth.verify(&issued.token).unwrap();
        assert_eq!(claims, issued.claims);
        assert_eq!(claims.exp - claims.iat, 60);
        assert_eq!(claims.role, Role::Nurse);
    }

    #[test]
    fn short_secret_is_refused_naming_the_key() {
        let err = Authenticator::hs256(&SECRET[..31], Duration::from_secs(60), Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.jwt_secret"), "{err}");
        assert!(err.contains("32"), "{err}");
    }

    #[test]
    fn zero_ttl_is_refused() {
        let err = Authenticator::hs256(SECRET, Duration::ZERO, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.token_ttl_secs"), "{err}");
    }

    #[test]
    fn control_characters_in_subject_or_org_are_refused() {
        let auth = hs();
        assert!(matches!(
            auth.mint(Role::Nurse, "n\u{0}1", "demo"),
            Err(AuthError::InvalidClaims(_))
        ));
        assert!(matches!(
            auth.mint(Role::Nurse, "n1", "de\u{1b}mo"),
            Err(AuthError::InvalidClaims(_))
        ));
        // Signed by the right key, but `sub` holds a NUL: refused on verify.
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET);
        let now = Utc::now().timestamp();
        for (sub, org) in [("n\u{0}1", "demo"), ("n1", "de\u{0}mo")] {
            let claims = Claims {
                sub: sub.to_owned(),
                role: Role::Nurse,
                org: org.to_owned(),
                exp: now + 600,
                iat: now,
            };
            let token =
                jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key)
                    .unwrap();
            assert!(matches!(
                auth.verify(&token),
                Err(AuthError::InvalidClaims(_))
            ));
        }
    }

    #[test]
    fn empty_subject_or_org_is_not_minted() {
        let auth = hs();
        assert!(matches!(
            auth.mint(Role::Resident, "", "demo"),
            Err(AuthError::InvalidClaims(_))
        ));
        assert!(matches!(
            auth.mint(Role::Resident, "r-1", ""),
            Err(AuthError::InvalidClaims(_))
        ));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let auth = hs();
        let debug = format!("{auth:?}");
        assert!(debug.contains("Hs256"), "{debug}");
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
        assert!(!debug.contains("48, 49, 50"), "{debug}");
    }
}
