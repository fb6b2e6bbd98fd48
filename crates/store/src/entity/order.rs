//! `orders`: the system of record for every order.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub org_id: String,
    #[sea_orm(column_type = "Text")]
    pub resident_id: String,
    #[sea_orm(column_type = "Text")]
    pub service_code: String,
    /// snake_case `OrderStatus`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub lat: f64,
    pub lng: f64,
    #[sea_orm(column_type = "Text")]
    pub address_text: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub address_detail: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub contact_name: String,
    #[sea_orm(column_type = "Text")]
    pub contact_phone: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub notes: Option<String>,
    pub scheduled_for: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub promised_by: DateTimeUtc,
    pub nurse_id: Option<Uuid>,
    pub eta: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub cancel_reason: Option<String>,
    pub rating_stars: Option<i16>,
    #[sea_orm(column_type = "Text", nullable)]
    pub rating_comment: Option<String>,
    pub updated_at: DateTimeUtc,
    /// Optimistic concurrency: bumped by every update.
    pub version: i32,
    /// JSON object: `OrderClinical` (answers, flags, consent…); null before it existed.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub clinical: Option<Json>,
    /// A next job: the nurse's current job it waits for (see the migration
    /// `m20261202_100001_chained_jobs`).
    pub chained_after: Option<Uuid>,
    #[sea_orm(belongs_to, from = "service_code", to = "code")]
    pub service: BelongsTo<super::service::Entity>,
    #[sea_orm(belongs_to, from = "nurse_id", to = "id")]
    pub nurse: BelongsTo<Option<super::nurse::Entity>>,
    #[sea_orm(has_many)]
    pub events: HasMany<super::order_event::Entity>,
    #[sea_orm(has_many)]
    pub offers: HasMany<super::offer::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
