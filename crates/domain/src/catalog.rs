//! The service catalogue: categories, services and the skills a nurse needs for each.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clinical::ServiceClinical;
use crate::error::DomainError;

/// The longest skill code accepted.
pub const SKILL_MAX_LEN: usize = 40;

/// A skill a nurse holds and a service requires, e.g. `wound_care`.
///
/// A code of lowercase ascii letters, digits and `_`, 1 to 40 long; checked
/// on construction and on deserialisation. JSON: a plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Skill(String);

impl Skill {
    /// Checks and builds a skill code. Surrounding whitespace is ignored; case is not folded.
    pub fn new(code: &str) -> Result<Self, DomainError> {
        let code = code.trim();
        let bad = |reason| DomainError::InvalidSkill {
            value: code.chars().take(64).collect(),
            reason,
        };
        if code.is_empty() {
            return Err(bad("empty"));
        }
        if code.len() > SKILL_MAX_LEN {
            return Err(bad("longer than 40 characters"));
        }
        if !code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(bad(
                "only lowercase ascii letters, digits and _ are allowed",
            ));
        }
        Ok(Self(code.to_owned()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Skill {
    type Error = DomainError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Skill::new(&s)
    }
}

impl From<Skill> for String {
    fn from(s: Skill) -> String {
        s.0
    }
}

impl FromStr for Skill {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Skill::new(s)
    }
}

impl fmt::Display for Skill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Skill {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A group of services shown together in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// Stable code, e.g. `maternal_infant`.
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    /// Display order, ascending.
    pub sort: i32,
}

/// One orderable home-nursing service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Stable code, e.g. `wound_care`; orders refer to it.
    pub code: String,
    pub category_code: String,
    pub name_zh: String,
    pub name_en: String,
    /// Expected length of the visit, in minutes.
    pub duration_min: u32,
    /// Price in fen (RMB cents).
    pub price_cents: u32,
    /// Every one of these must be held by the nurse who does the visit.
    pub required_skills: Vec<Skill>,
    /// What the nurse's credentials must show (practice years, title,
    /// certificates); the pilot rules' minimum when the data says nothing.
    #[serde(default)]
    pub requirements: crate::credentials::Requirements,
    /// Inactive services stay in the catalogue (old orders refer to them) but cannot be ordered.
    #[serde(default = "default_true")]
    pub active: bool,
    /// Screening, doctor's order, intake questions, consent text and the
    /// visit-record form (their JSON keys sit beside the others').
    #[serde(flatten)]
    pub clinical: ServiceClinical,
}

fn default_true() -> bool {
    true
}

/// A skill in words, for the people who read skill codes (coordinators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillName {
    pub code: Skill,
    pub name_zh: String,
    pub name_en: String,
}

/// The seed file's skill names (a separate list: a service names its
/// skills by code, and the stored catalogue keeps only the codes).
#[derive(Deserialize)]
struct SeedSkills {
    #[serde(default)]
    skills: Vec<SkillName>,
}

/// The whole catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub categories: Vec<Category>,
    pub services: Vec<Service>,
}

/// The seed catalogue: the four categories and twenty services of the 壹心护 platform.
const SEED_JSON: &str = include_str!("../seed/catalog.json");

