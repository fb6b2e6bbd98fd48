//! Clinical governance of one visit: the intake questions and their red-flag
//! triage, the consent text, the screening decision and the visit record.
//!
//! Every rule here is a pure function of the catalogue's data and the
//! caller's input, so order-intake and nurse-tracking apply the same rules
//! and the unit tests below prove them without I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::DomainError;
use crate::ids::{NurseId, OrderId, OrgId};

/// Longest text answer to an intake question, in characters.
pub const ANSWER_MAX_CHARS: usize = 200;
/// Longest doctor's order reference, in characters.
pub const DOCTOR_ORDER_REF_MAX_CHARS: usize = 64;
/// Longest name of who consented on site, in characters.
pub const CONSENT_BY_MAX_CHARS: usize = 50;
/// Longest text value of a visit-record field, in characters.
pub const RECORD_TEXT_MAX_CHARS: usize = 500;
/// Longest free notes of a visit record, in characters.
pub const RECORD_NOTES_MAX_CHARS: usize = 2000;
/// Longest screening rejection reason, in characters.
pub const REVIEW_REASON_MAX_CHARS: usize = 500;

/// What the resident is told when an answer is a red flag (zh, then en).
pub const EMERGENCY_MESSAGE: &str = "请立即拨打 120 急救电话：这些症状需要急救，上门护理不能等待。\
     Call 120 now: these signs need emergency care, a home visit must not delay it.";

/// The kind of answer a question or a record field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A JSON number.
    Number,
    /// A JSON string.
    Text,
    /// `true` or `false`.
    Bool,
    /// One of the listed `choices`.
    Choice,
}

impl FieldType {
    fn name(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Text => "text",
            Self::Bool => "bool",
            Self::Choice => "choice",
        }
    }
}

/// One intake question asked when ordering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeQuestion {
    /// Stable code; the order's `answers` are keyed by it.
    pub code: String,
    pub text_zh: String,
    pub text_en: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// A `true` answer is an emergency: the order is refused, call 120.
    #[serde(default, skip_serializing_if = "is_false")]
    pub red_flag: bool,
    /// A `true` (or, for text, non-blank) answer is a risk the nurse must
    /// know about and a coordinator must screen: the answer becomes one of
    /// the order's `flags` (named by the question's code).
    #[serde(default, skip_serializing_if = "is_false")]
    pub risk: bool,
    /// The allowed answers of a `choice` question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
}

/// A versioned consent text the resident accepts when ordering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentText {
    /// e.g. `2026-11-01`; an order records the version it accepted.
    pub version: String,
    pub text_zh: String,
    pub text_en: String,
}

/// One field of a service's visit-record form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordField {
    pub code: String,
    pub label_zh: String,
    pub label_en: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    pub required: bool,
    /// Plausible range of a `number`, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

// A record field's range is a float; the catalogue never holds NaN (checked
// in `Catalog::validate`), so equality is an equivalence.
impl Eq for RecordField {}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The clinical part of a catalogue service (flattened into its JSON).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceClinical {
    /// Every order of the service waits for a coordinator's approval.
    #[serde(default)]
    pub requires_review: bool,
    /// The order must carry a doctor's order reference (`doctor_order_ref`).
    #[serde(default)]
    pub requires_doctor_order: bool,
    #[serde(default)]
    pub intake: Vec<IntakeQuestion>,
    /// `None` only for catalogues written before consent existed; the
    /// seed gives every service one (its unit test checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentText>,
    #[serde(default)]
    pub record_template: Vec<RecordField>,
    /// A package service is a course of this many visits (absent: one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_visits: Option<u32>,
    /// Days between the visits of a course.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_interval_days: Option<u32>,
}

impl ServiceClinical {
    /// The times of a course's visits when the first is at `first`: one
    /// visit for a plain service, `course_visits` every
    /// `course_interval_days` (at least one day) for a package.
    pub fn visit_times(
        &self,
        first: chrono::DateTime<chrono::Utc>,
    ) -> Vec<chrono::DateTime<chrono::Utc>> {
        let n = self.course_visits.unwrap_or(1).clamp(1, MAX_COURSE_VISITS);
        let every =
            chrono::TimeDelta::days(i64::from(self.course_interval_days.unwrap_or(1).max(1)));
        let mut out = Vec::with_capacity(n as usize);
        let mut at = first;
        for _ in 0..n {
            out.push(at);
            at += every;
        }
        out
    }
}

