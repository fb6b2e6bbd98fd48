//! `bookings`: a booked order's reservation of its nurse.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "bookings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub org_id: String,
    pub nurse_id: Uuid,
    pub lat: f64,
    pub lng: f64,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    /// The course (package) this visit belongs to, if any.
    pub course_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
