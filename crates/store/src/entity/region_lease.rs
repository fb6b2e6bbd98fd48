//! `region_leases`: who dispatches each region (sharded dispatch).

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "region_leases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub region: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub holder: Option<String>,
    pub token: i64,
    pub expires_at: Option<DateTimeUtc>,
    pub acquired_at: Option<DateTimeUtc>,
    pub renewed_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
