//! `visit_checks`: the lone-worker timer and review flag of one visit.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "visit_checks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub org_id: String,
    pub nurse_id: Uuid,
    pub arrived_at: Option<DateTimeUtc>,
    pub started_at: Option<DateTimeUtc>,
    pub check_in_due_at: Option<DateTimeUtc>,
    pub check_in_asked_at: Option<DateTimeUtc>,
    pub last_check_in_at: Option<DateTimeUtc>,
    pub missed_alarm_at: Option<DateTimeUtc>,
    pub silent_alarm_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub arrival_override_by: Option<String>,
    pub arrival_override_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub arrival_override_note: Option<String>,
    pub arrival_distance_m: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub review_flag: Option<String>,
    pub visit_minutes: Option<i32>,
    pub flagged_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub flag_cleared_by: Option<String>,
    pub flag_cleared_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub flag_note: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
