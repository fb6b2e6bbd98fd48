//! Phone sign-in: the live one-time codes (hashed) and the residents they create.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, ExprTrait, QueryFilter};
use uuid::Uuid;
use yixin_domain::{NurseId, OrgId, PhoneNumber};

use crate::convert::ts;
use crate::entity::{nurse, organization, otp_code, resident};
use crate::error::{StoreError, is_unique_violation};
use crate::store::Store;

/// The live code of one (organisation, role, phone), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub org_id: String,
    pub role: String,
    pub phone: String,
    /// Keyed hash of the code; the code itself is never stored.
    pub code_hash: String,
    pub attempts: u32,
    pub sent_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<otp_code::Model> for StoredCode {
    fn from(m: otp_code::Model) -> Self {
        Self {
            org_id: m.org_id,
            role: m.role,
            phone: m.phone,
            code_hash: m.code_hash,
            attempts: u32::try_from(m.attempts).unwrap_or(u32::MAX),
            sent_at: m.sent_at,
            expires_at: m.expires_at,
        }
    }
}

impl Store {
    /// Saves `code`, replacing any earlier code of the same phone, role and
    /// organisation (its tries start again at 0).
    pub async fn put_otp_code(&self, code: &StoredCode) -> Result<(), StoreError> {
        otp_code::Entity::insert(otp_code::ActiveModel {
            org_id: Set(code.org_id.clone()),
            role: Set(code.role.clone()),
            phone: Set(code.phone.clone()),
            code_hash: Set(code.code_hash.clone()),
            attempts: Set(i32::try_from(code.attempts).unwrap_or(i32::MAX)),
            sent_at: Set(ts(code.sent_at)),
            expires_at: Set(ts(code.expires_at)),
        })
        .on_conflict(
            OnConflict::columns([
                otp_code::Column::OrgId,
                otp_code::Column::Role,
                otp_code::Column::Phone,
            ])
            .update_columns([
                otp_code::Column::CodeHash,
                otp_code::Column::Attempts,
                otp_code::Column::SentAt,
                otp_code::Column::ExpiresAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// The live code of the phone, role and organisation, if any.
    pub async fn otp_code(
        &self,
        org: &str,
        role: &str,
        phone: &str,
    ) -> Result<Option<StoredCode>, StoreError> {
        Ok(
            otp_code::Entity::find_by_id((org.to_owned(), role.to_owned(), phone.to_owned()))
                .one(&self.db)
                .await?
                .map(StoredCode::from),
        )
    }

    /// Counts one wrong try against the code `seen` (only if it is still
    /// that code with that many tries: two wrong tries at once both count,
    /// one of them by a retry of the caller). False when it changed meanwhile.
    pub async fn count_otp_failure(&self, seen: &StoredCode) -> Result<bool, StoreError> {
        let res = otp_code::Entity::update_many()
            .col_expr(
                otp_code::Column::Attempts,
                Expr::col(otp_code::Column::Attempts).add(1),
            )
            .filter(otp_code::Column::OrgId.eq(&seen.org_id))
            .filter(otp_code::Column::Role.eq(&seen.role))
            .filter(otp_code::Column::Phone.eq(&seen.phone))
            .filter(otp_code::Column::CodeHash.eq(&seen.code_hash))
            .filter(otp_code::Column::Attempts.eq(i32::try_from(seen.attempts).unwrap_or(i32::MAX)))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Uses up the code `seen`: true for the one caller that removed it
    /// (a code signs in once), false if it was replaced or used meanwhile.
    pub async fn consume_otp_code(&self, seen: &StoredCode) -> Result<bool, StoreError> {
        let res = otp_code::Entity::delete_many()
            .filter(otp_code::Column::OrgId.eq(&seen.org_id))
            .filter(otp_code::Column::Role.eq(&seen.role))
            .filter(otp_code::Column::Phone.eq(&seen.phone))
            .filter(otp_code::Column::CodeHash.eq(&seen.code_hash))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// The resident of this phone in this organisation, created on first
    /// use. An unknown organisation is a `Conflict`.
    pub async fn resident_for_phone(
        &self,
        org: &OrgId,
        phone: &PhoneNumber,
    ) -> Result<Uuid, StoreError> {
        if let Some(id) = self.find_resident(org, phone).await? {
            return Ok(id);
        }
        let id = Uuid::now_v7();
        let inserted = resident::Entity::insert(resident::ActiveModel {
            id: Set(id),
            org_id: Set(org.as_str().to_owned()),
            phone: Set(phone.as_str().to_owned()),
            created_at: Set(ts(Utc::now())),
        })
        .exec_without_returning(&self.db)
        .await;
        match inserted {
            Ok(_) => Ok(id),
            // Two first sign-ins at once: the other one created it.
            Err(e) if is_unique_violation(&e) => self
                .find_resident(org, phone)
                .await?
                .ok_or(StoreError::NotFound),
            Err(e) => Err(StoreError::from_constraint(e, "resident")),
        }
    }

    async fn find_resident(
        &self,
        org: &OrgId,
        phone: &PhoneNumber,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(resident::Entity::find()
            .filter(resident::Column::OrgId.eq(org.as_str()))
            .filter(resident::Column::Phone.eq(phone.as_str()))
            .one(&self.db)
            .await?
            .map(|r| r.id))
    }

    /// Whether the organisation exists.
    pub async fn organization_exists(&self, org: &OrgId) -> Result<bool, StoreError> {
        Ok(organization::Entity::find_by_id(org.as_str().to_owned())
            .one(&self.db)
            .await?
            .is_some())
    }

    /// The active nurse of the organisation's roster with this phone, if any.
    pub async fn active_nurse_by_phone(
        &self,
        org: &OrgId,
        phone: &PhoneNumber,
    ) -> Result<Option<NurseId>, StoreError> {
        Ok(nurse::Entity::find()
            .filter(nurse::Column::OrgId.eq(org.as_str()))
            .filter(nurse::Column::Phone.eq(phone.as_str()))
            .filter(nurse::Column::Active.eq(true))
            .one(&self.db)
            .await?
            .map(|n| NurseId(n.id)))
    }
}
