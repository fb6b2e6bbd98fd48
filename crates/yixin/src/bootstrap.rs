//! Bootstrap commands for an operator starting from nothing:
//! `yixin org create`, `yixin area import FILE.geojson` and
//! `yixin nurse import FILE.csv`.
//!
//! Every import reads and checks the whole file first and writes nothing
//! when any line is wrong (all the problems are reported, each with its line
//! or feature); a re-import of the same file changes nothing. The checks are
//! the domain's own (`ServiceArea::new`, `Nurse::new`, `PhoneNumber`,
//! `CredentialsInput::validated`) and the roster's skill rule (a skill no
//! service of the catalogue asks for is refused), so a file can hold nothing
//! the API would refuse.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use yixin_domain::{
    AreaId, Catalog, Certificate, Credentials, CredentialsInput, DomainError, GeoJsonPolygon,
    Nurse, OrgId, PhoneNumber, ServiceArea, Skill, Title, Verification,
};
use yixin_store::{AuditEntry, Store, StoreError, audit_action};

/// Who the audit trail names for imported credentials, unless `--by` says.
pub const DEFAULT_ACTOR: &str = "bootstrap";
/// The audit trail's role for the operator's command line.
pub const ACTOR_ROLE: &str = "operator";

/// One problem in an imported file: where (a CSV line, or a GeoJSON
/// feature), which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `line 4` or `features[2]`.
    pub at: String,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.at, self.message)
        } else {
            write!(f, "{}: {}: {}", self.at, self.field, self.message)
        }
    }
}

/// What a bootstrap command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The file has mistakes; nothing was written.
    #[error("{} problem(s), nothing written:\n{}", .0.len(), list(.0))]
    Invalid(Vec<Problem>),
    /// A bad command-line value (`--id`, `--name`).
    #[error("`{field}`: {message}")]
    Argument {
        field: &'static str,
        message: String,
    },
    #[error("no organisation `{0}`: create it first with `yixin org create --id {0} --name NAME`")]
    UnknownOrganization(String),
    #[error("the database: {0}")]
    Store(#[from] StoreError),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn problem(at: &str, field: &str, message: impl Into<String>) -> Problem {
    let message = message.into();
    // Domain errors may already start with the field's name.
    let message = match message.strip_prefix(&format!("{field}: ")) {
        Some(rest) if !field.is_empty() => rest.to_owned(),
        _ => message,
    };
    Problem {
        at: at.to_owned(),
        field: field.to_owned(),
        message,
    }
}

/// What happened to one thing a command touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        }
    }
}

// ---------------------------------------------------------------- org create

/// Creates organisation `id` named `name`; an existing one is left as it is
/// ([`Outcome::Unchanged`]). The id follows the tokens' rule (1–64 of
/// `A-Z a-z 0-9 _ . : @ -`): it is every coordinator token's `org`.
pub async fn create_org(store: &Store, id: &str, name: &str) -> Result<Outcome, BootstrapError> {
    if !yixin_auth::is_valid_identifier(id) {
        return Err(BootstrapError::Argument {
            field: "--id",
            message: "must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.`, `:`, `@`, `-`"
                .to_owned(),
        });
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(BootstrapError::Argument {
            field: "--name",
            message: "must be 1 to 100 printable characters".to_owned(),
        });
    }
    let org = OrgId::from(id);
    if store.organization_exists(&org).await? {
        return Ok(Outcome::Unchanged);
    }
    store.ensure_organization(&org, name).await?;
    Ok(Outcome::Created)
}

async fn known_org(store: &Store, org: &OrgId) -> Result<(), BootstrapError> {
    if store.organization_exists(org).await? {
        Ok(())
    } else {
        Err(BootstrapError::UnknownOrganization(org.as_str().to_owned()))
    }
}

// --------------------------------------------------------------- area import

/// One service area read from a GeoJSON file (a MultiPolygon feature gives
/// one per polygon).
#[derive(Debug, Clone, PartialEq)]
pub struct AreaRow {
    pub name: String,
    pub polygon: GeoJsonPolygon,
}

