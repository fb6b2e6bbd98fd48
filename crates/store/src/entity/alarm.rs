//! `alarms`: a nurse's SOS and the automatic lone-worker alarms.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "alarms")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub org_id: String,
    pub nurse_id: Uuid,
    pub order_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    pub accuracy_m: Option<f64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
    pub raised_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub resolution_note: Option<String>,
    pub escalation_claimed_at: Option<DateTimeUtc>,
    pub escalated_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub escalation: Option<String>,
    pub escalation_attempts: i32,
}

impl ActiveModelBehavior for ActiveModel {}
