//! `nurses`: the roster.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "nurses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub org_id: String,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub phone: String,
    /// JSON array of skill codes.
    #[sea_orm(column_type = "JsonBinary")]
    pub skills: Json,
    pub active: bool,
    /// `off` | `on`
    #[sea_orm(column_type = "Text")]
    pub shift_state: String,
    /// The identity provider's subject for the nurse (unique per org).
    #[sea_orm(column_type = "Text", nullable)]
    pub external_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "org_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
