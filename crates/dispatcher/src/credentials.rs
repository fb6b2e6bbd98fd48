//! Clinical governance on the coordinator's side: nurses' credentials
//! (enter or change, verify, reject), certificates about to expire, and
//! the audit trail (who read a patient's address or phone, who changed
//! credentials).
//!
//! Routes: `GET/PUT /v1/dispatch/nurses/{id}/credentials`,
//! `POST /v1/dispatch/nurses/{id}/credentials/verify`,
//! `POST /v1/dispatch/nurses/{id}/credentials/reject`,
//! `GET /v1/dispatch/credentials/expiring`, `GET /v1/dispatch/audit`.
//!
//! A change to credentials makes them `pending` until verified again; every
//! change, verification and rejection is announced on the roster channel
//! (so each dispatcher's fleet reloads the nurse: the gate reads the fleet)
//! and written to the audit trail.

use actix_web::{HttpRequest, get, post, put, web};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yixin_auth::CoordinatorCaller;
use yixin_domain::credentials::{CERTIFICATE_KINDS, reject_reason};
use yixin_domain::{
    Certificate, Credentials, CredentialsInput, DomainError, Nurse, NurseId, OrgId, Title,
    Verification,
};
use yixin_platform::{ApiError, ErrorBody, JsonBody};
use yixin_store::{AuditEntry, AuditQuery, StoreError, audit_action};

use crate::Dispatcher;
use crate::coordinator::org_of;

/// One certificate, as entered.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateInput {
    /// `picc`, `wound_stoma`, `maternal_infant`, `rehab` or `oral_care`.
    #[schema(example = "picc", max_length = 40)]
    pub code: String,
    #[schema(example = "PICC-2021-0042", min_length = 1, max_length = 40)]
    pub number: String,
    pub issued_on: NaiveDate,
    /// None: does not expire.
    pub expires_on: Option<NaiveDate>,
}

/// A nurse's credentials, as a coordinator enters them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {
    /// The practising licence number (执业证书编号).
    #[schema(example = "202011000123", min_length = 1, max_length = 40)]
    pub licence_no: String,
    /// First registration; practice years follow from it.
    pub first_registered_on: NaiveDate,
    /// `nurse` 护士, `senior_nurse` 护师, `supervisor_nurse` 主管护师,
    /// `associate_chief_nurse` 副主任护师, `chief_nurse` 主任护师.
    #[schema(example = "senior_nurse")]
    pub title: String,
    #[serde(default)]
    pub certificates: Vec<CertificateInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why (shown to coordinators), at most 500 characters.
    #[schema(
        min_length = 1,
        max_length = 500,
        example = "licence not found in the national register"
    )]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CertificateView {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub number: String,
    pub issued_on: NaiveDate,
    pub expires_on: Option<NaiveDate>,
    /// Valid today (China's day).
    pub valid_today: bool,
}

/// A nurse's credentials and their review.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CredentialsView {
    pub nurse_id: String,
    pub licence_no: String,
    pub first_registered_on: NaiveDate,
    /// Full years since the first registration, today.
    pub practice_years: u32,
    /// `nurse`, `senior_nurse`, `supervisor_nurse`,
    /// `associate_chief_nurse` or `chief_nurse`.
    pub title: String,
    /// The title in Chinese (护士 … 主任护师).
    pub title_zh: String,
    pub certificates: Vec<CertificateView>,
    /// `pending` (entered or changed, not checked), `verified` or `rejected`.
    pub verification: String,
    /// The coordinator (`sub`) who verified or rejected them, and when.
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub reject_reason: Option<String>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

fn certificate_view(c: &Certificate, today: NaiveDate) -> CertificateView {
    let (zh, en) = CERTIFICATE_KINDS
        .iter()
        .find(|(code, _, _)| *code == c.code)
        .map(|(_, zh, en)| (*zh, *en))
        .unwrap_or(("", ""));
    CertificateView {
        code: c.code.clone(),
        name_zh: zh.to_owned(),
        name_en: en.to_owned(),
        number: c.number.clone(),
        issued_on: c.issued_on,
        expires_on: c.expires_on,
        valid_today: c.valid_on(today),
    }
}

fn view(nurse: NurseId, c: &Credentials, today: NaiveDate) -> CredentialsView {
    CredentialsView {
        nurse_id: nurse.to_string(),
        licence_no: c.licence_no.clone(),
        first_registered_on: c.first_registered_on,
        practice_years: c.practice_years(today),
        title: c.title.as_str().to_owned(),
        title_zh: c.title.label_zh().to_owned(),
        certificates: c
            .certificates
            .iter()
            .map(|x| certificate_view(x, today))
            .collect(),
        verification: c.verification.as_str().to_owned(),
        reviewed_by: c.reviewed_by.clone(),
        reviewed_at: c.reviewed_at,
        reject_reason: c.reject_reason.clone(),
        updated_by: c.updated_by.clone(),
        updated_at: c.updated_at,
    }
}

