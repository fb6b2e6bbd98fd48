//! `outbox`: events written with the change that caused them, relayed later.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub topic: String,
    #[sea_orm(column_type = "Blob")]
    pub payload: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub published_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
