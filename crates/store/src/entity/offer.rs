//! `offers`: an order proposed to one nurse, with a deadline.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "offers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub order_id: Uuid,
    pub nurse_id: Uuid,
    /// snake_case `OfferStatus`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub eta_min: i64,
    pub distance_m: i64,
    pub answered_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub decline_reason: Option<String>,
    /// JSON `Qualification`: the credentials that qualified the nurse.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub qualified_by: Option<Json>,
    /// A chained offer: when the nurse's current visit is predicted to end.
    pub free_at: Option<DateTimeUtc>,
    #[sea_orm(belongs_to, from = "order_id", to = "id")]
    pub order: BelongsTo<super::order::Entity>,
    #[sea_orm(belongs_to, from = "nurse_id", to = "id")]
    pub nurse: BelongsTo<super::nurse::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