fn today() -> NaiveDate {
    yixin_dispatch_core::visit_day(Utc::now())
}

fn invalid(e: DomainError) -> ApiError {
    let field = e.field_path();
    ApiError::Unprocessable {
        code: e.code().into(),
        message: e.to_string(),
        field,
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("no such nurse"),
        StoreError::Conflict(m) => ApiError::conflict("conflict", m),
        other => ApiError::internal(other),
    }
}

async fn own_nurse(svc: &Dispatcher, org: &OrgId, id: &str) -> Result<Nurse, ApiError> {
    let id = id
        .parse()
        .map(NurseId)
        .map_err(|_| ApiError::not_found("no such nurse"))?;
    svc.store
        .get_nurse_with_credentials(id)
        .await
        .map_err(store_error)?
        .filter(|n| &n.org_id == org)
        .ok_or_else(|| ApiError::not_found("no such nurse"))
}

/// Records an audit row for a coordinator's act; a failure is logged (the
/// act itself is already committed).
pub async fn audit(
    svc: &Dispatcher,
    caller: &CoordinatorCaller,
    req: &HttpRequest,
    action: &str,
    subject_kind: &str,
    subject_ids: &[String],
    detail: Option<String>,
) {
    let now = Utc::now();
    let from = yixin_platform::http::client_addr(req);
    let entries: Vec<AuditEntry> = subject_ids
        .iter()
        .map(|id| AuditEntry {
            org: org_of(caller),
            actor_sub: caller.0.sub.clone(),
            actor_role: caller.0.role.as_str().to_owned(),
            action: action.to_owned(),
            subject_kind: subject_kind.to_owned(),
            subject_id: id.clone(),
            client_addr: from.clone(),
            detail: detail.clone(),
            at: now,
        })
        .collect();
    if let Err(e) = svc.store.audit_many(&entries).await {
        tracing::error!(error = %e, action, "audit rows not recorded");
    }
}

/// Tells every instance to reload the nurse (fleets, phones).
async fn announce(svc: &Dispatcher, nurse: NurseId) {
    if let Err(e) = svc
        .queue
        .broadcast(
            yixin_contracts::ROSTER_CHANNEL,
            nurse.to_string().as_bytes(),
        )
        .await
    {
        tracing::warn!(nurse_id = %nurse, error = %e, "credentials change not announced");
    }
}

fn no_credentials() -> ApiError {
    ApiError::not_found("no credentials entered for this nurse")
}

/// A nurse's credentials and their review.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Nurse id")),
    responses(
        (status = 200, body = CredentialsView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such nurse, or no credentials entered", body = ErrorBody),
    )
)]
#[get("/v1/dispatch/nurses/{id}/credentials")]
pub async fn get_credentials(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
) -> Result<web::Json<CredentialsView>, ApiError> {
    let nurse = own_nurse(&svc, &org_of(&caller), &id).await?;
    let c = nurse.credentials.as_ref().ok_or_else(no_credentials)?;
    Ok(web::Json(view(nurse.id, c, today())))
}

/// Enters or changes a nurse's credentials: they are `pending` until a
/// coordinator verifies them again, and until then she is offered no work.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Nurse id")),
    request_body = CredentialsRequest,
    responses(
        (status = 200, body = CredentialsView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A field refused, named by its path (`licence_no`, `certificates[1].expires_on`, …)", body = ErrorBody),
    )
)]
#[put("/v1/dispatch/nurses/{id}/credentials")]
pub async fn put_credentials(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    req: HttpRequest,
    id: web::Path<String>,
    body: JsonBody<CredentialsRequest>,
) -> Result<web::Json<CredentialsView>, ApiError> {
    let nurse = own_nurse(&svc, &org_of(&caller), &id).await?;
    let body = body.into_inner();
    let title: Title = body.title.parse().map_err(invalid)?;
    let input = CredentialsInput {
        licence_no: body.licence_no,
        first_registered_on: body.first_registered_on,
        title,
        certificates: body
            .certificates
            .into_iter()
            .map(|c| Certificate {
                code: c.code,
                number: c.number,
                issued_on: c.issued_on,
                expires_on: c.expires_on,
            })
            .collect(),
    }
    .validated(today())
    .map_err(invalid)?;
    let now = Utc::now();
    let credentials = Credentials::entered(input, &caller.0.sub, now);
    svc.store
        .put_credentials(&nurse, &credentials)
        .await
        .map_err(store_error)?;
    announce(&svc, nurse.id).await;
    audit(
        &svc,
        &caller,
        &req,
        audit_action::CREDENTIALS_CHANGED,
        "nurse",
        &[nurse.id.to_string()],
        Some(format!(
            "licence {}, {}, {} certificate(s); pending verification",
            credentials.licence_no,
            credentials.title.as_str(),
            credentials.certificates.len()
        )),
    )
    .await;
    tracing::info!(nurse_id = %nurse.id, "credentials entered; pending verification");
    Ok(web::Json(view(nurse.id, &credentials, today())))
}

