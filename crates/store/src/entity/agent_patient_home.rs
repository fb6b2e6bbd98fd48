//! `agent_patient_homes`: where an agent's registered patient (a
//! `resident_patients` row owned by `agent:<id>`) lives and how to reach them.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_patient_homes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub patient_id: Uuid,
    #[sea_orm(column_type = "Text", nullable)]
    pub phone: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub address_text: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub address_detail: Option<String>,
    pub lat: f64,
    pub lng: f64,
    #[sea_orm(column_type = "Text", nullable)]
    pub notes: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
