//! A nurse's credentials (licence, first registration, title, certificates,
//! and whether a coordinator verified them) and what a service requires of
//! them (the catalogue's `requirements`).
//!
//! The rule that matches one against the other for a visit is the dispatch
//! core's (`yixin_dispatch_core::qualification`); this module only says what
//! the values are and which ones are well formed.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// Longest licence number, in characters.
pub const LICENCE_NO_MAX_CHARS: usize = 40;
/// Longest certificate number, in characters.
pub const CERTIFICATE_NO_MAX_CHARS: usize = 40;
/// Most certificates one nurse may carry.
pub const CERTIFICATES_MAX: usize = 20;
/// Longest rejection reason, in characters.
pub const REJECT_REASON_MAX_CHARS: usize = 500;

/// Practice years a service asks for unless it says otherwise (the 2019
/// pilot rules: at least five years of clinical practice).
pub const DEFAULT_MIN_YEARS: u32 = 5;

/// A nurse's professional title, lowest first (the order is the ranking).
/// The default is the pilot rules' minimum: 护师.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Title {
    /// 护士
    Nurse,
    /// 护师
    #[default]
    SeniorNurse,
    /// 主管护师
    SupervisorNurse,
    /// 副主任护师
    AssociateChiefNurse,
    /// 主任护师
    ChiefNurse,
}

impl Title {
    pub const ALL: [Title; 5] = [
        Title::Nurse,
        Title::SeniorNurse,
        Title::SupervisorNurse,
        Title::AssociateChiefNurse,
        Title::ChiefNurse,
    ];

    /// As spelled in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nurse => "nurse",
            Self::SeniorNurse => "senior_nurse",
            Self::SupervisorNurse => "supervisor_nurse",
            Self::AssociateChiefNurse => "associate_chief_nurse",
            Self::ChiefNurse => "chief_nurse",
        }
    }

    /// The title in Chinese, as on the certificate.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Nurse => "护士",
            Self::SeniorNurse => "护师",
            Self::SupervisorNurse => "主管护师",
            Self::AssociateChiefNurse => "副主任护师",
            Self::ChiefNurse => "主任护师",
        }
    }
}

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Title {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Title::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| DomainError::InvalidStatus {
                field: "title",
                value: s.chars().take(32).collect(),
            })
    }
}

/// The certificates the catalogue may require, with their names:
/// (code, Chinese, English).
pub const CERTIFICATE_KINDS: [(&str, &str, &str); 5] = [
    ("picc", "PICC 维护专科护士", "PICC care"),
    ("wound_stoma", "伤口造口专科护士", "Wound and stoma care"),
    (
        "maternal_infant",
        "母婴护理专科护士",
        "Maternal and infant care",
    ),
    ("rehab", "康复专科护士", "Rehabilitation nursing"),
    ("oral_care", "口腔护理培训", "Oral care training"),
];

/// Whether `code` is one of [`CERTIFICATE_KINDS`].
pub fn is_certificate_kind(code: &str) -> bool {
    CERTIFICATE_KINDS.iter().any(|(c, _, _)| *c == code)
}

/// One certificate a nurse holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// One of [`CERTIFICATE_KINDS`].
    pub code: String,
    pub number: String,
    pub issued_on: NaiveDate,
    /// `None`: does not expire.
    pub expires_on: Option<NaiveDate>,
}

impl Certificate {
    /// Valid on `day` (the expiry day itself still counts).
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        self.issued_on <= day && self.expires_on.is_none_or(|e| day <= e)
    }
}

/// Whether a coordinator checked the credentials against the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Entered or changed, not checked yet.
    #[default]
    Pending,
    Verified,
    Rejected,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Rejected => "rejected",
        }
    }
}

impl FromStr for Verification {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "verified" => Ok(Self::Verified),
            "rejected" => Ok(Self::Rejected),
            _ => Err(DomainError::InvalidStatus {
                field: "verification",
                value: s.chars().take(32).collect(),
            }),
        }
    }
}

/// What a coordinator enters: the credentials without their review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsInput {
    pub licence_no: String,
    pub first_registered_on: NaiveDate,
    pub title: Title,
    pub certificates: Vec<Certificate>,
}

