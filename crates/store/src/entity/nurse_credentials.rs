//! `nurse_credentials`: one nurse's licence, title, certificates and review.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "nurse_credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub nurse_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub org_id: String,
    #[sea_orm(column_type = "Text")]
    pub licence_no: String,
    pub first_registered_on: Date,
    /// snake_case `Title`.
    #[sea_orm(column_type = "Text")]
    pub title: String,
    /// JSON array of `Certificate`s.
    #[sea_orm(column_type = "JsonBinary")]
    pub certificates: Json,
    /// `pending` | `verified` | `rejected`.
    #[sea_orm(column_type = "Text")]
    pub verification: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reject_reason: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub updated_by: String,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "nurse_id", to = "id")]
    pub nurse: BelongsTo<super::nurse::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