/// Reads a GeoJSON `FeatureCollection` (or one `Feature`) whose features
/// are `Polygon`s or `MultiPolygon`s with a `name` property. A
/// MultiPolygon named `N` with k > 1 parts gives the areas `N #1` … `N #k`.
/// Positions may carry an altitude (ignored). Each polygon is checked as
/// the API checks one (`ServiceArea::new`); names must be unique in the
/// file.
pub fn parse_areas(text: &str) -> Result<Vec<AreaRow>, BootstrapError> {
    let doc: Value = serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| {
        BootstrapError::Invalid(vec![problem(
            &format!("line {}", e.line()),
            "",
            format!("not JSON: {e}"),
        )])
    })?;
    let features: Vec<&Value> = match doc.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => match doc.get("features").and_then(Value::as_array) {
            Some(f) => f.iter().collect(),
            None => {
                return Err(BootstrapError::Invalid(vec![problem(
                    "file",
                    "features",
                    "a FeatureCollection needs a `features` array",
                )]));
            }
        },
        Some("Feature") => vec![&doc],
        _ => {
            return Err(BootstrapError::Invalid(vec![problem(
                "file",
                "type",
                "expected a GeoJSON FeatureCollection or Feature",
            )]));
        }
    };
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let mut names = HashSet::new();
    if features.is_empty() {
        problems.push(problem("file", "features", "no features"));
    }
    for (i, feature) in features.into_iter().enumerate() {
        let at = format!("features[{i}]");
        let name = feature
            .get("properties")
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("");
        if name.is_empty() {
            problems.push(problem(&at, "properties.name", "required (a text)"));
            continue;
        }
        let geometry = feature.get("geometry").unwrap_or(&Value::Null);
        let kind = geometry.get("type").and_then(Value::as_str).unwrap_or("");
        let coordinates = geometry.get("coordinates").unwrap_or(&Value::Null);
        let polygons: Vec<&Value> = match (kind, coordinates.as_array()) {
            ("Polygon", Some(_)) => vec![coordinates],
            ("MultiPolygon", Some(parts)) if !parts.is_empty() => parts.iter().collect(),
            _ => {
                problems.push(problem(
                    &at,
                    "geometry",
                    "must be a Polygon or a non-empty MultiPolygon",
                ));
                continue;
            }
        };
        let k = polygons.len();
        for (j, polygon) in polygons.into_iter().enumerate() {
            let part_name = if k > 1 {
                format!("{name} #{}", j + 1)
            } else {
                name.to_owned()
            };
            let field = if k > 1 {
                format!("geometry.coordinates[{j}]")
            } else {
                "geometry.coordinates".to_owned()
            };
            let geo = match rings(polygon) {
                Ok(rings) => GeoJsonPolygon {
                    r#type: "Polygon".to_owned(),
                    coordinates: rings,
                },
                Err(message) => {
                    problems.push(problem(&at, &field, message));
                    continue;
                }
            };
            // The API's own checks (name length, a valid polygon).
            let checked = ServiceArea::new(
                AreaId::new(),
                OrgId::from("check"),
                part_name.clone(),
                geo.clone(),
            );
            match checked {
                Ok(area) => {
                    if !names.insert(area.name.clone()) {
                        problems.push(problem(
                            &at,
                            "properties.name",
                            format!("`{}` is in the file twice", area.name),
                        ));
                        continue;
                    }
                    rows.push(AreaRow {
                        name: area.name,
                        polygon: geo,
                    });
                }
                Err(e) => problems.push(problem(&at, &field, e.to_string())),
            }
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(BootstrapError::Invalid(problems))
    }
}

/// `[[[lng, lat(, alt)], …], …]` → rings of `[lng, lat]`.
fn rings(value: &Value) -> Result<Vec<Vec<[f64; 2]>>, String> {
    let bad = || "rings of [longitude, latitude] positions expected".to_owned();
    let rings = value.as_array().ok_or_else(bad)?;
    rings
        .iter()
        .map(|ring| {
            ring.as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|pos| {
                    let pos = pos.as_array().ok_or_else(bad)?;
                    match (
                        pos.first().and_then(Value::as_f64),
                        pos.get(1).and_then(Value::as_f64),
                    ) {
                        (Some(lng), Some(lat)) => Ok([lng, lat]),
                        _ => Err(bad()),
                    }
                })
                .collect()
        })
        .collect()
}

/// One imported area and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaResult {
    pub name: String,
    pub id: AreaId,
    pub outcome: Outcome,
}

