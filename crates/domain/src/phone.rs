//! Mainland China mobile numbers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// A mainland China mobile number, stored normalised as 11 digits `1[3-9]xxxxxxxxx`.
///
/// Input may carry a `+86` or `86` prefix and spaces or dashes anywhere
/// (`+86 138-1234-5678`); they are removed. JSON: the normalised string.
/// `Debug` prints the masked form so a log line never carries a full number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Normalises and checks a number.
    pub fn new(input: &str) -> Result<Self, DomainError> {
        // Refuse absurd input before allocating for it.
        if input.len() > 40 {
            return Err(DomainError::InvalidPhone { reason: "too long" });
        }
        let compact: String = input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let digits = if let Some(rest) = compact.strip_prefix("+86") {
            rest
        } else if compact.starts_with('+') {
            return Err(DomainError::InvalidPhone {
                reason: "only mainland China (+86) numbers are accepted",
            });
        } else if compact.len() == 13 && compact.starts_with("86") {
            // A mobile number starts with 1, so a 13-digit "86…" can only be the country code.
            &compact[2..]
        } else {
            &compact
        };
        let b = digits.as_bytes();
        if b.len() != 11 || !b.iter().all(u8::is_ascii_digit) {
            return Err(DomainError::InvalidPhone {
                reason: "a mobile number has 11 digits",
            });
        }
        if b[0] != b'1' || !(b'3'..=b'9').contains(&b[1]) {
            return Err(DomainError::InvalidPhone {
                reason: "a mobile number starts with 13 to 19",
            });
        }
        Ok(Self(digits.to_owned()))
    }

    /// The 11 normalised digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with the middle four digits hidden, e.g. `138****5678`, for showing to others.
    pub fn masked(&self) -> String {
        // Always 11 ascii digits, so byte slicing is on char boundaries.
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PhoneNumber").field(&self.masked()).finish()
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PhoneNumber {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PhoneNumber::new(s)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = DomainError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        PhoneNumber::new(&s)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_common_spellings() {
        for input in [
            "13812345678",
            "+8613812345678",
            "8613812345678",
            "+86 138 1234 5678",
            "138-1234-5678",
            " 86-138-1234-5678 ",
        ] {
            let p = PhoneNumber::new(input).unwrap();
            assert_eq!(p.as_str(), "13812345678", "{input:?}");
            assert_eq!(p.masked(), "138****5678");
        }
    }

    #[test]
    fn refuses_non_mobiles() {
        for input in [
            "",
            "1381234567",
            "138123456789",
            "12812345678",
            "23812345678",
            "+1 415 555 0100",
            "02312345678",
            "1381234567a",
            "+86",
            "１３８１２３４５６７８",
            &"1".repeat(100),
        ] {
            let e = PhoneNumber::new(input).unwrap_err();
            assert_eq!((e.code(), e.field()), ("invalid_phone", Some("phone")));
        }
    }

    #[test]
    fn debug_is_masked() {
        let p = PhoneNumber::new("13812345678").unwrap();
        assert_eq!(format!("{p:?}"), "PhoneNumber(\"138****5678\")");
        assert_eq!(p.to_string(), "13812345678");
    }

    fn decorate(digits: String, prefix: usize, seps: Vec<(usize, bool)>) -> String {
        let mut s = String::new();
        s.push_str(["", "+86", "86", "+86 ", "+86-"][prefix]);
        for (i, c) in digits.chars().enumerate() {
            for &(at, dash) in &seps {
                if at == i {
                    s.push(if dash { '-' } else { ' ' });
                }
            }
            s.push(c);
        }
        s
    }

    proptest! {
        #[test]
        fn decorated_numbers_normalise_to_their_digits(
            digits in "1[3-9][0-9]{9}",
            prefix in 0usize..5,
            seps in prop::collection::vec((0usize..11, any::<bool>()), 0..5),
        ) {
            let input = decorate(digits.clone(), prefix, seps);
            let p = PhoneNumber::new(&input).unwrap();
            prop_assert_eq!(p.as_str(), digits.as_str());
            prop_assert_eq!(PhoneNumber::new(p.as_str()).unwrap(), p);
        }

        #[test]
        fn anything_accepted_is_a_normalised_mobile(s in "[+0-9 -]{0,20}") {
            if let Ok(p) = PhoneNumber::new(&s) {
                let b = p.as_str().as_bytes();
                prop_assert_eq!(b.len(), 11);
                prop_assert_eq!(b[0], b'1');
                prop_assert!((b'3'..=b'9').contains(&b[1]));
                prop_assert!(b.iter().all(u8::is_ascii_digit));
            }
        }

        #[test]
        fn serde_round_trip(digits in "1[3-9][0-9]{9}") {
            let p = PhoneNumber::new(&digits).unwrap();
            let json = serde_json::to_string(&p).unwrap();
            prop_assert_eq!(serde_json::from_str::<PhoneNumber>(&json).unwrap(), p);
        }
    }
}