async fn review(
    svc: &Dispatcher,
    caller: &CoordinatorCaller,
    req: &HttpRequest,
    id: &str,
    outcome: Verification,
    reason: Option<String>,
) -> Result<CredentialsView, ApiError> {
    let nurse = own_nurse(svc, &org_of(caller), id).await?;
    let mut c = nurse.credentials.clone().ok_or_else(no_credentials)?;
    c.verification = outcome;
    c.reviewed_by = Some(caller.0.sub.clone());
    c.reviewed_at = Some(Utc::now());
    c.reject_reason = reason.clone();
    svc.store
        .put_credentials(&nurse, &c)
        .await
        .map_err(store_error)?;
    announce(svc, nurse.id).await;
    let action = match outcome {
        Verification::Verified => audit_action::CREDENTIALS_VERIFIED,
        _ => audit_action::CREDENTIALS_REJECTED,
    };
    audit(
        svc,
        caller,
        req,
        action,
        "nurse",
        &[nurse.id.to_string()],
        reason,
    )
    .await;
    Ok(view(nurse.id, &c, today()))
}

/// Marks the credentials verified (checked against the national nurse
/// register): who and when are recorded.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Nurse id")),
    responses(
        (status = 200, body = CredentialsView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
#[post("/v1/dispatch/nurses/{id}/credentials/verify")]
pub async fn verify_credentials(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<web::Json<CredentialsView>, ApiError> {
    Ok(web::Json(
        review(&svc, &caller, &req, &id, Verification::Verified, None).await?,
    ))
}

/// Rejects the credentials, with the reason: the nurse gets no work until
/// they are changed and verified.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Nurse id")),
    request_body = RejectRequest,
    responses(
        (status = 200, body = CredentialsView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[post("/v1/dispatch/nurses/{id}/credentials/reject")]
pub async fn reject_credentials(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    req: HttpRequest,
    id: web::Path<String>,
    body: JsonBody<RejectRequest>,
) -> Result<web::Json<CredentialsView>, ApiError> {
    let reason = reject_reason(&body.into_inner().reason).map_err(invalid)?;
    Ok(web::Json(
        review(
            &svc,
            &caller,
            &req,
            &id,
            Verification::Rejected,
            Some(reason),
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExpiringQuery {
    /// Certificates expiring within this many days (default 30, 1–365);
    /// already expired ones are listed too.
    pub days: Option<u32>,
}

/// A certificate that expires soon (or has expired).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExpiringCertificate {
    pub nurse_id: String,
    pub nurse_name: String,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub number: String,
    pub expires_on: NaiveDate,
    /// Days from today (China's day) to the expiry; negative: expired.
    pub days_left: i64,
}

/// The organisation's certificates expiring within `days` (default 30) or
/// already expired, soonest first.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(ExpiringQuery),
    responses(
        (status = 200, body = [ExpiringCertificate]),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/v1/dispatch/credentials/expiring")]
pub async fn expiring_certificates(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    query: web::Query<ExpiringQuery>,
) -> Result<web::Json<Vec<ExpiringCertificate>>, ApiError> {
    let days = query.days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(ApiError::BadRequest {
            code: "invalid_query".into(),
            message: "days must be between 1 and 365".into(),
            field: Some("days".into()),
        });
    }
    let org = org_of(&caller);
    let nurses = svc.store.nurses(&org).await.map_err(store_error)?;
    let today = today();
    let mut list = expiring(&nurses, today, days);
    list.sort_by(|a, b| (a.expires_on, &a.nurse_name).cmp(&(b.expires_on, &b.nurse_name)));
    Ok(web::Json(list))
}

/// The certificates of active nurses that expire by `today + days`.
pub fn expiring(nurses: &[Nurse], today: NaiveDate, days: u32) -> Vec<ExpiringCertificate> {
    let until = today + TimeDelta::days(i64::from(days));
    nurses
        .iter()
        .filter(|n| n.active)
        .flat_map(|n| {
            n.credentials
                .iter()
                .flat_map(|c| c.certificates.iter())
                .filter_map(move |c| {
                    let exp = c.expires_on.filter(|e| *e <= until)?;
                    let v = certificate_view(c, today);
                    Some(ExpiringCertificate {
                        nurse_id: n.id.to_string(),
                        nurse_name: n.name.clone(),
                        code: v.code,
                        name_zh: v.name_zh,
                        name_en: v.name_en,
                        number: v.number,
                        expires_on: exp,
                        days_left: (exp - today).num_days(),
                    })
                })
        })
        .collect()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only rows about this order or nurse id.
    pub subject: Option<String>,
    /// From this instant (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Until this instant (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// The next page: rows older than this row id (the last page's `next_before`).
    pub before: Option<i64>,
    /// Rows per page, 1–500 (default 100).
    pub limit: Option<u64>,
}

/// One audit row.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who: the caller's `sub` and role.
    pub actor_sub: String,
    pub actor_role: String,
    /// `read_address` (a nurse or coordinator saw a patient's address and
    /// phone), `credentials_changed`, `credentials_verified`,
    /// `credentials_rejected`, …
    pub action: String,
    /// `order` or `nurse`.
    pub subject_kind: String,
    pub subject_id: String,
    /// From where: the client's address.
    pub client_addr: Option<String>,
    pub detail: Option<String>,
}

/// A page of the audit trail, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRow>,
    /// Pass as `before` for the next page; none on the last.
    pub next_before: Option<i64>,
}

/// The organisation's audit trail, newest first, paged: every read of a
/// patient's address or phone by a nurse or coordinator and every change
/// to credentials. Append-only: nothing changes or removes a row.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(AuditParams),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/v1/dispatch/audit")]
pub async fn audit_trail(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    query: web::Query<AuditParams>,
) -> Result<web::Json<AuditPage>, ApiError> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "invalid_query".into(),
            message: "limit must be between 1 and 500".into(),
            field: Some("limit".into()),
        });
    }
    if let Some(s) = &q.subject
        && (s.len() > 64 || s.chars().any(char::is_control))
    {
        return Err(ApiError::BadRequest {
            code: "invalid_query".into(),
            message: "subject must be an id".into(),
            field: Some("subject".into()),
        });
    }
    let rows = svc
        .store
        .audit_trail(
            &org_of(&caller),
            &AuditQuery {
                subject: q.subject.filter(|s| !s.is_empty()),
                from: q.from,
                to: q.to,
                before: q.before,
                limit,
            },
        )
        .await
        .map_err(store_error)?;
    let next_before = (rows.len() as u64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(web::Json(AuditPage {
        items: rows
            .into_iter()
            .map(|r| AuditRow {
                id: r.id,
                at: r.entry.at,
                actor_sub: r.entry.actor_sub,
                actor_role: r.entry.actor_role,
                action: r.entry.action,
                subject_kind: r.entry.subject_kind,
                subject_id: r.entry.subject_id,
                client_addr: r.entry.client_addr,
                detail: r.entry.detail,
            })
            .collect(),
        next_before,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use yixin_domain::{PhoneNumber, Skill};

    #[test]
    fn expiring_lists_soon_and_past_expiries_of_active_nurses_only() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let today = d(2026, 12, 1);
        let cert = |code: &str, exp| Certificate {
            code: code.into(),
            number: "1".into(),
            issued_on: d(2020, 1, 1),
            expires_on: exp,
        };
        let mut n = Nurse::new(
            OrgId::from("demo"),
            "王护士",
            PhoneNumber::new("13900001111").unwrap(),
            vec![Skill::new("picc").unwrap()],
            Utc::now(),
        )
        .unwrap();
        n.credentials = Some(Credentials::entered(
            CredentialsInput {
                licence_no: "1".into(),
                first_registered_on: d(2015, 1, 1),
                title: Title::SeniorNurse,
                certificates: vec![
                    cert("picc", Some(d(2026, 12, 31))),
                    cert("wound_stoma", Some(d(2027, 1, 1))),
                    cert("maternal_infant", Some(d(2026, 11, 1))),
                    cert("rehab", None),
                ],
            },
            "c",
            Utc::now(),
        ));
        let found = expiring(std::slice::from_ref(&n), today, 30);
        let got: Vec<_> = found
            .iter()
            .map(|e| (e.code.as_str(), e.days_left))
            .collect();
        assert_eq!(got, [("picc", 30), ("maternal_infant", -30)]);
        n.active = false;
        assert!(expiring(&[n], today, 30).is_empty());
    }
}
