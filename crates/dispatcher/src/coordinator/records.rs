//! The visit-record export: every submitted version of the organisation's
//! visit records in a period, as JSON or CSV.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, get, http::header, web};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yixin_auth::CoordinatorCaller;
use yixin_domain::{OrgId, VisitRecord};
use yixin_platform::{ApiError, ErrorBody};

use super::{org_of, store_error};
use crate::Dispatcher;
use crate::credentials::audit;
use yixin_store::audit_action::READ_RECORD;

/// Most record versions one export holds.
pub const MAX_RECORDS: u64 = 10_000;
/// Longest period one export covers.
pub const MAX_PERIOD_DAYS: i64 = 92;

#[derive(Debug, Deserialize, IntoParams)]
pub struct RecordsQuery {
    /// Start of the period (inclusive, RFC 3339); default `to` − 7 days.
    pub from: Option<DateTime<Utc>>,
    /// End of the period (exclusive, RFC 3339); default now.
    pub to: Option<DateTime<Utc>>,
    /// `json` (default) or `csv`.
    #[param(pattern = "^(json|csv)$")]
    pub format: Option<String>,
}

/// One submitted version of a visit record.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedRecord {
    pub order_id: String,
    /// 1, then 2, 3… for amendments (every version is exported).
    pub version: u32,
    pub submitted_at: DateTime<Utc>,
    pub service_code: String,
    pub nurse_id: String,
    #[schema(value_type = Object)]
    pub values: BTreeMap<String, serde_json::Value>,
    pub notes: Option<String>,
}

impl From<VisitRecord> for ExportedRecord {
    fn from(r: VisitRecord) -> Self {
        Self {
            order_id: r.order_id.to_string(),
            version: r.version,
            submitted_at: r.submitted_at,
            service_code: r.service_code,
            nurse_id: r.nurse_id.to_string(),
            values: r.values,
            notes: r.notes,
        }
    }
}

/// THE place where coordinators read visit records: every exported record
/// goes through this one function, and each read order is written to the
/// audit trail (who, which order's record, when, from where).
async fn read_records_for_export(
    svc: &Dispatcher,
    caller: &CoordinatorCaller,
    req: &HttpRequest,
    org: &OrgId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<VisitRecord>, ApiError> {
    let records = svc
        .store
        .visit_records(org, from, to, MAX_RECORDS)
        .await
        .map_err(|e| store_error(e, "record"))?;
    tracing::info!(
        coordinator = %caller.0.sub,
        org = %org,
        %from,
        %to,
        records = records.len(),
        "visit records exported"
    );
    let orders: Vec<String> = records
        .iter()
        .map(|r| r.order_id.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    audit(svc, caller, req, READ_RECORD, "order", &orders, None).await;
    Ok(records)
}

fn bad_query(field: &str, message: &str) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query".into(),
        message: message.to_owned(),
        field: Some(field.to_owned()),
    }
}

/// Exports the organisation's visit records submitted in `[from, to)`,
/// every version, oldest first: JSON (an array of records) or CSV (one row
/// per record field: `order_id, version, submitted_at, service_code,
/// nurse_id, field, value`; the notes are the field `notes`).
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(RecordsQuery),
    responses(
        (status = 200, content(
            ([ExportedRecord] = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "Bad period or format", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/v1/dispatch/records")]
pub async fn export_records(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    req: HttpRequest,
    query: web::Query<RecordsQuery>,
) -> Result<HttpResponse, ApiError> {
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(bad_query("format", "format must be json or csv")),
    };
    let to = query.to.unwrap_or_else(Utc::now);
    let from = query.from.unwrap_or(to - TimeDelta::days(7));
    if from >= to {
        return Err(bad_query("from", "from must be before to"));
    }
    if to - from > TimeDelta::days(MAX_PERIOD_DAYS) {
        return Err(bad_query("from", "one export covers at most 92 days"));
    }
    let org = org_of(&caller);
    let records = read_records_for_export(&svc, &caller, &req, &org, from, to).await?;
    let records: Vec<ExportedRecord> = records.into_iter().map(Into::into).collect();
    if !csv {
        return Ok(HttpResponse::Ok().json(records));
    }
    let name = format!(
        "visit-records-{}-{}.csv",
        from.format("%Y%m%d"),
        to.format("%Y%m%d")
    );
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .body(to_csv(&records)))
}

/// The records as CSV, one row per field value (long format: every service
/// has its own fields).
pub fn to_csv(records: &[ExportedRecord]) -> String {
    let mut out =
        String::from("order_id,version,submitted_at,service_code,nurse_id,field,value\r\n");
    for r in records {
        let mut row = |field: &str, value: String| {
            let cells = [
                r.order_id.clone(),
                r.version.to_string(),
                r.submitted_at.to_rfc3339(),
                r.service_code.clone(),
                r.nurse_id.clone(),
                field.to_owned(),
                value,
            ];
            let line: Vec<String> = cells.iter().map(|c| cell(c)).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        };
        for (code, value) in &r.values {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            row(code, text);
        }
        if let Some(notes) = &r.notes {
            row("notes", notes.clone());
        }
    }
    out
}

/// One CSV cell: quoted when needed (RFC 4180), and text a spreadsheet would
/// run as a formula is prefixed with `'`.
fn cell(s: &str) -> String {
    let numeric = s.parse::<f64>().is_ok();
    let s = if !numeric && s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let r = ExportedRecord {
            order_id: "o".into(),
            version: 2,
            submitted_at: DateTime::from_timestamp(0, 0).unwrap(),
            service_code: "wound_care".into(),
            nurse_id: "n".into(),
            values: [
                ("pulse".to_owned(), serde_json::json!(72)),
                (
                    "materials_used".to_owned(),
                    serde_json::json!("=HYPERLINK(\"x\"), gauze"),
                ),
            ]
            .into_iter()
            .collect(),
            notes: Some("line1\nline2".into()),
        };
        let csv = to_csv(&[r]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "order_id,version,submitted_at,service_code,nurse_id,field,value"
        );
        assert!(
            lines[1].ends_with(",materials_used,\"'=HYPERLINK(\"\"x\"\"), gauze\""),
            "{}",
            lines[1]
        );
        assert!(lines[2].ends_with(",pulse,72"), "{}", lines[2]);
        assert!(csv.contains(",notes,\"line1\nline2\""));
        assert_eq!(cell("-3.5"), "-3.5");
    }
}