/// Saves the areas of `text` for `org`: an area of the same name is
/// replaced (same id), others are added; areas not in the file are kept.
/// With `dry_run`, only checks and reports.
pub async fn import_areas(
    store: &Store,
    org: &OrgId,
    text: &str,
    dry_run: bool,
) -> Result<Vec<AreaResult>, BootstrapError> {
    let rows = parse_areas(text)?;
    known_org(store, org).await?;
    let existing: HashMap<String, ServiceArea> = store
        .service_areas(org)
        .await?
        .into_iter()
        .map(|a| (a.name.clone(), a))
        .collect();
    let mut results = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, outcome) = match existing.get(&row.name) {
            Some(old) if old.to_geojson() == row.polygon => (old.id, Outcome::Unchanged),
            Some(old) => (old.id, Outcome::Updated),
            None => (AreaId::new(), Outcome::Created),
        };
        if outcome != Outcome::Unchanged && !dry_run {
            let area =
                ServiceArea::new(id, org.clone(), row.name.clone(), row.polygon).map_err(|e| {
                    BootstrapError::Invalid(vec![problem(&row.name, "", e.to_string())])
                })?;
            store.upsert_service_area(&area).await?;
        }
        results.push(AreaResult {
            name: row.name,
            id,
            outcome,
        });
    }
    Ok(results)
}

// -------------------------------------------------------------- nurse import

/// The nurse file's columns. `name`, `phone` and `skills` are required;
/// the credentials columns go together.
pub const NURSE_COLUMNS: [&str; 10] = [
    "name",
    "phone",
    "skills",
    "external_id",
    "active",
    "licence_no",
    "first_registered_on",
    "title",
    "certificates",
    "verified",
];

/// One checked line of the nurse file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NurseRow {
    /// The line the record starts on.
    pub line: usize,
    pub name: String,
    pub phone: PhoneNumber,
    pub skills: Vec<Skill>,
    pub external_id: Option<String>,
    pub active: bool,
    pub credentials: Option<CredentialsInput>,
    /// The operator checked the credentials against the register.
    pub verified: bool,
}

/// Reads the nurse CSV (UTF-8, a header line naming the columns in any
/// order, comma-separated, `"` quoting): see [`NURSE_COLUMNS`] and the
/// README's Deploy section. `skills` and `certificates` are lists separated
/// by `;`; a certificate is `code:number:issued_on[:expires_on]`. `title` is
/// the API's code (`senior_nurse`) or the Chinese title (护师). `active` and
/// `verified` take `yes`/`no` (also `true`/`false`, `1`/`0`, 是/否).
/// `known_skills` are the skills some service of the catalogue requires;
/// `today` bounds the dates (China's day).
pub fn parse_nurses(
    text: &str,
    known_skills: &HashSet<Skill>,
    today: NaiveDate,
) -> Result<Vec<NurseRow>, BootstrapError> {
    let records = parse_csv(text.trim_start_matches('\u{feff}')).map_err(|(line, message)| {
        BootstrapError::Invalid(vec![problem(&format!("line {line}"), "", message)])
    })?;
    let mut records = records.into_iter();
    let Some((_, header)) = records.next() else {
        return Err(BootstrapError::Invalid(vec![problem(
            "line 1",
            "",
            "empty file: a header line is required (name,phone,skills,…)",
        )]));
    };
    let mut problems = Vec::new();
    let mut index: HashMap<&'static str, usize> = HashMap::new();
    let header: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for (i, col) in header.iter().enumerate() {
        match NURSE_COLUMNS.iter().find(|c| **c == col.as_str()) {
            Some(known) => {
                if index.insert(known, i).is_some() {
                    problems.push(problem("line 1", col, "column named twice"));
                }
            }
            None => problems.push(problem(
                "line 1",
                col,
                format!(
                    "unknown column; the columns are {}",
                    NURSE_COLUMNS.join(", ")
                ),
            )),
        }
    }
    for required in ["name", "phone", "skills"] {
        if !index.contains_key(required) {
            problems.push(problem("line 1", required, "required column missing"));
        }
    }
    if !problems.is_empty() {
        return Err(BootstrapError::Invalid(problems));
    }
    let mut rows = Vec::new();
    let mut phones: HashMap<String, usize> = HashMap::new();
    let mut external_ids: HashMap<String, usize> = HashMap::new();
    for (line, record) in records {
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let at = format!("line {line}");
        if record.len() != header.len() {
            problems.push(problem(
                &at,
                "",
                format!("{} field(s), the header has {}", record.len(), header.len()),
            ));
            continue;
        }
        let fields = Fields {
            index: &index,
            record: &record,
        };
        // Duplicates are looked for on every line, valid or not.
        if let Ok(phone) = PhoneNumber::new(fields.get("phone"))
            && let Some(first) = phones.insert(phone.as_str().to_owned(), line)
        {
            problems.push(problem(
                &at,
                "phone",
                format!("{} is already on line {first}", phone.as_str()),
            ));
        }
        if let Ok(ext) = yixin_domain::external_id(fields.get("external_id"))
            && let Some(first) = external_ids.insert(ext.clone(), line)
        {
            problems.push(problem(
                &at,
                "external_id",
                format!("`{ext}` is already on line {first}"),
            ));
        }
        match nurse_row(line, &fields, known_skills, today) {
            Ok(row) => rows.push(row),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if rows.is_empty() && problems.is_empty() {
        problems.push(problem("file", "", "no nurses: only a header line"));
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(BootstrapError::Invalid(problems))
    }
}

/// One CSV record's fields by column name.
struct Fields<'r> {
    index: &'r HashMap<&'static str, usize>,
    record: &'r [String],
}

impl<'r> Fields<'r> {
    /// The trimmed field, empty when the column is absent.
    fn get(&self, col: &str) -> &'r str {
        self.index
            .get(col)
            .and_then(|&i| self.record.get(i))
            .map_or("", |s| s.trim())
    }
}