/// The most visits one course books.
pub const MAX_COURSE_VISITS: u32 = 10;

/// What the resident put on an order besides the visit itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OrderClinical {
    /// Intake answers by question code, as checked by [`ServiceClinical::check_answers`].
    #[serde(default)]
    pub answers: BTreeMap<String, Value>,
    /// Codes of the risk questions the answers raised (shown to the nurse).
    #[serde(default)]
    pub flags: Vec<String>,
    /// The consent version the resident accepted.
    #[serde(default)]
    pub consent_version: Option<String>,
    #[serde(default)]
    pub doctor_order_ref: Option<String>,
    /// Who confirmed consent on site (set at `started`).
    #[serde(default)]
    pub consent_by: Option<String>,
    /// Why screening rejected the order (the resident sees it).
    #[serde(default)]
    pub review_reason: Option<String>,
    /// The coordinator who approved or rejected it (token subject).
    #[serde(default)]
    pub reviewed_by: Option<String>,
    /// Placed by an agent for a patient: who the patient is and who
    /// consented, how and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<OnBehalfOf>,
}

/// An order an agent (family doctor, grid worker, ward nurse) placed for a
/// patient, with the consent that allows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnBehalfOf {
    pub patient_name: String,
    /// The patient may have no phone.
    #[serde(default)]
    pub patient_phone: Option<String>,
    /// Who consented: the patient or a family member, by name.
    pub consent_by: String,
    /// Their relation to the patient (`self` when the patient consented).
    pub relation: String,
    /// `in_person`, `phone` or `written`.
    pub consent_method: String,
    pub consented_at: chrono::DateTime<chrono::Utc>,
}

/// How a consent for an agent's order may be given.
pub const CONSENT_METHODS: [&str; 3] = ["in_person", "phone", "written"];

impl OnBehalfOf {
    /// Trims and checks: names and relation required (at most 50
    /// characters), a known method, a consent time not in the future.
    pub fn checked(mut self, now: chrono::DateTime<chrono::Utc>) -> Result<Self, DomainError> {
        for (field, value) in [
            ("on_behalf_of.patient_name", &mut self.patient_name),
            ("on_behalf_of.consent_by", &mut self.consent_by),
            ("on_behalf_of.relation", &mut self.relation),
        ] {
            let t = value.trim().to_owned();
            if t.is_empty() {
                return Err(DomainError::ConsentRequired { field });
            }
            if t.chars().count() > 50 {
                return Err(DomainError::TooLong { field, max: 50 });
            }
            *value = t;
        }
        if !CONSENT_METHODS.contains(&self.consent_method.as_str())
            || self.consented_at > now + chrono::TimeDelta::minutes(5)
        {
            return Err(DomainError::ConsentRequired {
                field: "on_behalf_of.consent_method",
            });
        }
        Ok(self)
    }
}

/// One submitted version of a visit record. Never changed once written:
/// an amendment is the next version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitRecord {
    pub order_id: OrderId,
    /// 1 for the first submission, then 2, 3… for amendments.
    pub version: u32,
    pub org_id: OrgId,
    pub nurse_id: NurseId,
    pub service_code: String,
    pub values: BTreeMap<String, Value>,
    pub notes: Option<String>,
    pub submitted_at: DateTime<Utc>,
}

/// The intake of one order, once admitted: what to store and whether a
/// coordinator must screen it first.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub clinical: OrderClinical,
    pub needs_review: bool,
}

fn invalid(field: String, reason: String) -> DomainError {
    DomainError::InvalidValue { field, reason }
}

/// Checks free text: no control characters other than newlines and tabs
/// (NUL in particular), at most `max` characters once trimmed.
pub fn check_text(field: &str, s: &str, max: usize) -> Result<String, DomainError> {
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid(
            field.to_owned(),
            "control characters (e.g. NUL) are not allowed".into(),
        ));
    }
    let t = s.trim();
    if t.chars().count() > max {
        return Err(invalid(
            field.to_owned(),
            format!("must be at most {max} characters"),
        ));
    }
    Ok(t.to_owned())
}

