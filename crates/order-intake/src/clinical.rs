//! The resident's side of clinical governance: the catalogue's intake
//! questions, consent text and visit-record form as the API shows them,
//! what the order view says while screening decides, and the visit summary
//! (`GET /v1/orders/{id}/record`).

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yixin_auth::ResidentCaller;
use yixin_domain::{
    ConsentText, FieldType, IntakeQuestion, Order, OrderStatus, RecordField, Service,
};
use yixin_platform::{ApiError, ErrorBody};

use crate::{OrderIntake, errors::store_error, orders::owned_order};

/// The kind of an answer or a record value.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Number,
    Text,
    Bool,
    Choice,
}

impl From<FieldType> for FieldKind {
    fn from(t: FieldType) -> Self {
        match t {
            FieldType::Number => Self::Number,
            FieldType::Text => Self::Text,
            FieldType::Bool => Self::Bool,
            FieldType::Choice => Self::Choice,
        }
    }
}

/// One intake question. Answer it in the order's `answers` under its
/// `code`; unanswered counts as "no".
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IntakeQuestionView {
    #[schema(example = "chest_pain")]
    pub code: String,
    pub text_zh: String,
    pub text_en: String,
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// A `true` answer is an emergency: the order is refused with 422
    /// `emergency_call_120` (call 120 now).
    #[serde(default)]
    pub red_flag: bool,
    /// A `true` (or non-blank) answer is shown to the nurse as a flag and
    /// sends the order to a coordinator's screening first.
    #[serde(default)]
    pub risk: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
}

impl From<&IntakeQuestion> for IntakeQuestionView {
    fn from(q: &IntakeQuestion) -> Self {
        Self {
            code: q.code.clone(),
            text_zh: q.text_zh.clone(),
            text_en: q.text_en.clone(),
            kind: q.kind.into(),
            red_flag: q.red_flag,
            risk: q.risk,
            choices: q.choices.clone(),
        }
    }
}

/// The consent text; the order must carry its `version` as `consent_version`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsentView {
    #[schema(example = "2026-11-30")]
    pub version: String,
    pub text_zh: String,
    pub text_en: String,
}

impl From<&ConsentText> for ConsentView {
    fn from(c: &ConsentText) -> Self {
        Self {
            version: c.version.clone(),
            text_zh: c.text_zh.clone(),
            text_en: c.text_en.clone(),
        }
    }
}

/// One field of the visit-record form the nurse fills in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordFieldView {
    #[schema(example = "spo2")]
    pub code: String,
    pub label_zh: String,
    pub label_en: String,
    #[serde(rename = "type")]
    pub kind: FieldKind,
    pub required: bool,
    /// Plausible range of a number (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "%")]
    pub unit: Option<String>,
}

impl From<&RecordField> for RecordFieldView {
    fn from(f: &RecordField) -> Self {
        Self {
            code: f.code.clone(),
            label_zh: f.label_zh.clone(),
            label_en: f.label_en.clone(),
            kind: f.kind.into(),
            required: f.required,
            min: f.min,
            max: f.max,
            choices: f.choices.clone(),
            unit: f.unit.clone(),
        }
    }
}

/// The clinical part of a catalogue service.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceClinicalView {
    /// Every order waits for a coordinator's screening (`awaiting_review`).
    pub requires_review: bool,
    /// The order must carry `doctor_order_ref`.
    pub requires_doctor_order: bool,
    pub intake: Vec<IntakeQuestionView>,
    pub consent: Option<ConsentView>,
    pub record_template: Vec<RecordFieldView>,
}

impl From<&Service> for ServiceClinicalView {
    fn from(s: &Service) -> Self {
        let c = &s.clinical;
        Self {
            requires_review: c.requires_review,
            requires_doctor_order: c.requires_doctor_order,
            intake: c.intake.iter().map(Into::into).collect(),
            consent: c.consent.as_ref().map(Into::into),
            record_template: c.record_template.iter().map(Into::into).collect(),
        }
    }
}

/// A message for the resident about where the order stands (screening).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NoticeView {
    /// `awaiting_review` or `rejected`.
    pub code: String,
    pub text_zh: String,
    pub text_en: String,
}

/// What the resident is told about screening, if the order is in it.
pub fn notice(order: &Order) -> Option<NoticeView> {
    match order.status {
        OrderStatus::AwaitingReview => Some(NoticeView {
            code: "awaiting_review".into(),
            text_zh:
                "护理机构正在审核您的订单。审核通过后开始派单，30 分钟上门承诺从审核通过时起算。"
                    .into(),
            text_en: "The nursing team is reviewing your order. Dispatch starts when it is \
                      approved, and the 30-minute promise counts from the approval."
                .into(),
        }),
        OrderStatus::Rejected => {
            let reason = order.clinical.review_reason.clone().unwrap_or_default();
            Some(NoticeView {
                code: "rejected".into(),
                text_zh: format!("很抱歉，护理机构未能接受此订单：{reason}"),
                text_en: format!("Sorry, the nursing team could not accept this order: {reason}"),
            })
        }
        _ => None,
    }
}

/// One value of the visit summary, labelled.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordItemView {
    pub code: String,
    pub label_zh: String,
    pub label_en: String,
    /// A number, text, yes/no or a choice, as the form's field says.
    pub value: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// The visit summary the resident reads: the record's latest version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordSummary {
    pub order_id: String,
    pub service_code: String,
    /// 1, or more after amendments.
    pub version: u32,
    pub submitted_at: DateTime<Utc>,
    /// Who consented on site.
    pub consent_by: Option<String>,
    /// In the form's order.
    pub items: Vec<RecordItemView>,
    pub notes: Option<String>,
}

/// The visit summary of one of the caller's completed orders (the record's
/// latest version). 404 before the visit is completed.
#[utoipa::path(
    tag = "resident",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, body = RecordSummary),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such order of the caller, or no record yet", body = ErrorBody),
    )
)]
#[get("/v1/orders/{id}/record")]
pub async fn get_record(
    caller: ResidentCaller,
    svc: web::Data<OrderIntake>,
    id: web::Path<String>,
) -> Result<web::Json<RecordSummary>, ApiError> {
    let order = owned_order(&svc, &caller, &id).await?;
    let no_record =
        || ApiError::not_found("the visit summary is available once the visit is completed");
    if order.status != OrderStatus::Completed {
        return Err(no_record());
    }
    let record = svc
        .store
        .latest_visit_record(order.id)
        .await
        .map_err(store_error)?
        .ok_or_else(no_record)?;
    let catalog = svc
        .reference
        .catalog(&svc.store)
        .await
        .map_err(store_error)?;
    let template = catalog
        .service(&order.service_code)
        .map(|s| s.clinical.record_template.clone())
        .unwrap_or_default();
    let items = template
        .iter()
        .filter_map(|f| {
            record.values.get(&f.code).map(|v| RecordItemView {
                code: f.code.clone(),
                label_zh: f.label_zh.clone(),
                label_en: f.label_en.clone(),
                value: v.clone(),
                unit: f.unit.clone(),
            })
        })
        .collect();
    Ok(web::Json(RecordSummary {
        order_id: order.id.to_string(),
        service_code: order.service_code,
        version: record.version,
        submitted_at: record.submitted_at,
        consent_by: order.clinical.consent_by,
        items,
        notes: record.notes,
    }))
}