impl Catalog {
    /// The built-in seed catalogue (from `seed/catalog.json`, compiled in).
    #[expect(
        clippy::expect_used,
        reason = "the seed file is compiled in; its unit test proves it parses and is consistent"
    )]
    pub fn seed() -> Catalog {
        Catalog::from_json(SEED_JSON).expect("embedded seed catalogue is valid")
    }

    /// The names of the skills the seed's services require, in the seed's
    /// order (from `seed/catalog.json`, compiled in).
    #[expect(
        clippy::expect_used,
        reason = "the seed file is compiled in; its unit test proves every skill is named"
    )]
    pub fn seed_skill_names() -> Vec<SkillName> {
        serde_json::from_str::<SeedSkills>(SEED_JSON)
            .expect("embedded seed skill names are valid")
            .skills
    }

    /// Parses a catalogue from JSON and checks it with [`Catalog::validate`].
    pub fn from_json(json: &str) -> Result<Catalog, DomainError> {
        let catalog: Catalog =
            serde_json::from_str(json).map_err(|e| DomainError::InvalidCatalog {
                reason: e.to_string(),
            })?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// Checks consistency: unique category and service codes, every service's
    /// category exists, at least one required skill, duration and price > 0.
    pub fn validate(&self) -> Result<(), DomainError> {
        let bad = |reason: String| Err(DomainError::InvalidCatalog { reason });
        let mut categories = HashSet::new();
        for c in &self.categories {
            if c.code.trim().is_empty() {
                return bad("a category has an empty code".into());
            }
            if !categories.insert(c.code.as_str()) {
                return bad(format!("duplicate category {:?}", c.code));
            }
        }
        let mut services = HashSet::new();
        for s in &self.services {
            if s.code.trim().is_empty() {
                return bad("a service has an empty code".into());
            }
            if !services.insert(s.code.as_str()) {
                return bad(format!("duplicate service {:?}", s.code));
            }
            if !categories.contains(s.category_code.as_str()) {
                return bad(format!(
                    "service {:?} is in unknown category {:?}",
                    s.code, s.category_code
                ));
            }
            if s.required_skills.is_empty() {
                return bad(format!("service {:?} requires no skill", s.code));
            }
            if let Some(c) = s
                .requirements
                .certificates
                .iter()
                .find(|c| !crate::credentials::is_certificate_kind(c))
            {
                return bad(format!(
                    "service {:?} requires unknown certificate {c:?}",
                    s.code
                ));
            }
            if s.duration_min == 0 || s.price_cents == 0 {
                return bad(format!("service {:?} has a zero duration or price", s.code));
            }
            s.clinical.validate(&s.code).or_else(bad)?;
        }
        Ok(())
    }

    /// The service with this code, active or not.
    pub fn service(&self, code: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.code == code)
    }

    /// The service with this code if it can be ordered now: `unknown_service` or
    /// `service_inactive` otherwise.
    pub fn orderable_service(&self, code: &str) -> Result<&Service, DomainError> {
        match self.service(code) {
            None => Err(DomainError::UnknownService {
                code: code.chars().take(64).collect(),
            }),
            Some(s) if !s.active => Err(DomainError::ServiceInactive {
                code: s.code.clone(),
            }),
            Some(s) => Ok(s),
        }
    }

    /// The category with this code.
    pub fn category(&self, code: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.code == code)
    }

    /// The services of one category, in catalogue order.
    pub fn services_in(&self, category_code: &str) -> impl Iterator<Item = &Service> {
        self.services
            .iter()
            .filter(move |s| s.category_code == category_code)
    }

    /// Categories by their `sort` key (then code, so the order is total).
    pub fn categories_sorted(&self) -> Vec<&Category> {
        let mut v: Vec<_> = self.categories.iter().collect();
        v.sort_by(|a, b| a.sort.cmp(&b.sort).then_with(|| a.code.cmp(&b.code)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seed_parses_and_is_consistent() {
        let c = Catalog::from_json(SEED_JSON).unwrap();
        c.validate().unwrap();
        assert_eq!(c.categories.len(), 4);
        assert!(
            (18..=22).contains(&c.services.len()),
            "{}",
            c.services.len()
        );
        for s in &c.services {
            assert!(!s.required_skills.is_empty(), "{}", s.code);
            assert!(s.price_cents > 0 && s.duration_min > 0, "{}", s.code);
            assert!((20..=120).contains(&s.duration_min), "{}", s.code);
            assert!(c.category(&s.category_code).is_some(), "{}", s.code);
            assert!(!s.name_zh.is_empty() && !s.name_en.is_empty(), "{}", s.code);
        }
        for cat in &c.categories {
            assert!(c.services_in(&cat.code).count() >= 3, "{}", cat.code);
        }
        for s in &c.services {
            let k = &s.clinical;
            assert!(k.consent.is_some(), "{} has a consent text", s.code);
            assert!(
                k.intake.iter().filter(|q| q.red_flag).count() >= 5,
                "{}",
                s.code
            );
            for vital in [
                "temperature_c",
                "bp_systolic",
                "bp_diastolic",
                "pulse",
                "spo2",
            ] {
                let f = k.record_template.iter().find(|f| f.code == vital);
                assert!(
                    f.is_some_and(|f| f.min.is_some() && f.max.is_some()),
                    "{vital} of {}",
                    s.code
                );
            }
            assert!(
                k.record_template.len() > 5,
                "{} has its own record fields",
                s.code
            );
            assert!(!k.requires_doctor_order || k.requires_review, "{}", s.code);
        }
        // Most tests order the jaundice test: it dispatches at once.
        let jaundice = &c.service("infant_jaundice_test").unwrap().clinical;
        assert!(!jaundice.requires_review && !jaundice.requires_doctor_order);
        assert_eq!(Catalog::seed(), c);
    }

    #[test]
    fn every_seed_skill_has_a_name_in_both_languages() {
        let names = Catalog::seed_skill_names();
        let named: HashSet<&Skill> = names.iter().map(|n| &n.code).collect();
        assert_eq!(named.len(), names.len(), "no skill named twice");
        for s in &Catalog::seed().services {
            for k in &s.required_skills {
                assert!(named.contains(k), "{} of {} has no name", k, s.code);
            }
        }
        for n in &names {
            assert!(
                !n.name_zh.trim().is_empty() && !n.name_en.trim().is_empty(),
                "{}",
                n.code
            );
            assert!(
                Catalog::seed()
                    .services
                    .iter()
                    .any(|s| s.required_skills.contains(&n.code)),
                "{} is named but no service requires it",
                n.code
            );
        }
    }

    #[test]
    fn seed_has_the_categories_and_services_from_the_source() {
        let c = Catalog::seed();
        let cats: Vec<_> = c
            .categories_sorted()
            .into_iter()
            .map(|c| (c.code.as_str(), c.name_zh.as_str()))
            .collect();
        assert_eq!(
            cats,
            [
                ("maternal_infant", "母婴健康服务"),
                ("specialized_nursing", "专项护理服务"),
                ("rehab", "颈肩腰腿康服务"),
                ("oral_health", "口腔健康服务"),
            ]
        );
        for (code, zh, cat) in [
            ("infant_jaundice_test", "婴儿黄疸测定", "maternal_infant"),
            ("wound_care", "普通伤口护理", "specialized_nursing"),
            (
                "urinary_catheter_replacement",
                "导尿管置换",
                "specialized_nursing",
            ),
            ("cervical_package", "颈椎套餐", "rehab"),
            ("acute_low_back_pain_package", "急性腰痛套餐", "rehab"),
            ("dental_plaque_check", "口腔菌斑监测", "oral_health"),
        ] {
            let s = c.service(code).unwrap();
            assert_eq!(s.name_zh, zh);
            assert_eq!(s.category_code, cat);
            assert!(s.active);
            assert!(c.orderable_service(code).is_ok());
        }
    }

    #[test]
    fn seed_requirements_follow_the_pilot_rules() {
        let c = Catalog::seed();
        for s in &c.services {
            assert!(s.requirements.min_years >= 5, "{}", s.code);
            assert!(
                s.requirements.min_title >= crate::credentials::Title::SeniorNurse,
                "{}",
                s.code
            );
        }
        let certs = |code: &str| c.service(code).unwrap().requirements.certificates.clone();
        assert_eq!(certs("picc_maintenance"), ["picc"]);
        assert_eq!(certs("stoma_care"), ["wound_stoma"]);
        assert_eq!(certs("newborn_care"), ["maternal_infant"]);
        assert!(certs("cervical_package").is_empty());
    }

    #[test]
    fn inconsistent_catalogues_are_refused() {
        let mut c = Catalog::seed();
        c.services[1].code = c.services[0].code.clone();
        assert_eq!(c.validate().unwrap_err().code(), "invalid_catalog");

        let mut c = Catalog::seed();
        c.services[0].category_code = "nope".into();
        assert!(c.validate().is_err());

        let mut c = Catalog::seed();
        c.services[0].required_skills.clear();
        assert!(c.validate().is_err());

        let mut c = Catalog::seed();
        c.services[0].price_cents = 0;
        assert!(c.validate().is_err());

        let mut c = Catalog::seed();
        c.services[0].requirements.certificates = vec!["nope".into()];
        assert!(c.validate().is_err());

        assert!(Catalog::from_json("{").is_err());
        assert!(
            Catalog::from_json(
                r#"{"categories":[{"code":"a","name_zh":"","name_en":"","sort":1}],
                    "services":[{"code":"s","category_code":"a","name_zh":"","name_en":"",
                    "duration_min":1,"price_cents":1,"required_skills":["Bad Skill"]}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn orderable_service_errors() {
        let mut c = Catalog::seed();
        let e = c.orderable_service("no_such").unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            ("unknown_service", Some("service_code"))
        );
        c.services[0].active = false;
        let code = c.services[0].code.clone();
        assert_eq!(
            c.orderable_service(&code).unwrap_err().code(),
            "service_inactive"
        );
    }

    #[test]
    fn skill_validation() {
        for ok in [
            "a",
            "wound_care",
            "picc",
            "x1_2",
            &"a".repeat(40),
            " rehab ",
        ] {
            assert!(Skill::new(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "  ",
            "Wound",
            "wound-care",
            "wound care",
            "伤口",
            &"a".repeat(41),
        ] {
            let e = Skill::new(bad).unwrap_err();
            assert_eq!((e.code(), e.field()), ("invalid_skill", Some("skills")));
        }
        assert_eq!(Skill::new(" rehab ").unwrap().as_str(), "rehab");
        assert!(serde_json::from_str::<Skill>("\"UPPER\"").is_err());
    }

    proptest! {
        #[test]
        fn skill_accepts_exactly_the_code_alphabet(s in "[a-z0-9_A-Z -]{0,45}") {
            let t = s.trim();
            let valid = !t.is_empty() && t.len() <= 40
                && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            prop_assert_eq!(Skill::new(&s).is_ok(), valid);
        }

        #[test]
        fn skill_serde_round_trip(s in "[a-z0-9_]{1,40}") {
            let skill = Skill::new(&s).unwrap();
            let json = serde_json::to_string(&skill).unwrap();
            prop_assert_eq!(&json, &format!("\"{s}\""));
            prop_assert_eq!(serde_json::from_str::<Skill>(&json).unwrap(), skill);
        }
    }
}