impl CredentialsInput {
    /// Checks and normalises (trimmed texts, certificates sorted by code):
    /// the licence number is required, printable and at most 40 characters;
    /// registration not in the future (`today`); each certificate of a
    /// known kind, at most once, with a number, issued not in the future
    /// and expiring after it was issued. The error names the field, e.g.
    /// `certificates[1].expires_on`.
    pub fn validated(mut self, today: NaiveDate) -> Result<Self, DomainError> {
        self.licence_no = text(&self.licence_no, "licence_no", LICENCE_NO_MAX_CHARS)?;
        if self.first_registered_on > today {
            return Err(invalid(
                "first_registered_on",
                "in_future",
                "the first registration cannot be in the future",
            ));
        }
        if self.first_registered_on.year() < 1950 {
            return Err(invalid(
                "first_registered_on",
                "out_of_range",
                "the first registration must be after 1950",
            ));
        }
        if self.certificates.len() > CERTIFICATES_MAX {
            return Err(invalid(
                "certificates",
                "too_many",
                format!("at most {CERTIFICATES_MAX} certificates"),
            ));
        }
        for (i, c) in self.certificates.iter_mut().enumerate() {
            let at = |f: &str| format!("certificates[{i}].{f}");
            if !is_certificate_kind(&c.code) {
                return Err(invalid(
                    &at("code"),
                    "unknown_certificate",
                    format!(
                        "unknown certificate; one of {}",
                        CERTIFICATE_KINDS
                            .iter()
                            .map(|(c, _, _)| *c)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            c.number = text(&c.number, &at("number"), CERTIFICATE_NO_MAX_CHARS)?;
            if c.issued_on > today {
                return Err(invalid(
                    &at("issued_on"),
                    "in_future",
                    "a certificate cannot be issued in the future",
                ));
            }
            if c.expires_on.is_some_and(|e| e <= c.issued_on) {
                return Err(invalid(
                    &at("expires_on"),
                    "before_issue",
                    "a certificate must expire after it was issued",
                ));
            }
        }
        for i in 1..self.certificates.len() {
            if self.certificates[..i]
                .iter()
                .any(|c| c.code == self.certificates[i].code)
            {
                return Err(invalid(
                    &format!("certificates[{i}].code"),
                    "duplicate_certificate",
                    "each certificate at most once",
                ));
            }
        }
        self.certificates.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(self)
    }
}

/// A required, printable text of at most `max` characters, trimmed.
fn text(value: &str, field: &str, max: usize) -> Result<String, DomainError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(invalid(field, "required", format!("{field} is required")));
    }
    if v.chars().count() > max {
        return Err(invalid(
            field,
            "too_long",
            format!("{field} must be at most {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(
            field,
            "invalid_text",
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(v.to_owned())
}

fn invalid(field: &str, code: &'static str, reason: impl Into<String>) -> DomainError {
    DomainError::InvalidField {
        field: field.to_owned(),
        code,
        reason: reason.into(),
    }
}

/// A rejection reason: required, printable, at most 500 characters.
pub fn reject_reason(reason: &str) -> Result<String, DomainError> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(invalid("reason", "required", "reason is required"));
    }
    if r.chars().count() > REJECT_REASON_MAX_CHARS {
        return Err(invalid(
            "reason",
            "too_long",
            format!("reason must be at most {REJECT_REASON_MAX_CHARS} characters"),
        ));
    }
    if r.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(
            "reason",
            "invalid_text",
            "reason must not contain control characters",
        ));
    }
    Ok(r.to_owned())
}

/// A nurse's credentials and their review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub licence_no: String,
    pub first_registered_on: NaiveDate,
    pub title: Title,
    /// Sorted by code, each code once.
    pub certificates: Vec<Certificate>,
    pub verification: Verification,
    /// Who verified or rejected them (the coordinator's `sub`), and when.
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub reject_reason: Option<String>,
    /// Who last entered them, and when.
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

impl Credentials {
    /// Entered (or changed) by `by` at `now`: pending until verified again.
    pub fn entered(input: CredentialsInput, by: &str, now: DateTime<Utc>) -> Self {
        Self {
            licence_no: input.licence_no,
            first_registered_on: input.first_registered_on,
            title: input.title,
            certificates: input.certificates,
            verification: Verification::Pending,
            reviewed_by: None,
            reviewed_at: None,
            reject_reason: None,
            updated_by: by.to_owned(),
            updated_at: now,
        }
    }

    /// Full years of practice on `day` since the first registration.
    pub fn practice_years(&self, day: NaiveDate) -> u32 {
        full_years(self.first_registered_on, day)
    }

    /// The certificate of this code, if held.
    pub fn certificate(&self, code: &str) -> Option<&Certificate> {
        self.certificates.iter().find(|c| c.code == code)
    }
}

/// Whole years from `from` to `to` (0 if `to` is earlier).
pub fn full_years(from: NaiveDate, to: NaiveDate) -> u32 {
    if to < from {
        return 0;
    }
    let mut years = to.year() - from.year();
    if (to.month(), to.day()) < (from.month(), from.day()) {
        years -= 1;
    }
    u32::try_from(years.max(0)).unwrap_or(0)
}

/// The credentials that met a service's requirements for one visit, as an
/// offer records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qualification {
    pub licence_no: String,
    pub title: Title,
    /// Full practice years on the visit's day.
    pub practice_years: u32,
    /// The required certificates she showed: `code:number`.
    pub certificates: Vec<String>,
    /// When the credentials were verified.
    pub verified_at: Option<DateTime<Utc>>,
}

/// What a service asks of the nurse's credentials (the catalogue's
/// `requirements`); defaults: 5 years, 护师, no certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirements {
    #[serde(default = "default_min_years")]
    pub min_years: u32,
    #[serde(default)]
    pub min_title: Title,
    /// Certificate codes ([`CERTIFICATE_KINDS`]), all required.
    #[serde(default)]
    pub certificates: Vec<String>,
}