impl ServiceClinical {
    /// Checks an order's clinical input against the service: every answer
    /// to a known question and of its type (`answers.<code>` blamed), no
    /// red flag (`emergency_call_120`), the current consent version
    /// (`consent_required` / `consent_outdated`) and a doctor's order where
    /// needed (`doctor_order_required`). Red flags are checked before
    /// consent: an emergency is sent to 120 whatever else is missing.
    /// Unanswered questions count as "no".
    pub fn admit(
        &self,
        answers: &BTreeMap<String, Value>,
        consent_version: Option<&str>,
        doctor_order_ref: Option<&str>,
    ) -> Result<Admission, DomainError> {
        let flags = self.check_answers(answers)?;
        let consent_version = self.check_consent(consent_version)?;
        let doctor_order_ref = match doctor_order_ref.map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => Some(check_text(
                "doctor_order_ref",
                r,
                DOCTOR_ORDER_REF_MAX_CHARS,
            )?),
            None if self.requires_doctor_order => return Err(DomainError::DoctorOrderRequired),
            None => None,
        };
        let needs_review = self.requires_review || !flags.is_empty();
        Ok(Admission {
            clinical: OrderClinical {
                answers: answers.clone(),
                flags,
                consent_version,
                doctor_order_ref,
                consent_by: None,
                review_reason: None,
                reviewed_by: None,
                on_behalf_of: None,
            },
            needs_review,
        })
    }

    /// The answers' risk flags, after checking each answer; a red flag
    /// answered `true` is `emergency_call_120`.
    pub fn check_answers(
        &self,
        answers: &BTreeMap<String, Value>,
    ) -> Result<Vec<String>, DomainError> {
        let mut flags = Vec::new();
        // Red flags first, whatever else is wrong with the answers.
        for q in self.intake.iter().filter(|q| q.red_flag) {
            if answers.get(&q.code) == Some(&Value::Bool(true)) {
                return Err(DomainError::EmergencyCall120 {
                    field: format!("answers.{}", q.code),
                });
            }
        }
        for (code, value) in answers {
            let field = format!("answers.{code}");
            let Some(q) = self.intake.iter().find(|q| &q.code == code) else {
                return Err(DomainError::UnknownField { field });
            };
            let raised = match (q.kind, value) {
                (_, Value::Null) => false,
                (FieldType::Bool, Value::Bool(b)) => *b,
                (FieldType::Text, Value::String(s)) => {
                    !check_text(&field, s, ANSWER_MAX_CHARS)?.is_empty()
                }
                (FieldType::Choice, Value::String(s)) => {
                    check_choice(&field, s, q.choices.as_deref())?;
                    false
                }
                (FieldType::Number, Value::Number(_)) => false,
                (kind, _) => {
                    return Err(invalid(field, format!("must be a {} answer", kind.name())));
                }
            };
            if raised && q.risk {
                flags.push(q.code.clone());
            }
        }
        Ok(flags)
    }

    /// The accepted consent version: `consent_required` without one,
    /// `consent_outdated` if it is not the service's current one.
    pub fn check_consent(&self, version: Option<&str>) -> Result<Option<String>, DomainError> {
        let given = version.map(str::trim).filter(|v| !v.is_empty());
        match (&self.consent, given) {
            (None, v) => Ok(v.map(str::to_owned)),
            (Some(_), None) => Err(DomainError::ConsentRequired {
                field: "consent_version",
            }),
            (Some(c), Some(v)) if v == c.version => Ok(Some(v.to_owned())),
            (Some(c), Some(_)) => Err(DomainError::ConsentOutdated {
                current: c.version.clone(),
            }),
        }
    }

    /// Checks a visit record against the template: no unknown field, each
    /// value of its type and range, every required field present, notes
    /// without control characters and at most [`RECORD_NOTES_MAX_CHARS`].
    /// Returns the values to store (text trimmed) and the notes.
    pub fn check_record(
        &self,
        values: &BTreeMap<String, Value>,
        notes: Option<&str>,
    ) -> Result<(BTreeMap<String, Value>, Option<String>), DomainError> {
        let mut out = BTreeMap::new();
        for (code, value) in values {
            let field = format!("values.{code}");
            if code.contains('\0') {
                return Err(invalid("values".into(), "a field code contains NUL".into()));
            }
            let Some(f) = self.record_template.iter().find(|f| &f.code == code) else {
                return Err(DomainError::UnknownField { field });
            };
            let value = match (f.kind, value) {
                (_, Value::Null) => continue,
                (FieldType::Number, Value::Number(n)) => {
                    let x = n.as_f64().unwrap_or(f64::NAN);
                    let low = f.min.is_some_and(|m| x < m);
                    let high = f.max.is_some_and(|m| x > m);
                    if !x.is_finite() || low || high {
                        return Err(DomainError::OutOfRange {
                            field,
                            min: f.min,
                            max: f.max,
                        });
                    }
                    value.clone()
                }
                (FieldType::Text, Value::String(s)) => {
                    let t = check_text(&field, s, RECORD_TEXT_MAX_CHARS)?;
                    if t.is_empty() {
                        continue;
                    }
                    Value::String(t)
                }
                (FieldType::Bool, Value::Bool(_)) => value.clone(),
                (FieldType::Choice, Value::String(s)) => {
                    check_choice(&field, s, f.choices.as_deref())?;
                    value.clone()
                }
                (kind, _) => {
                    return Err(invalid(field, format!("must be a {} value", kind.name())));
                }
            };
            out.insert(code.clone(), value);
        }
        if let Some(missing) = self
            .record_template
            .iter()
            .find(|f| f.required && !out.contains_key(&f.code))
        {
            return Err(DomainError::MissingField {
                field: format!("values.{}", missing.code),
            });
        }
        let notes = notes
            .map(|n| check_text("notes", n, RECORD_NOTES_MAX_CHARS))
            .transpose()?
            .filter(|n| !n.is_empty());
        Ok((out, notes))
    }

    /// The required record fields, as `values.<code>` (what `record_required` names).
    pub fn required_record_fields(&self) -> Vec<String> {
        self.record_template
            .iter()
            .filter(|f| f.required)
            .map(|f| format!("values.{}", f.code))
            .collect()
    }

    /// Checks the catalogue data of one service: unique codes, a range
    /// only on numbers, choices exactly on choice fields, no NaN.
    pub fn validate(&self, service: &str) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for q in &self.intake {
            if q.code.trim().is_empty() || !seen.insert(q.code.as_str()) {
                return Err(format!(
                    "service {service:?}: bad or duplicate question {:?}",
                    q.code
                ));
            }
            if q.red_flag && q.kind != FieldType::Bool {
                return Err(format!(
                    "service {service:?}: red flag {:?} is not a yes/no question",
                    q.code
                ));
            }
            if (q.kind == FieldType::Choice) != q.choices.is_some() {
                return Err(format!(
                    "service {service:?}: question {:?} choices",
                    q.code
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.record_template {
            if f.code.trim().is_empty() || !seen.insert(f.code.as_str()) {
                return Err(format!(
                    "service {service:?}: bad or duplicate record field {:?}",
                    f.code
                ));
            }
            let ranged = f.min.is_some() || f.max.is_some();
            if ranged && f.kind != FieldType::Number {
                return Err(format!(
                    "service {service:?}: range on non-number {:?}",
                    f.code
                ));
            }
            if f.min.is_some_and(|m| !m.is_finite()) || f.max.is_some_and(|m| !m.is_finite()) {
                return Err(format!(
                    "service {service:?}: non-finite range on {:?}",
                    f.code
                ));
            }
            if (f.kind == FieldType::Choice) != f.choices.is_some() {
                return Err(format!(
                    "service {service:?}: record field {:?} choices",
                    f.code
                ));
            }
        }
        Ok(())
    }
}

fn check_choice(field: &str, s: &str, choices: Option<&[String]>) -> Result<(), DomainError> {
    if choices.is_some_and(|c| c.iter().any(|c| c == s)) {
        Ok(())
    } else {
        Err(invalid(
            field.to_owned(),
            format!(
                "must be one of: {}",
                choices.map(|c| c.join(", ")).unwrap_or_default()
            ),
        ))
    }
}

/// Checks the name of who consented on site (`consent_by` at `started`):
/// required, no control characters, at most [`CONSENT_BY_MAX_CHARS`].
pub fn check_consent_by(name: Option<&str>) -> Result<String, DomainError> {
    let name = check_text("consent_by", name.unwrap_or_default(), CONSENT_BY_MAX_CHARS)?;
    if name.is_empty() {
        return Err(DomainError::ConsentRequired {
            field: "consent_by",
        });
    }
    Ok(name)
}

/// Checks a screening rejection's reason: required, at most [`REVIEW_REASON_MAX_CHARS`].
pub fn check_review_reason(reason: &str) -> Result<String, DomainError> {
    let reason = check_text("reason", reason, REVIEW_REASON_MAX_CHARS)?;
    if reason.is_empty() {
        return Err(DomainError::Required { field: "reason" });
    }
    Ok(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;
    use serde_json::json;

    fn answers(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    fn service(code: &str) -> ServiceClinical {
        Catalog::seed().service(code).unwrap().clinical.clone()
    }

    fn consent(code: &str) -> String {
        service(code).consent.unwrap().version
    }

    #[test]
    fn a_package_is_a_course_of_visits() {
        let first = chrono::DateTime::parse_from_rfc3339("2026-12-02T09:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let course = service("cervical_package").visit_times(first);
        assert_eq!(course.len(), 3);
        assert_eq!(course[2] - course[0], chrono::TimeDelta::days(4));
        assert_eq!(
            service("infant_jaundice_test").visit_times(first),
            vec![first]
        );
    }

    #[test]
    fn every_red_flag_is_refused_with_emergency_call_120() {
        let s = service("infant_jaundice_test");
        let reds: Vec<_> = s.intake.iter().filter(|q| q.red_flag).collect();
        let codes: Vec<_> = reds.iter().map(|q| q.code.as_str()).collect();
        for want in [
            "chest_pain",
            "stroke_signs",
            "breathing_difficulty",
            "heavy_bleeding",
            "unconscious",
        ] {
            assert!(codes.contains(&want), "{want}");
        }
        for q in reds {
            // Even with no consent: the emergency comes first.
            let e = s
                .admit(&answers(json!({ q.code.clone(): true })), None, None)
                .unwrap_err();
            assert_eq!(e.code(), "emergency_call_120");
            assert_eq!(e.field(), Some(format!("answers.{}", q.code).as_str()));
            assert!(e.to_string().contains("120"));
            // "No" is fine.
            let ok = s.admit(
                &answers(json!({ q.code.clone(): false })),
                Some(&consent("infant_jaundice_test")),
                None,
            );
            assert!(ok.is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn answers_are_checked_against_the_questions() {
        let s = service("infant_jaundice_test");
        let v = consent("infant_jaundice_test");
        let e = s
            .admit(
                &answers(json!({"favourite_colour": "blue"})),
                Some(&v),
                None,
            )
            .unwrap_err();
        assert_eq!(e.code(), "unknown_field");
        assert_eq!(e.field(), Some("answers.favourite_colour"));
        let e = s
            .admit(&answers(json!({"bedridden": "yes"})), Some(&v), None)
            .unwrap_err();
        assert_eq!(e.code(), "invalid_value");
        assert_eq!(e.field(), Some("answers.bedridden"));
        let e = s
            .admit(
                &answers(json!({"allergies": "pen\u{0}icillin"})),
                Some(&v),
                None,
            )
            .unwrap_err();
        assert_eq!(e.field(), Some("answers.allergies"));
        let e = s
            .admit(
                &answers(json!({"allergies": "x".repeat(201)})),
                Some(&v),
                None,
            )
            .unwrap_err();
        assert_eq!(e.field(), Some("answers.allergies"));
    }

    #[test]
    fn risk_answers_raise_flags_and_screening() {
        let s = service("infant_jaundice_test");
        assert!(!s.requires_review);
        let v = consent("infant_jaundice_test");
        let a = s.admit(&BTreeMap::new(), Some(&v), None).unwrap();
        assert!(!a.needs_review && a.clinical.flags.is_empty());
        let a = s
            .admit(
                &answers(
                    json!({"bedridden": false, "infectious_disease": true, "allergies": "青霉素"}),
                ),
                Some(&v),
                None,
            )
            .unwrap();
        assert!(a.needs_review);
        assert_eq!(a.clinical.flags, ["allergies", "infectious_disease"]);
        assert_eq!(a.clinical.consent_version.as_deref(), Some(v.as_str()));
    }

    #[test]
    fn consent_is_required_and_current() {
        let s = service("infant_jaundice_test");
        assert_eq!(
            s.admit(&BTreeMap::new(), None, None).unwrap_err().code(),
            "consent_required"
        );
        assert_eq!(
            s.admit(&BTreeMap::new(), Some(" "), None)
                .unwrap_err()
                .field(),
            Some("consent_version")
        );
        assert_eq!(
            s.admit(&BTreeMap::new(), Some("1999-01-01"), None)
                .unwrap_err()
                .code(),
            "consent_outdated"
        );
    }

    #[test]
    fn doctor_order_where_the_service_needs_one() {
        for code in ["urinary_catheter_replacement", "picc_maintenance"] {
            let s = service(code);
            assert!(s.requires_doctor_order, "{code}");
            let v = consent(code);
            let e = s.admit(&BTreeMap::new(), Some(&v), None).unwrap_err();
            assert_eq!(
                (e.code(), e.field()),
                ("doctor_order_required", Some("doctor_order_ref"))
            );
            let a = s
                .admit(&BTreeMap::new(), Some(&v), Some("RX-2026-0001"))
                .unwrap();
            assert_eq!(a.clinical.doctor_order_ref.as_deref(), Some("RX-2026-0001"));
            assert!(a.needs_review, "{code} is screened");
        }
    }

    fn vitals() -> Value {
        json!({"temperature_c": 36.8, "bp_systolic": 120, "bp_diastolic": 80, "pulse": 72, "spo2": 98})
    }

    #[test]
    fn a_record_is_checked_against_its_template() {
        let s = service("infant_jaundice_test");
        let mut v = answers(vitals());
        v.insert("bilirubin_mg_dl".into(), json!(8.5));
        let (values, notes) = s.check_record(&v, Some("  all fine ")).unwrap();
        assert_eq!(values.len(), v.len());
        assert_eq!(notes.as_deref(), Some("all fine"));

        for (field, bad, code) in [
            ("temperature_c", json!(48.0), "out_of_range"),
            ("bp_systolic", json!(20), "out_of_range"),
            ("spo2", json!(101), "out_of_range"),
            ("pulse", json!("fast"), "invalid_value"),
            ("nonsense", json!(1), "unknown_field"),
        ] {
            let mut w = v.clone();
            w.insert(field.into(), bad);
            let e = s.check_record(&w, None).unwrap_err();
            assert_eq!(e.code(), code, "{field}");
            assert_eq!(e.field(), Some(format!("values.{field}").as_str()));
        }
        let mut w = v.clone();
        w.remove("pulse");
        let e = s.check_record(&w, None).unwrap_err();
        assert_eq!((e.code(), e.field()), ("required", Some("values.pulse")));
        let e = s.check_record(&v, Some("a\u{0}b")).unwrap_err();
        assert_eq!(e.field(), Some("notes"));
        let e = s.check_record(&v, Some(&"长".repeat(2001))).unwrap_err();
        assert_eq!(e.field(), Some("notes"));
        assert!(
            s.required_record_fields()
                .contains(&"values.spo2".to_owned())
        );
    }

    #[test]
    fn consent_by_and_review_reason() {
        assert_eq!(check_consent_by(Some(" 王女士 ")).unwrap(), "王女士");
        let e = check_consent_by(None).unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            ("consent_required", Some("consent_by"))
        );
        assert!(check_consent_by(Some("a\u{0}")).is_err());
        assert!(check_review_reason(" ").is_err());
        assert_eq!(check_review_reason(" 需先就医 ").unwrap(), "需先就医");
    }
}
