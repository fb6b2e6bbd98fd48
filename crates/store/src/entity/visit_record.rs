//! `visit_records`: each submitted version of a visit record (append-only).

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "visit_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub order_id: Uuid,
    pub version: i32,
    #[sea_orm(column_type = "Text")]
    pub org_id: String,
    pub nurse_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub service_code: String,
    /// JSON object: record field code → value.
    #[sea_orm(column_type = "JsonBinary")]
    pub field_values: Json,
    #[sea_orm(column_type = "Text", nullable)]
    pub notes: Option<String>,
    pub submitted_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