fn default_min_years() -> u32 {
    DEFAULT_MIN_YEARS
}

impl Default for Requirements {
    fn default() -> Self {
        Self {
            min_years: DEFAULT_MIN_YEARS,
            min_title: Title::default(),
            certificates: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn input() -> CredentialsInput {
        CredentialsInput {
            licence_no: " 202011000123 ".into(),
            first_registered_on: d(2015, 7, 1),
            title: Title::SupervisorNurse,
            certificates: vec![
                Certificate {
                    code: "wound_stoma".into(),
                    number: "WS-1".into(),
                    issued_on: d(2020, 1, 1),
                    expires_on: Some(d(2027, 1, 1)),
                },
                Certificate {
                    code: "picc".into(),
                    number: "P-1".into(),
                    issued_on: d(2021, 1, 1),
                    expires_on: None,
                },
            ],
        }
    }

    #[test]
    fn titles_rank_and_spell() {
        assert!(Title::Nurse < Title::SeniorNurse && Title::SeniorNurse < Title::ChiefNurse);
        for t in Title::ALL {
            assert_eq!(t.as_str().parse::<Title>().unwrap(), t);
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
        }
        assert_eq!(Title::SeniorNurse.label_zh(), "护师");
        assert_eq!("护师".parse::<Title>().unwrap_err().field(), Some("title"));
    }

    #[test]
    fn full_years_count_birthdays() {
        assert_eq!(full_years(d(2015, 7, 1), d(2020, 6, 30)), 4);
        assert_eq!(full_years(d(2015, 7, 1), d(2020, 7, 1)), 5);
        assert_eq!(full_years(d(2020, 2, 29), d(2021, 2, 28)), 0);
        assert_eq!(full_years(d(2020, 2, 29), d(2021, 3, 1)), 1);
        assert_eq!(full_years(d(2020, 1, 1), d(2019, 1, 1)), 0);
    }

    #[test]
    fn valid_input_is_normalised() {
        let v = input().validated(d(2026, 11, 30)).unwrap();
        assert_eq!(v.licence_no, "202011000123");
        assert_eq!(v.certificates[0].code, "picc");
    }

    #[test]
    fn bad_input_names_the_field() {
        let today = d(2026, 11, 30);
        let field = |i: CredentialsInput| i.validated(today).unwrap_err().field_path().unwrap();
        let mut i = input();
        i.licence_no = "  ".into();
        assert_eq!(field(i), "licence_no");
        let mut i = input();
        i.licence_no = "a\0b".into();
        assert_eq!(field(i), "licence_no");
        let mut i = input();
        i.licence_no = "9".repeat(41);
        assert_eq!(field(i), "licence_no");
        let mut i = input();
        i.first_registered_on = d(2027, 1, 1);
        assert_eq!(field(i), "first_registered_on");
        let mut i = input();
        i.certificates[1].code = "nope".into();
        assert_eq!(field(i), "certificates[1].code");
        let mut i = input();
        i.certificates[0].expires_on = Some(d(2019, 1, 1));
        assert_eq!(field(i), "certificates[0].expires_on");
        let mut i = input();
        i.certificates[1].code = "wound_stoma".into();
        assert_eq!(field(i), "certificates[1].code");
        let mut i = input();
        i.certificates[1].number = "x".repeat(41);
        assert_eq!(field(i), "certificates[1].number");
        assert_eq!(
            reject_reason(" ").unwrap_err().field_path().as_deref(),
            Some("reason")
        );
        assert!(reject_reason("licence not in the register").is_ok());
    }

    #[test]
    fn requirements_default_to_the_pilot_rules() {
        let r: Requirements = serde_json::from_str("{}").unwrap();
        assert_eq!(r, Requirements::default());
        assert_eq!((r.min_years, r.min_title), (5, Title::SeniorNurse));
    }
}
