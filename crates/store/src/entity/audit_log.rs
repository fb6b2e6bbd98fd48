//! `audit_log`: who read or changed what, when and from where. Append-only
//! (the store has no update or delete for it; triggers refuse both).

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub org_id: String,
    #[sea_orm(column_type = "Text")]
    pub actor_sub: String,
    #[sea_orm(column_type = "Text")]
    pub actor_role: String,
    #[sea_orm(column_type = "Text")]
    pub action: String,
    #[sea_orm(column_type = "Text")]
    pub subject_kind: String,
    #[sea_orm(column_type = "Text")]
    pub subject_id: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub client_addr: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub detail: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
