//! `services`: orderable services of the catalogue.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "services")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub code: String,
    #[sea_orm(column_type = "Text")]
    pub category_code: String,
    #[sea_orm(column_type = "Text")]
    pub name_zh: String,
    #[sea_orm(column_type = "Text")]
    pub name_en: String,
    pub duration_min: i64,
    pub price_cents: i64,
    /// JSON array of skill codes.
    #[sea_orm(column_type = "JsonBinary")]
    pub required_skills: Json,
    pub active: bool,
    /// JSON `Requirements` (null: the defaults).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub requirements: Option<Json>,
    /// JSON object: `ServiceClinical` (intake, consent, record form…); null before it existed.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub clinical: Option<Json>,
    #[sea_orm(belongs_to, from = "category_code", to = "code")]
    pub category: BelongsTo<super::service_category::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
