//! The dispatch gate: whether a nurse's credentials qualify her for a
//! service on the visit's day. One rule, asked by the fleet's candidate
//! search (greedy and batch) and by manual assignment alike (through
//! [`crate::eligibility`]'s `qualified` fact), so they cannot disagree.
//!
//! Qualified means: credentials entered and verified by a coordinator,
//! full practice years since the first registration at least the service's
//! `min_years` on the visit's day, a title at least `min_title`, and every
//! certificate the service requires held and valid on that day.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use yixin_domain::credentials::Qualification;
use yixin_domain::{Credentials, OrgTimeZone, Requirements, Title, Verification};

/// One reason a nurse does not qualify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
    /// No credentials entered.
    NoCredentials,
    /// Entered but not verified (pending, or rejected).
    Unverified(Verification),
    TooFewYears {
        has: u32,
        needs: u32,
    },
    TitleTooLow {
        has: Title,
        needs: Title,
    },
    MissingCertificate(String),
    /// Held, but not valid on the visit's day (expired, or not yet issued).
    CertificateExpired(String),
}

impl Shortfall {
    /// Stable snake_case code, as the API spells it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoCredentials => "no_credentials",
            Self::Unverified(_) => "unverified",
            Self::TooFewYears { .. } => "too_few_years",
            Self::TitleTooLow { .. } => "title_too_low",
            Self::MissingCertificate(_) => "missing_certificate",
            Self::CertificateExpired(_) => "certificate_expired",
        }
    }
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCredentials => f.write_str("no credentials on record"),
            Self::Unverified(v) => write!(f, "credentials are {}, not verified", v.as_str()),
            Self::TooFewYears { has, needs } => {
                write!(f, "{has} years of practice, the service needs {needs}")
            }
            Self::TitleTooLow { has, needs } => write!(
                f,
                "title {} ({}), the service needs {} ({}) or above",
                has.as_str(),
                has.label_zh(),
                needs.as_str(),
                needs.label_zh()
            ),
            Self::MissingCertificate(c) => write!(f, "no {c} certificate"),
            Self::CertificateExpired(c) => {
                write!(f, "the {c} certificate is not valid on the visit's day")
            }
        }
    }
}

/// The organisation's local day of a visit at `at` (the day certificates
/// and practice years are judged on).
pub fn visit_day(at: DateTime<Utc>) -> NaiveDate {
    (at + chrono::TimeDelta::seconds(i64::from(OrgTimeZone::CHINA.offset_secs()))).date_naive()
}

/// When a visit happens, for the gate: a booked time still ahead, or now.
pub fn visit_time(scheduled_for: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    scheduled_for.filter(|at| *at > now).unwrap_or(now)
}