fn nurse_row(
    line: usize,
    fields: &Fields<'_>,
    known_skills: &HashSet<Skill>,
    today: NaiveDate,
) -> Result<NurseRow, Vec<Problem>> {
    let at = format!("line {line}");
    let get = |col: &str| fields.get(col);
    let mut problems = Vec::new();
    let phone = PhoneNumber::new(get("phone"))
        .map_err(|e| problems.push(problem(&at, "phone", e.to_string())))
        .ok();
    let mut skills = Vec::new();
    let mut skill_problems = false;
    for code in get("skills")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match Skill::new(code) {
            Ok(skill) if known_skills.contains(&skill) => skills.push(skill),
            Ok(skill) => {
                skill_problems = true;
                problems.push(problem(
                    &at,
                    "skills",
                    format!("no service in the catalogue requires `{}`", skill.as_str()),
                ));
            }
            Err(e) => {
                skill_problems = true;
                problems.push(problem(&at, "skills", e.to_string()));
            }
        }
    }
    // Name and skills as the roster checks them.
    let checked = phone.clone().map(|phone| {
        Nurse::new(
            OrgId::from("check"),
            get("name"),
            phone,
            skills.clone(),
            Utc::now(),
        )
    });
    if let Some(Err(e)) = &checked {
        let field = e.field().unwrap_or("name");
        // "skills is required" says nothing more than the skills' own problems.
        if !(field == "skills" && skill_problems) {
            problems.push(problem(&at, field, e.to_string()));
        }
    }
    let external_id = match get("external_id") {
        "" => None,
        raw => yixin_domain::external_id(raw)
            .map_err(|e| problems.push(problem(&at, "external_id", e.to_string())))
            .ok(),
    };
    let active = yes_no(get("active"), true)
        .map_err(|m| problems.push(problem(&at, "active", m)))
        .unwrap_or(true);
    let verified = yes_no(get("verified"), false)
        .map_err(|m| problems.push(problem(&at, "verified", m)))
        .unwrap_or(false);
    let credentials = credentials(&at, fields, today).map_err(|mut p| problems.append(&mut p));
    let credentials = credentials.unwrap_or(None);
    if verified && credentials.is_none() && problems.is_empty() {
        problems.push(problem(
            &at,
            "verified",
            "needs the credentials (licence_no, first_registered_on, title)",
        ));
    }
    match (checked, problems.is_empty()) {
        (Some(Ok(nurse)), true) => Ok(NurseRow {
            line,
            name: nurse.name,
            phone: nurse.phone,
            skills: nurse.skills,
            external_id,
            active,
            credentials,
            verified,
        }),
        _ => Err(problems),
    }
}

