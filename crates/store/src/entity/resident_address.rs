//! `resident_addresses`: a resident's saved visit addresses.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "resident_addresses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub org_id: String,
    /// The token `sub` of the resident.
    #[sea_orm(column_type = "Text")]
    pub resident_id: String,
    #[sea_orm(column_type = "Text")]
    pub label: String,
    #[sea_orm(column_type = "Text")]
    pub text: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub detail: Option<String>,
    pub lat: f64,
    pub lng: f64,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