/// The shortfalls as one sentence, for an error message.
pub fn explain(short: &[Shortfall]) -> String {
    short
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What qualified the nurse, or every reason she falls short (empty only
/// never: an `Err` holds at least one).
pub fn qualification(
    credentials: Option<&Credentials>,
    requirements: &Requirements,
    day: NaiveDate,
) -> Result<Qualification, Vec<Shortfall>> {
    let Some(c) = credentials else {
        return Err(vec![Shortfall::NoCredentials]);
    };
    let mut short = Vec::new();
    if c.verification != Verification::Verified {
        short.push(Shortfall::Unverified(c.verification));
    }
    let years = c.practice_years(day);
    if years < requirements.min_years {
        short.push(Shortfall::TooFewYears {
            has: years,
            needs: requirements.min_years,
        });
    }
    if c.title < requirements.min_title {
        short.push(Shortfall::TitleTooLow {
            has: c.title,
            needs: requirements.min_title,
        });
    }
    let mut shown = Vec::new();
    for code in &requirements.certificates {
        match c.certificate(code) {
            None => short.push(Shortfall::MissingCertificate(code.clone())),
            Some(cert) if !cert.valid_on(day) => {
                short.push(Shortfall::CertificateExpired(code.clone()))
            }
            Some(cert) => shown.push(format!("{}:{}", cert.code, cert.number)),
        }
    }
    if !short.is_empty() {
        return Err(short);
    }
    Ok(Qualification {
        licence_no: c.licence_no.clone(),
        title: c.title,
        practice_years: years,
        certificates: shown,
        verified_at: c.reviewed_at,
    })
}

/// Whether the credentials qualify (the fast path of the candidate search:
/// no allocation but for the answer's own).
pub fn qualifies(
    credentials: Option<&Credentials>,
    requirements: &Requirements,
    day: NaiveDate,
) -> bool {
    let Some(c) = credentials else {
        return false;
    };
    c.verification == Verification::Verified
        && c.title >= requirements.min_title
        && c.practice_years(day) >= requirements.min_years
        && requirements
            .certificates
            .iter()
            .all(|code| c.certificate(code).is_some_and(|cert| cert.valid_on(day)))
}

/// What an order asks of a candidate: the service's skills and credential
/// requirements, judged on the visit's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub skills: Vec<yixin_domain::Skill>,
    pub requirements: Requirements,
    pub day: NaiveDate,
}

impl Need {
    /// The need of a visit of `service` at `at`.
    pub fn of(service: &yixin_domain::Service, at: DateTime<Utc>) -> Self {
        Self {
            skills: service.required_skills.clone(),
            requirements: service.requirements.clone(),
            day: visit_day(at),
        }
    }

    /// Whether a nurse with these credentials qualifies.
    pub fn met_by(&self, credentials: Option<&Credentials>) -> bool {
        qualifies(credentials, &self.requirements, self.day)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;
    use yixin_domain::{Certificate, CredentialsInput};

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn creds(
        title: Title,
        registered: NaiveDate,
        certs: &[(&str, Option<NaiveDate>)],
    ) -> Credentials {
        let mut c = Credentials::entered(
            CredentialsInput {
                licence_no: "110".into(),
                first_registered_on: registered,
                title,
                certificates: certs
                    .iter()
                    .map(|(code, exp)| Certificate {
                        code: (*code).into(),
                        number: format!("{code}-1"),
                        issued_on: d(2018, 1, 1),
                        expires_on: *exp,
                    })
                    .collect(),
            },
            "coordinator-1",
            DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        );
        c.verification = Verification::Verified;
        c
    }

    fn picc() -> Requirements {
        Requirements {
            certificates: vec!["picc".into()],
            ..Requirements::default()
        }
    }

    #[test]
    fn a_verified_senior_nurse_with_the_certificate_qualifies_and_it_is_recorded() {
        let c = creds(
            Title::SupervisorNurse,
            d(2015, 1, 1),
            &[("picc", Some(d(2027, 1, 1)))],
        );
        let q = qualification(Some(&c), &picc(), d(2026, 12, 1)).unwrap();
        assert_eq!(q.practice_years, 11);
        assert_eq!(q.certificates, ["picc:picc-1"]);
        assert!(qualifies(Some(&c), &picc(), d(2026, 12, 1)));
    }

    #[test]
    fn the_issues_three_cases_fall_short() {
        let day = d(2026, 12, 1);
        // An expired certificate.
        let c = creds(
            Title::SeniorNurse,
            d(2015, 1, 1),
            &[("picc", Some(d(2026, 11, 30)))],
        );
        assert_eq!(
            qualification(Some(&c), &picc(), day).unwrap_err(),
            [Shortfall::CertificateExpired("picc".into())]
        );
        // Valid through the expiry day itself.
        assert!(qualifies(Some(&c), &picc(), d(2026, 11, 30)));
        // Three years of practice.
        let c = creds(Title::SeniorNurse, d(2023, 6, 1), &[]);
        assert_eq!(
            qualification(Some(&c), &Requirements::default(), day).unwrap_err(),
            [Shortfall::TooFewYears { has: 3, needs: 5 }]
        );
        // Not verified.
        let mut c = creds(Title::SeniorNurse, d(2015, 1, 1), &[]);
        c.verification = Verification::Pending;
        assert_eq!(
            qualification(Some(&c), &Requirements::default(), day).unwrap_err()[0].code(),
            "unverified"
        );
        assert_eq!(
            qualification(None, &Requirements::default(), day).unwrap_err(),
            [Shortfall::NoCredentials]
        );
        // 护士 is below 护师; a missing certificate is named.
        let c = creds(Title::Nurse, d(2015, 1, 1), &[]);
        let short = qualification(Some(&c), &picc(), day).unwrap_err();
        assert_eq!(
            short.iter().map(Shortfall::code).collect::<Vec<_>>(),
            ["title_too_low", "missing_certificate"]
        );
    }

    #[test]
    fn the_visit_day_is_chinas() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T16:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(visit_day(at), d(2026, 12, 1));
    }

    fn title() -> impl Strategy<Value = Title> {
        (0usize..5).prop_map(|i| Title::ALL[i])
    }

    const KINDS: [&str; 3] = ["picc", "wound_stoma", "maternal_infant"];

    proptest! {
        /// The fast check and the explaining one agree, and both agree with
        /// the rule written out plainly.
        #[test]
        fn fast_and_explained_agree_with_the_plain_rule(
            has_title in title(),
            needs_title in title(),
            registered_days_ago in 0i64..6000,
            min_years in 0u32..12,
            verified in any::<bool>(),
            held in proptest::collection::vec((0usize..3, proptest::option::of(-400i64..400)), 0..3),
            wanted in proptest::collection::vec(0usize..3, 0..3),
        ) {
            let day = d(2026, 12, 1);
            let mut seen = std::collections::HashSet::new();
            let held: Vec<(&str, Option<NaiveDate>)> = held
                .into_iter()
                .filter(|(k, _)| seen.insert(*k))
                .map(|(k, exp)| (KINDS[k], exp.map(|e| day + chrono::TimeDelta::days(e))))
                .collect();
            let registered = day - chrono::TimeDelta::days(registered_days_ago);
            let mut c = creds(has_title, registered, &held);
            if !verified {
                c.verification = Verification::Pending;
            }
            let req = Requirements {
                min_years,
                min_title: needs_title,
                certificates: wanted.iter().map(|k| KINDS[*k].to_string()).collect(),
            };
            let plain = verified
                && has_title >= needs_title
                && yixin_domain::credentials::full_years(registered, day) >= min_years
                && req.certificates.iter().all(|w| {
                    held.iter().any(|(k, exp)| k == w && exp.is_none_or(|e| day <= e))
                });
            prop_assert_eq!(qualifies(Some(&c), &req, day), plain);
            prop_assert_eq!(qualification(Some(&c), &req, day).is_ok(), plain);
            // Asking less never disqualifies.
            if plain {
                let easier = Requirements { min_years: 0, min_title: Title::Nurse, certificates: vec![] };
                prop_assert!(qualifies(Some(&c), &easier, day));
            }
        }
    }
}
