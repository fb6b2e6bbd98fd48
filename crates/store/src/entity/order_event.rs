//! `order_events`: the timeline of an order, one row per status reached.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "order_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub order_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub at: DateTimeUtc,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub detail: Option<Json>,
    #[sea_orm(belongs_to, from = "order_id", to = "id")]
    pub order: BelongsTo<super::order::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
