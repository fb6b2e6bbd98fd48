//! The pure rules of one-time sign-in codes: making a code, its keyed hash,
//! whether a try succeeds, and when a phone may have another code. No I/O
//! and no clock: the caller passes `now` and the random bits.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use yixin_store::StoredCode;

type HmacSha256 = Hmac<Sha256>;

/// Digits of a code.
pub const CODE_DIGITS: usize = 6;

/// The limits of codes (from `signin.*` configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRules {
    pub ttl: Duration,
    pub max_attempts: u32,
    pub resend_after: Duration,
}

impl Default for CodeRules {
    fn default() -> Self {
        Self {
            ttl: Duration::minutes(5),
            max_attempts: 5,
            resend_after: Duration::seconds(60),
        }
    }
}

/// A 6-digit code from 64 random bits (the bias of `% 10^6` over 2^64 is
/// below 10^-13).
pub fn code_from_random(bits: u64) -> String {
    format!("{:0width$}", bits % 1_000_000, width = CODE_DIGITS)
}

/// Whether `code` looks like a code at all (6 ASCII digits).
pub fn is_code_shaped(code: &str) -> bool {
    code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// HMAC-SHA256 of codes under the server's key. A plain hash of a 6-digit
/// code is reversed by trying the million codes; without the key it is not.
/// The organisation, role and phone are inside the MAC, so a stored hash is
/// worth nothing for another phone.
#[derive(Clone)]
pub struct CodeHasher {
    key: Vec<u8>,
}

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHasher(..)")
    }
}

impl CodeHasher {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// Hex HMAC of the code for this organisation, role and phone.
    pub fn hash(&self, org: &str, role: &str, phone: &str, code: &str) -> String {
        hex::encode(hmac_sha256(
            &self.key,
            format!("{org}\n{role}\n{phone}\n{code}").as_bytes(),
        ))
    }
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // An HMAC accepts a key of any length: this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// What a try with a code comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The right code, in time: sign in (and use the code up).
    Accept,
    /// A wrong code; `left` tries remain.
    Wrong { left: u32 },
    /// The code's time is over.
    Expired,
    /// All tries are used; a new code is needed.
    Exhausted,
}

/// Judges a try whose keyed hash is `given_hash` against the stored code.
/// The hashes are compared in constant time.
pub fn judge(
    rules: &CodeRules,
    stored: &StoredCode,
    given_hash: &str,
    now: DateTime<Utc>,
) -> Verdict {
    if now >= stored.expires_at {
        return Verdict::Expired;
    }
    if stored.attempts >= rules.max_attempts {
        return Verdict::Exhausted;
    }
    if constant_time_eq(stored.code_hash.as_bytes(), given_hash.as_bytes()) {
        Verdict::Accept
    } else {
        Verdict::Wrong {
            left: rules.max_attempts - stored.attempts - 1,
        }
    }
}

/// Seconds the phone must still wait before another code, if any.
pub fn resend_wait(
    rules: &CodeRules,
    last: Option<&StoredCode>,
    now: DateTime<Utc>,
) -> Option<u64> {
    let last = last?;
    let next = last.sent_at + rules.resend_after;
    (now < next).then(|| {
        let ms = (next - now).num_milliseconds();
        u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)
    })
}

/// A new code's row: tries at 0, expiring `rules.ttl` after `now`.
pub fn new_code(
    rules: &CodeRules,
    hasher: &CodeHasher,
    org: &str,
    role: &str,
    phone: &str,
    code: &str,
    now: DateTime<Utc>,
) -> StoredCode {
    StoredCode {
        org_id: org.to_owned(),
        role: role.to_owned(),
        phone: phone.to_owned(),
        code_hash: hasher.hash(org, role, phone, code),
        attempts: 0,
        sent_at: now,
        expires_at: now + rules.ttl,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn fixture() -> (CodeRules, CodeHasher, StoredCode) {
        let rules = CodeRules::default();
        let hasher = CodeHasher::new(b"a key of the server, 32 bytes long!!");
        let stored = new_code(
            &rules,
            &hasher,
            "demo",
            "resident",
            "13812345678",
            "042137",
            at(0),
        );
        (rules, hasher, stored)
    }

    #[test]
    fn codes_are_six_digits_with_leading_zeros() {
        assert_eq!(code_from_random(42), "000042");
        assert_eq!(code_from_random(u64::MAX), "551615");
        for bits in [0, 1, 999_999, 1_000_000, 123_456_789_012] {
            assert!(is_code_shaped(&code_from_random(bits)));
        }
        assert!(!is_code_shaped("12345"));
        assert!(!is_code_shaped("12345a"));
        assert!(!is_code_shaped("١٢٣٤٥٦"));
    }

    #[test]
    fn the_hash_is_keyed_and_bound_to_the_phone() {
        let (_, hasher, stored) = fixture();
        assert_ne!(stored.code_hash, "042137");
        assert!(!stored.code_hash.contains("042137"));
        assert_eq!(stored.code_hash.len(), 64);
        // Without the key, the code cannot be found from its hash.
        let other_key = CodeHasher::new(b"another key of 32 bytes or more.....");
        assert_ne!(
            other_key.hash("demo", "resident", "13812345678", "042137"),
            stored.code_hash
        );
        // Nor is it a plain SHA-256 of the code.
        use sha2::Digest;
        assert_ne!(hex::encode(Sha256::digest(b"042137")), stored.code_hash);
        // Another phone, role or organisation: another hash.
        for (org, role, phone) in [
            ("demo", "resident", "13812345679"),
            ("demo", "nurse", "13812345678"),
            ("other", "resident", "13812345678"),
        ] {
            assert_ne!(hasher.hash(org, role, phone, "042137"), stored.code_hash);
        }
    }

    #[test]
    fn the_right_code_in_time_is_accepted() {
        let (rules, hasher, stored) = fixture();
        let right = hasher.hash("demo", "resident", "13812345678", "042137");
        assert_eq!(judge(&rules, &stored, &right, at(0)), Verdict::Accept);
        assert_eq!(judge(&rules, &stored, &right, at(299)), Verdict::Accept);
    }

    #[test]
    fn a_code_expires_after_five_minutes() {
        let (rules, hasher, stored) = fixture();
        let right = hasher.hash("demo", "resident", "13812345678", "042137");
        assert_eq!(judge(&rules, &stored, &right, at(300)), Verdict::Expired);
        assert_eq!(judge(&rules, &stored, &right, at(3_600)), Verdict::Expired);
    }

    #[test]
    fn five_tries_then_even_the_right_code_is_refused() {
        let (rules, hasher, mut stored) = fixture();
        let wrong = hasher.hash("demo", "resident", "13812345678", "000000");
        let right = hasher.hash("demo", "resident", "13812345678", "042137");
        for left in (0..5).rev() {
            assert_eq!(
                judge(&rules, &stored, &wrong, at(10)),
                Verdict::Wrong { left }
            );
            stored.attempts += 1;
        }
        assert_eq!(judge(&rules, &stored, &right, at(10)), Verdict::Exhausted);
    }

    #[test]
    fn a_phone_waits_between_codes() {
        let (rules, _, stored) = fixture();
        assert_eq!(resend_wait(&rules, None, at(0)), None);
        assert_eq!(resend_wait(&rules, Some(&stored), at(0)), Some(60));
        assert_eq!(resend_wait(&rules, Some(&stored), at(59)), Some(1));
        assert_eq!(resend_wait(&rules, Some(&stored), at(60)), None);
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