fn credentials(
    at: &str,
    fields: &Fields<'_>,
    today: NaiveDate,
) -> Result<Option<CredentialsInput>, Vec<Problem>> {
    let (licence, registered, title, certs) = (
        fields.get("licence_no"),
        fields.get("first_registered_on"),
        fields.get("title"),
        fields.get("certificates"),
    );
    if [licence, registered, title, certs]
        .iter()
        .all(|s| s.is_empty())
    {
        return Ok(None);
    }
    let mut problems = Vec::new();
    for (col, value) in [
        ("licence_no", licence),
        ("first_registered_on", registered),
        ("title", title),
    ] {
        if value.is_empty() {
            problems.push(problem(
                at,
                col,
                "required with the other credentials columns",
            ));
        }
    }
    let first_registered_on = date(registered)
        .map_err(|m| {
            if !registered.is_empty() {
                problems.push(problem(at, "first_registered_on", m));
            }
        })
        .ok();
    let title = parse_title(title)
        .map_err(|m| {
            if !title.is_empty() {
                problems.push(problem(at, "title", m));
            }
        })
        .ok();
    let mut certificates = Vec::new();
    for (i, cert) in certs
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        match certificate(cert) {
            Ok(c) => certificates.push(c),
            Err(m) => problems.push(problem(at, &format!("certificates[{i}]"), m)),
        }
    }
    let (Some(first_registered_on), Some(title), true) =
        (first_registered_on, title, problems.is_empty())
    else {
        return Err(problems);
    };
    CredentialsInput {
        licence_no: licence.to_owned(),
        first_registered_on,
        title,
        certificates,
    }
    .validated(today)
    .map(Some)
    .map_err(|e: DomainError| {
        let field = e.field_path().unwrap_or_default();
        vec![problem(at, &field, e.to_string())]
    })
}

fn date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

