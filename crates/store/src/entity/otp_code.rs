//! `otp_codes`: the live sign-in code of one (organisation, role, phone).

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "otp_codes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub org_id: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub role: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub phone: String,
    /// Hex HMAC-SHA256 of the code under the server's code key.
    #[sea_orm(column_type = "Text")]
    pub code_hash: String,
    /// Wrong codes tried so far.
    pub attempts: i32,
    pub sent_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
