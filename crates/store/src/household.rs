//! A resident's household: saved addresses and the people they order for,
//! always read and written within one owner (organisation + resident).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::convert::ts;
use crate::entity::{order_patient, resident_address, resident_patient};
use crate::error::StoreError;
use crate::store::Store;

/// A saved address (validated by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct SavedAddress {
    pub id: Uuid,
    pub label: String,
    pub text: String,
    pub detail: Option<String>,
    pub lat: f64,
    pub lng: f64,
    pub created_at: DateTime<Utc>,
}

/// Someone the resident orders for (validated by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdMember {
    pub id: Uuid,
    pub name: String,
    pub sex: String,
    pub birth_year: i32,
    pub relation: String,
    pub conditions: Option<String>,
    pub allergies: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<resident_address::Model> for SavedAddress {
    fn from(m: resident_address::Model) -> Self {
        Self {
            id: m.id,
            label: m.label,
            text: m.text,
            detail: m.detail,
            lat: m.lat,
            lng: m.lng,
            created_at: m.created_at,
        }
    }
}

impl From<resident_patient::Model> for HouseholdMember {
    fn from(m: resident_patient::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            sex: m.sex,
            birth_year: m.birth_year,
            relation: m.relation,
            conditions: m.conditions,
            allergies: m.allergies,
            created_at: m.created_at,
        }
    }
}

impl Store {
    /// The owner's saved addresses, oldest first.
    pub async fn addresses(
        &self,
        org: &str,
        resident: &str,
    ) -> Result<Vec<SavedAddress>, StoreError> {
        Ok(resident_address::Entity::find()
            .filter(resident_address::Column::OrgId.eq(org))
            .filter(resident_address::Column::ResidentId.eq(resident))
            .order_by_asc(resident_address::Column::CreatedAt)
            .order_by_asc(resident_address::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(SavedAddress::from)
            .collect())
    }

    /// One of the owner's addresses.
    pub async fn address(
        &self,
        org: &str,
        resident: &str,
        id: Uuid,
    ) -> Result<Option<SavedAddress>, StoreError> {
        Ok(resident_address::Entity::find_by_id(id)
            .filter(resident_address::Column::OrgId.eq(org))
            .filter(resident_address::Column::ResidentId.eq(resident))
            .one(&self.db)
            .await?
            .map(SavedAddress::from))
    }

    /// Inserts or replaces the owner's address `a.id` (another owner's id is `NotFound`).
    pub async fn save_address(
        &self,
        org: &str,
        resident: &str,
        a: &SavedAddress,
    ) -> Result<(), StoreError> {
        let model = resident_address::ActiveModel {
            id: Set(a.id),
            org_id: Set(org.to_owned()),
            resident_id: Set(resident.to_owned()),
            label: Set(a.label.clone()),
            text: Set(a.text.clone()),
            detail: Set(a.detail.clone()),
            lat: Set(a.lat),
            lng: Set(a.lng),
            created_at: Set(ts(a.created_at)),
        };
        if self.address(org, resident, a.id).await?.is_some() {
            resident_address::Entity::update(model)
                .exec(&self.db)
                .await?;
        } else {
            resident_address::Entity::insert(model)
                .exec_without_returning(&self.db)
                .await
                .map_err(|e| StoreError::from_constraint(e, "address"))?;
        }
        Ok(())
    }

    /// Deletes the owner's address; false if there was none.
    pub async fn delete_address(
        &self,
        org: &str,
        resident: &str,
        id: Uuid,
    ) -> Result<bool, StoreError> {
        let res = resident_address::Entity::delete_many()
            .filter(resident_address::Column::Id.eq(id))
            .filter(resident_address::Column::OrgId.eq(org))
            .filter(resident_address::Column::ResidentId.eq(resident))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected > 0)
    }

    /// The people the owner orders for, oldest first.
    pub async fn household(
        &self,
        org: &str,
        resident: &str,
    ) -> Result<Vec<HouseholdMember>, StoreError> {
        Ok(resident_patient::Entity::find()
            .filter(resident_patient::Column::OrgId.eq(org))
            .filter(resident_patient::Column::ResidentId.eq(resident))
            .order_by_asc(resident_patient::Column::CreatedAt)
            .order_by_asc(resident_patient::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(HouseholdMember::from)
            .collect())
    }

    /// One of the people the owner orders for.
    pub async fn household_member(
        &self,
        org: &str,
        resident: &str,
        id: Uuid,
    ) -> Result<Option<HouseholdMember>, StoreError> {
        Ok(resident_patient::Entity::find_by_id(id)
            .filter(resident_patient::Column::OrgId.eq(org))
            .filter(resident_patient::Column::ResidentId.eq(resident))
            .one(&self.db)
            .await?
            .map(HouseholdMember::from))
    }

    /// Inserts or replaces the owner's household member `p.id`.
    pub async fn save_household_member(
        &self,
        org: &str,
        resident: &str,
        p: &HouseholdMember,
    ) -> Result<(), StoreError> {
        let model = resident_patient::ActiveModel {
            id: Set(p.id),
            org_id: Set(org.to_owned()),
            resident_id: Set(resident.to_owned()),
            name: Set(p.name.clone()),
            sex: Set(p.sex.clone()),
            birth_year: Set(p.birth_year),
            relation: Set(p.relation.clone()),
            conditions: Set(p.conditions.clone()),
            allergies: Set(p.allergies.clone()),
            created_at: Set(ts(p.created_at)),
        };
        if self.household_member(org, resident, p.id).await?.is_some() {
            resident_patient::Entity::update(model)
                .exec(&self.db)
                .await?;
        } else {
            resident_patient::Entity::insert(model)
                .exec_without_returning(&self.db)
                .await
                .map_err(|e| StoreError::from_constraint(e, "patient"))?;
        }
        Ok(())
    }

    /// Deletes the owner's household member; false if there was none.
    pub async fn delete_household_member(
        &self,
        org: &str,
        resident: &str,
        id: Uuid,
    ) -> Result<bool, StoreError> {
        let res = resident_patient::Entity::delete_many()
            .filter(resident_patient::Column::Id.eq(id))
            .filter(resident_patient::Column::OrgId.eq(org))
            .filter(resident_patient::Column::ResidentId.eq(resident))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected > 0)
    }

    /// Records who the order is for (a retried create records it once).
    pub async fn link_order_patient(&self, order: Uuid, patient: Uuid) -> Result<(), StoreError> {
        order_patient::Entity::insert(order_patient::ActiveModel {
            order_id: Set(order),
            patient_id: Set(patient),
        })
        .on_conflict(
            OnConflict::column(order_patient::Column::OrderId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| StoreError::from_constraint(e, "order patient"))?;
        Ok(())
    }

    /// Who the order is for, if it names someone (still in the household).
    pub async fn order_patient(&self, order: Uuid) -> Result<Option<HouseholdMember>, StoreError> {
        let Some(link) = order_patient::Entity::find_by_id(order)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        Ok(resident_patient::Entity::find_by_id(link.patient_id)
            .one(&self.db)
            .await?
            .map(HouseholdMember::from))
    }
}
