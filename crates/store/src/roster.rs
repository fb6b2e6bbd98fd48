//! Organisations, their service areas and their nurses.

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder};
use yixin_domain::{Nurse, NurseId, OrgId, ServiceArea};

use crate::convert::{self, ts};
use crate::entity::{nurse, organization, service_area};
use crate::error::StoreError;
use crate::store::Store;

impl Store {
    /// Creates the organisation if it does not exist; an existing one is left as it is.
    pub async fn ensure_organization(&self, id: &OrgId, name: &str) -> Result<(), StoreError> {
        organization::Entity::insert(organization::ActiveModel {
            id: Set(id.as_str().to_owned()),
            name: Set(name.to_owned()),
            created_at: Set(ts(Utc::now())),
        })
        .on_conflict(
            OnConflict::column(organization::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// Inserts the area, or replaces the name and polygon of the area with
    /// that id. An id that belongs to another organisation is a `Conflict`;
    /// an unknown organisation too.
    pub async fn upsert_service_area(&self, area: &ServiceArea) -> Result<(), StoreError> {
        let polygon = serde_json::to_value(area.to_geojson())
            .map_err(|e| StoreError::Corrupt(format!("service area polygon: {e}")))?;
        let affected = service_area::Entity::insert(service_area::ActiveModel {
            id: Set(area.id.0),
            org_id: Set(area.org_id.as_str().to_owned()),
            name: Set(area.name.clone()),
            polygon: Set(polygon),
            created_at: Set(ts(Utc::now())),
        })
        .on_conflict(
            OnConflict::column(service_area::Column::Id)
                .update_columns([service_area::Column::Name, service_area::Column::Polygon])
                // Only the owner may replace it.
                .action_and_where(
                    Expr::col((service_area::Entity, service_area::Column::OrgId))
                        .eq(area.org_id.as_str()),
                )
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| StoreError::from_constraint(e, "service area"))?;
        if affected == 0 {
            return Err(StoreError::Conflict(format!(
                "service area {} belongs to another organisation",
                area.id
            )));
        }
        Ok(())
    }

    /// The organisation's service areas, oldest first.
    pub async fn service_areas(&self, org: &OrgId) -> Result<Vec<ServiceArea>, StoreError> {
        service_area::Entity::find()
            .filter(service_area::Column::OrgId.eq(org.as_str()))
            .order_by_asc(service_area::Column::CreatedAt)
            .order_by_asc(service_area::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::service_area)
            .collect()
    }

    /// Adds a nurse. A duplicate id or external id is a `Conflict`. The
    /// organisation is created (named by its id) if this is its first nurse:
    /// organisations come from tokens, so a coordinator's first roster entry
    /// may be the first the database hears of hers.
    pub async fn insert_nurse(&self, nurse: &Nurse) -> Result<(), StoreError> {
        self.ensure_organization(&nurse.org_id, nurse.org_id.as_str())
            .await?;
        nurse::Entity::insert(nurse::ActiveModel {
            id: Set(nurse.id.0),
            org_id: Set(nurse.org_id.as_str().to_owned()),
            name: Set(nurse.name.clone()),
            phone: Set(nurse.phone.as_str().to_owned()),
            skills: Set(convert::skills_to_json(&nurse.skills)),
            active: Set(nurse.active),
            shift_state: Set(nurse.shift.as_str().to_owned()),
            external_id: Set(nurse.external_id.clone()),
            created_at: Set(ts(nurse.created_at)),
            updated_at: Set(ts(Utc::now())),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| StoreError::from_constraint(e, "nurse"))?;
        Ok(())
    }

    /// One nurse, if it exists (without credentials: see
    /// [`Store::get_nurse_with_credentials`]).
    pub async fn get_nurse(&self, id: NurseId) -> Result<Option<Nurse>, StoreError> {
        nurse::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .map(convert::nurse)
            .transpose()
    }

    /// The nurse of `org` whose identity provider subject is `external_id`.
    pub async fn nurse_by_external_id(
        &self,
        org: &OrgId,
        external_id: &str,
    ) -> Result<Option<Nurse>, StoreError> {
        nurse::Entity::find()
            .filter(nurse::Column::OrgId.eq(org.as_str()))
            .filter(nurse::Column::ExternalId.eq(external_id))
            .one(&self.db)
            .await?
            .map(convert::nurse)
            .transpose()
    }

    /// The nurses of `ids` that exist, with their credentials, in no
    /// particular order.
    pub async fn get_nurses(&self, ids: &[NurseId]) -> Result<Vec<Nurse>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let nurses = nurse::Entity::find()
            .filter(nurse::Column::Id.is_in(ids.iter().map(|n| n.0)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::nurse)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_credentials(nurses).await
    }

    /// The organisation's roster, in the order nurses were added, with
    /// their credentials.
    pub async fn nurses(&self, org: &OrgId) -> Result<Vec<Nurse>, StoreError> {
        let nurses = nurse::Entity::find()
            .filter(nurse::Column::OrgId.eq(org.as_str()))
            .order_by_asc(nurse::Column::CreatedAt)
            .order_by_asc(nurse::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::nurse)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_credentials(nurses).await
    }

    /// Saves name, phone, skills, external id, active and shift; the
    /// organisation and `created_at` never change. `NotFound` if there is no
    /// such nurse; an external id another nurse of the org has: `Conflict`.
    pub async fn update_nurse(&self, nurse: &Nurse) -> Result<(), StoreError> {
        let res = nurse::Entity::update_many()
            .col_expr(nurse::Column::Name, Expr::value(nurse.name.clone()))
            .col_expr(nurse::Column::Phone, Expr::value(nurse.phone.as_str()))
            .col_expr(
                nurse::Column::Skills,
                Expr::value(convert::skills_to_json(&nurse.skills)),
            )
            .col_expr(nurse::Column::Active, Expr::value(nurse.active))
            .col_expr(
                nurse::Column::ExternalId,
                Expr::value(nurse.external_id.clone()),
            )
            .col_expr(nurse::Column::ShiftState, Expr::value(nurse.shift.as_str()))
            .col_expr(nurse::Column::UpdatedAt, Expr::value(ts(Utc::now())))
            .filter(nurse::Column::Id.eq(nurse.id.0))
            .filter(nurse::Column::OrgId.eq(nurse.org_id.as_str()))
            .exec(&self.db)
            .await
            .map_err(|e| StoreError::from_constraint(e, "nurse"))?;
        if res.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