fn parse_title(s: &str) -> Result<Title, String> {
    Title::ALL
        .into_iter()
        .find(|t| t.as_str() == s || t.label_zh() == s)
        .ok_or_else(|| {
            format!(
                "`{s}` is not a title; one of {}",
                Title::ALL
                    .iter()
                    .map(|t| format!("{} ({})", t.as_str(), t.label_zh()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// `code:number:issued_on[:expires_on]`.
fn certificate(s: &str) -> Result<Certificate, String> {
    let parts: Vec<&str> = s.split(':').map(str::trim).collect();
    let (code, number, issued, expires) = match parts.as_slice() {
        [code, number, issued] => (*code, *number, *issued, None),
        [code, number, issued, expires] => (*code, *number, *issued, Some(*expires)),
        _ => {
            return Err(format!(
                "`{s}`: expected code:number:issued_on[:expires_on]"
            ));
        }
    };
    Ok(Certificate {
        code: code.to_owned(),
        number: number.to_owned(),
        issued_on: date(issued)?,
        expires_on: match expires {
            None | Some("") => None,
            Some(e) => Some(date(e)?),
        },
    })
}

fn yes_no(s: &str, default: bool) -> Result<bool, String> {
    match s.to_lowercase().as_str() {
        "" => Ok(default),
        "yes" | "y" | "true" | "1" | "是" => Ok(true),
        "no" | "n" | "false" | "0" | "否" => Ok(false),
        _ => Err(format!("`{s}`: yes or no")),
    }
}

/// One CSV record: the line it starts on, and its fields.
pub type CsvRecord = (usize, Vec<String>);

/// RFC 4180 CSV: records of fields, each with the line it starts on.
/// Fields may be quoted (`"a, b"`, `""` for a quote, line breaks inside);
/// lines end with LF or CRLF.
pub fn parse_csv(text: &str) -> Result<Vec<CsvRecord>, (usize, String)> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut start = 1;
    let mut quoted = false;
    let mut after_quote = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    quoted = false;
                    after_quote = true;
                }
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() && !after_quote => {
                field.clear();
                quoted = true;
            }
            '"' => return Err((line, "a quote inside an unquoted field".to_owned())),
            ',' => {
                record.push(std::mem::take(&mut field));
                after_quote = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push((start, std::mem::take(&mut record)));
                after_quote = false;
                line += 1;
                start = line;
            }
            c if after_quote && !c.is_whitespace() => {
                return Err((line, "text after a closing quote".to_owned()));
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err((start, "a quoted field is never closed".to_owned()));
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push((start, record));
    }
    Ok(records)
}

/// What a nurse import did, nurse by nurse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NurseResult {
    pub line: usize,
    pub name: String,
    pub id: yixin_domain::NurseId,
    pub outcome: Outcome,
    /// The credentials' state after the import (`None`: none entered).
    pub verification: Option<Verification>,
}

/// Adds the nurses of `csv` to `org`'s roster, or updates the nurse with
/// the same phone (or external id): name, skills, external id, active, and
/// the credentials. Credentials that differ from the stored ones are
/// entered anew (pending, or verified by `by` when `verified` says so);
/// `verified = no` never revokes a verification (a coordinator rejects in
/// the dashboard). Each credentials change is in the audit trail under
/// `by`. With `dry_run`, only checks and reports.
pub async fn import_nurses(
    store: &Store,
    org: &OrgId,
    csv: &str,
    by: &str,
    dry_run: bool,
) -> Result<Vec<NurseResult>, BootstrapError> {
    let catalog: Catalog = store.catalog().await?;
    let known: HashSet<Skill> = catalog
        .services
        .iter()
        .flat_map(|s| s.required_skills.iter().cloned())
        .collect();
    let now = Utc::now();
    let rows = parse_nurses(csv, &known, yixin_dispatch_core::visit_day(now))?;
    known_org(store, org).await?;
    let roster = store.nurses(org).await?;
    let mut results = Vec::with_capacity(rows.len());
    let mut audit = Vec::new();
    for row in rows {
        let existing = roster.iter().find(|n| {
            n.phone == row.phone || (row.external_id.is_some() && n.external_id == row.external_id)
        });
        let (mut nurse, mut outcome) = match existing {
            Some(n) => {
                let mut changed = n.clone();
                changed.name = row.name.clone();
                changed.phone = row.phone.clone();
                changed.skills = row.skills.clone();
                changed.external_id = row.external_id.clone();
                changed.active = row.active;
                let outcome = if changed == *n {
                    Outcome::Unchanged
                } else {
                    if !dry_run {
                        store.update_nurse(&changed).await?;
                    }
                    Outcome::Updated
                };
                (changed, outcome)
            }
            None => {
                let mut nurse = Nurse::new(
                    org.clone(),
                    &row.name,
                    row.phone.clone(),
                    row.skills.clone(),
                    now,
                )
                .map_err(|e| {
                    BootstrapError::Invalid(vec![problem(
                        &format!("line {}", row.line),
                        e.field().unwrap_or(""),
                        e.to_string(),
                    )])
                })?;
                nurse.external_id = row.external_id.clone();
                nurse.active = row.active;
                if !dry_run {
                    store.insert_nurse(&nurse).await?;
                }
                (nurse, Outcome::Created)
            }
        };
        if let Some(input) = row.credentials {
            let (credentials, entered, verified) =
                credentials_after(nurse.credentials.as_ref(), input, row.verified, by, now);
            if entered || verified {
                if !dry_run {
                    store.put_credentials(&nurse, &credentials).await?;
                }
                if outcome == Outcome::Unchanged {
                    outcome = Outcome::Updated;
                }
                let entry = |action: &str, detail: Option<String>| AuditEntry {
                    org: org.clone(),
                    actor_sub: by.to_owned(),
                    actor_role: ACTOR_ROLE.to_owned(),
                    action: action.to_owned(),
                    subject_kind: "nurse".to_owned(),
                    subject_id: nurse.id.to_string(),
                    client_addr: None,
                    detail,
                    at: now,
                };
                if entered {
                    audit.push(entry(
                        audit_action::CREDENTIALS_CHANGED,
                        Some(format!(
                            "licence {}, {}, {} certificate(s); imported by `yixin nurse import`",
                            credentials.licence_no,
                            credentials.title.as_str(),
                            credentials.certificates.len()
                        )),
                    ));
                }
                if verified {
                    audit.push(entry(
                        audit_action::CREDENTIALS_VERIFIED,
                        Some("verified by the operator's import file".to_owned()),
                    ));
                }
            }
            nurse.credentials = Some(credentials);
        }
        results.push(NurseResult {
            line: row.line,
            name: nurse.name.clone(),
            id: nurse.id,
            outcome,
            verification: nurse.credentials.as_ref().map(|c| c.verification),
        });
    }
    if !dry_run {
        store.audit_many(&audit).await?;
    }
    Ok(results)
}

/// The credentials after an import line: (credentials, entered anew,
/// newly verified). The same data as stored keeps its review (and is
/// verified if the line says so and it is not yet); other data is entered
/// anew, pending unless the line says verified.
pub fn credentials_after(
    stored: Option<&Credentials>,
    input: CredentialsInput,
    verified: bool,
    by: &str,
    now: DateTime<Utc>,
) -> (Credentials, bool, bool) {
    let same = stored.filter(|c| {
        c.licence_no == input.licence_no
            && c.first_registered_on == input.first_registered_on
            && c.title == input.title
            && c.certificates == input.certificates
    });
    let (mut credentials, entered) = match same {
        Some(c) => (c.clone(), false),
        None => (Credentials::entered(input, by, now), true),
    };
    let newly_verified = verified && credentials.verification != Verification::Verified;
    if newly_verified {
        credentials.verification = Verification::Verified;
        credentials.reviewed_by = Some(by.to_owned());
        credentials.reviewed_at = Some(now);
        credentials.reject_reason = None;
    }
    (credentials, entered, newly_verified)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn skills() -> HashSet<Skill> {
        ["wound_care", "catheter_care"]
            .into_iter()
            .map(|s| Skill::new(s).unwrap())
            .collect()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
    }

    fn problems(e: BootstrapError) -> Vec<String> {
        match e {
            BootstrapError::Invalid(p) => p.iter().map(ToString::to_string).collect(),
            other => panic!("expected problems, got {other}"),
        }
    }

    #[test]
    fn csv_quotes_commas_line_breaks_and_crlf() {
        let recs =
            parse_csv("a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\nlast,,\n").unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0], (1, vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(
            recs[1],
            (
                2,
                vec!["x, y".into(), "say \"hi\"".into(), "two\nlines".into()]
            )
        );
        // The record after a line break inside quotes starts on line 4.
        assert_eq!(
            recs[2],
            (4, vec!["last".into(), String::new(), String::new()])
        );
        assert_eq!(parse_csv("a,\"open\n").unwrap_err().0, 1);
        assert!(parse_csv("a,b\"c\n").is_err());
    }

    #[test]
    fn a_good_file_gives_checked_rows() {
        let csv = "name,phone,skills,title,licence_no,first_registered_on,certificates,verified\n\
                   李护士,139 0000 1111,wound_care;catheter_care,护师,L-1,2015-03-01,\
                   wound_stoma:WS-9:2020-01-01:2030-01-01,yes\n\
                   王护士,13900002222,wound_care,,,,,\n";
        let rows = parse_nurses(csv, &skills(), today()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].phone.as_str(), "13900001111");
        assert_eq!(rows[0].skills.len(), 2);
        let c = rows[0].credentials.as_ref().unwrap();
        assert_eq!(c.title, Title::SeniorNurse);
        assert_eq!(c.certificates[0].code, "wound_stoma");
        assert!(rows[0].verified);
        assert!(rows[1].credentials.is_none());
        assert!(!rows[1].verified);
    }

    #[test]
    fn every_bad_line_is_reported_with_its_line_and_field() {
        let csv = "name,phone,skills,title,licence_no,first_registered_on,verified\n\
                   ,13900001111,wound_care,,,,\n\
                   李,12345,wound_care,,,,\n\
                   王,13900003333,flying,,,,\n\
                   赵,13900004444,wound_care,doctor,L,2015-01-01,\n\
                   钱,13900005555,wound_care,护师,L,2099-01-01,\n\
                   孙,13900006666,wound_care,,,,yes\n\
                   周,139 0000 6666,wound_care,,,,\n\
                   吴,13900007777\n";
        let p = problems(parse_nurses(csv, &skills(), today()).unwrap_err());
        let want = [
            "line 2: name:",
            "line 3: phone:",
            "line 4: skills: no service in the catalogue requires `flying`",
            "line 5: title: `doctor` is not a title",
            "line 6: first_registered_on:",
            "line 7: verified: needs the credentials",
            "line 8: phone: 13900006666 is already on line 7",
            "line 9: 2 field(s), the header has 7",
        ];
        for w in want {
            assert!(
                p.iter().any(|p| p.starts_with(w)),
                "missing {w:?} in {p:#?}"
            );
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");
    }

    #[test]
    fn the_header_is_checked() {
        let p = problems(parse_nurses("name,phon,skills\n", &skills(), today()).unwrap_err());
        assert!(
            p.iter().any(|p| p.contains("phon: unknown column")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.contains("phone: required column missing")),
            "{p:?}"
        );
        let p = problems(parse_nurses("", &skills(), today()).unwrap_err());
        assert!(p[0].contains("header line is required"), "{p:?}");
        let p = problems(parse_nurses("name,phone,skills\n", &skills(), today()).unwrap_err());
        assert!(p[0].contains("no nurses"), "{p:?}");
    }

    #[test]
    fn certificates_are_checked_each() {
        let csv = "name,phone,skills,title,licence_no,first_registered_on,certificates\n\
                   李,13900001111,wound_care,护师,L,2015-01-01,picc:P1;bogus:X:2020-01-01\n";
        let p = problems(parse_nurses(csv, &skills(), today()).unwrap_err());
        assert!(
            p.iter()
                .any(|p| p.starts_with("line 2: certificates[0]: `picc:P1`")),
            "{p:?}"
        );
        let csv = "name,phone,skills,title,licence_no,first_registered_on,certificates\n\
                   李,13900001111,wound_care,护师,L,2015-01-01,bogus:X:2020-01-01\n";
        let p = problems(parse_nurses(csv, &skills(), today()).unwrap_err());
        assert!(
            p.iter().any(|p| p.starts_with("line 2: certificates[0]")),
            "{p:?}"
        );
    }

    fn square(name: &str) -> String {
        format!(
            r#"{{"type":"Feature","properties":{{"name":"{name}"}},"geometry":{{"type":"Polygon",
            "coordinates":[[[106.30,29.38],[106.33,29.38],[106.33,29.41],[106.30,29.41],[106.30,29.38]]]}}}}"#
        )
    }

    #[test]
    fn areas_from_polygons_and_multipolygons() {
        let multi = r#"{"type":"Feature","properties":{"name":"两片"},"geometry":{"type":"MultiPolygon",
            "coordinates":[[[[106.20,29.30,0],[106.21,29.30,0],[106.21,29.31,0],[106.20,29.30,0]]],
                           [[[106.40,29.30],[106.41,29.30],[106.41,29.31],[106.40,29.30]]]]}}"#;
        let fc = format!(
            r#"{{"type":"FeatureCollection","features":[{},{multi}]}}"#,
            square("双福")
        );
        let rows = parse_areas(&fc).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["双福", "两片 #1", "两片 #2"]);
        // The altitude is dropped.
        assert_eq!(rows[1].polygon.coordinates[0][0], [106.20, 29.30]);
    }

    #[test]
    fn bad_areas_name_the_feature() {
        let bowtie = r#"{"type":"Feature","properties":{"name":"bow"},"geometry":{"type":"Polygon",
            "coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}}"#;
        let point = r#"{"type":"Feature","properties":{"name":"pt"},"geometry":{"type":"Point","coordinates":[0,0]}}"#;
        let unnamed = r#"{"type":"Feature","properties":{},"geometry":null}"#;
        let fc = format!(
            r#"{{"type":"FeatureCollection","features":[{bowtie},{point},{unnamed},{},{}]}}"#,
            square("twice"),
            square("twice")
        );
        let p = problems(parse_areas(&fc).unwrap_err());
        assert!(
            p[0].starts_with("features[0]: geometry.coordinates:"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("features[1]: geometry: must be a Polygon"),
            "{p:?}"
        );
        assert!(
            p[2].starts_with("features[2]: properties.name: required"),
            "{p:?}"
        );
        assert!(
            p[3].starts_with("features[4]: properties.name: `twice` is in the file twice"),
            "{p:?}"
        );
        assert_eq!(p.len(), 4, "{p:?}");
        let p = problems(parse_areas("{not json").unwrap_err());
        assert!(p[0].contains("not JSON"), "{p:?}");
        let p = problems(parse_areas(r#"{"type":"Polygon","coordinates":[]}"#).unwrap_err());
        assert!(p[0].contains("FeatureCollection or Feature"), "{p:?}");
    }

    #[test]
    fn credentials_keep_their_review_when_unchanged() {
        let input = CredentialsInput {
            licence_no: "L".into(),
            first_registered_on: NaiveDate::from_ymd_opt(2015, 1, 1).unwrap(),
            title: Title::SeniorNurse,
            certificates: vec![],
        };
        let now = Utc::now();
        let (c, entered, verified) = credentials_after(None, input.clone(), false, "ops", now);
        assert!(entered && !verified);
        assert_eq!(c.verification, Verification::Pending);
        // The same again, now verified: verified, not entered anew.
        let (v, entered, verified) = credentials_after(Some(&c), input.clone(), true, "ops", now);
        assert!(!entered && verified);
        assert_eq!(v.verification, Verification::Verified);
        assert_eq!(v.reviewed_by.as_deref(), Some("ops"));
        // The same once more, `verified = no`: nothing changes, nothing revoked.
        let (again, entered, verified) =
            credentials_after(Some(&v), input.clone(), false, "ops", now);
        assert!(!entered && !verified);
        assert_eq!(again, v);
        // Changed data: entered anew, pending again.
        let mut other = input;
        other.licence_no = "L2".into();
        let (c2, entered, _) = credentials_after(Some(&v), other, false, "ops", now);
        assert!(entered);
        assert_eq!(c2.verification, Verification::Pending);
    }
}
