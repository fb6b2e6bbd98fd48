//! `nurse_locations`: the nurses' GPS trail.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "nurse_locations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub nurse_id: Uuid,
    pub lat: f64,
    pub lng: f64,
    pub accuracy_m: f64,
    pub recorded_at: DateTimeUtc,
    pub received_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
