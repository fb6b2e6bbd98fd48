//! `resident_patients`: the people a resident orders for (themselves included).

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "resident_patients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub org_id: String,
    #[sea_orm(column_type = "Text")]
    pub resident_id: String,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// `female` | `male`
    #[sea_orm(column_type = "Text")]
    pub sex: String,
    pub birth_year: i32,
    #[sea_orm(column_type = "Text")]
    pub relation: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub conditions: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub allergies: Option<String>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
