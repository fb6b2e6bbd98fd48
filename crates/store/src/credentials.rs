//! Nurses' credentials (one row per nurse) and the audit trail.
//!
//! The audit trail is append-only: this module has an insert and reads,
//! and nothing else touches the table (triggers refuse UPDATE and DELETE).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use yixin_domain::{Credentials, Nurse, NurseId, OrgId, Verification};

use crate::convert::{self, ts};
use crate::entity::{audit_log, nurse_credentials};
use crate::error::StoreError;
use crate::store::Store;

/// The audit trail's actions: the one list every service writes from.
pub mod audit_action {
    /// A nurse or coordinator was shown a patient's address and phone.
    pub const READ_ADDRESS: &str = "read_address";
    /// A coordinator read (exported) a visit record.
    pub const READ_RECORD: &str = "read_record";
    /// A nurse's credentials were entered or changed (pending verification).
    pub const CREDENTIALS_CHANGED: &str = "credentials_changed";
    pub const CREDENTIALS_VERIFIED: &str = "credentials_verified";
    pub const CREDENTIALS_REJECTED: &str = "credentials_rejected";
}

/// One thing to record in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub org: OrgId,
    /// The caller's `sub` and `role`.
    pub actor_sub: String,
    pub actor_role: String,
    /// What happened, e.g. `read_address`, `credentials_verified`.
    pub action: String,
    /// `order` or `nurse`.
    pub subject_kind: String,
    pub subject_id: String,
    /// The client's address, as the connection saw it.
    pub client_addr: Option<String>,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// A recorded audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub entry: AuditEntry,
}

/// Which audit rows to read: an organisation's, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub subject: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Rows with an id below this (the previous page's last).
    pub before: Option<i64>,
    pub limit: u64,
}

impl Store {
    /// Appends one row to the audit trail.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.audit_many(std::slice::from_ref(entry)).await
    }

    /// Appends rows to the audit trail in one statement.
    pub async fn audit_many(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // Bounded statements: a long list read audits one row per order.
        for chunk in entries.chunks(200) {
            self.audit_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn audit_chunk(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let rows = entries.iter().map(|entry| audit_log::ActiveModel {
            at: Set(ts(entry.at)),
            org_id: Set(entry.org.as_str().to_owned()),
            actor_sub: Set(entry.actor_sub.clone()),
            actor_role: Set(entry.actor_role.clone()),
            action: Set(entry.action.clone()),
            subject_kind: Set(entry.subject_kind.clone()),
            subject_id: Set(entry.subject_id.clone()),
            client_addr: Set(entry.client_addr.clone()),
            detail: Set(entry.detail.clone()),
            ..Default::default()
        });
        audit_log::Entity::insert_many(rows)
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// The organisation's audit rows matching `q`, newest first.
    pub async fn audit_trail(
        &self,
        org: &OrgId,
        q: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut find = audit_log::Entity::find().filter(audit_log::Column::OrgId.eq(org.as_str()));
        if let Some(s) = &q.subject {
            find = find.filter(audit_log::Column::SubjectId.eq(s.as_str()));
        }
        if let Some(from) = q.from {
            find = find.filter(audit_log::Column::At.gte(ts(from)));
        }
        if let Some(to) = q.to {
            find = find.filter(audit_log::Column::At.lt(ts(to)));
        }
        if let Some(before) = q.before {
            find = find.filter(audit_log::Column::Id.lt(before));
        }
        Ok(find
            .order_by_desc(audit_log::Column::Id)
            .limit(q.limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| AuditRecord {
                id: m.id,
                entry: AuditEntry {
                    org: OrgId(m.org_id),
                    actor_sub: m.actor_sub,
                    actor_role: m.actor_role,
                    action: m.action,
                    subject_kind: m.subject_kind,
                    subject_id: m.subject_id,
                    client_addr: m.client_addr,
                    detail: m.detail,
                    at: m.at,
                },
            })
            .collect())
    }

    /// Saves a nurse's credentials whole (entered, changed or reviewed).
    pub async fn put_credentials(&self, nurse: &Nurse, c: &Credentials) -> Result<(), StoreError> {
        let certificates = serde_json::to_value(&c.certificates)
            .map_err(|e| StoreError::Corrupt(format!("certificates: {e}")))?;
        use nurse_credentials::Column as C;
        nurse_credentials::Entity::insert(nurse_credentials::ActiveModel {
            nurse_id: Set(nurse.id.0),
            org_id: Set(nurse.org_id.as_str().to_owned()),
            licence_no: Set(c.licence_no.clone()),
            first_registered_on: Set(c.first_registered_on),
            title: Set(c.title.as_str().to_owned()),
            certificates: Set(certificates),
            verification: Set(c.verification.as_str().to_owned()),
            reviewed_by: Set(c.reviewed_by.clone()),
            reviewed_at: Set(c.reviewed_at.map(ts)),
            reject_reason: Set(c.reject_reason.clone()),
            updated_by: Set(c.updated_by.clone()),
            updated_at: Set(ts(c.updated_at)),
        })
        .on_conflict(
            OnConflict::column(C::NurseId)
                .update_columns([
                    C::LicenceNo,
                    C::FirstRegisteredOn,
                    C::Title,
                    C::Certificates,
                    C::Verification,
                    C::ReviewedBy,
                    C::ReviewedAt,
                    C::RejectReason,
                    C::UpdatedBy,
                    C::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| StoreError::from_constraint(e, "credentials"))?;
        Ok(())
    }

    /// One nurse's credentials, if entered.
    pub async fn credentials(&self, nurse: NurseId) -> Result<Option<Credentials>, StoreError> {
        nurse_credentials::Entity::find_by_id(nurse.0)
            .one(&self.db)
            .await?
            .map(convert::credentials)
            .transpose()
    }

    /// The organisation's credentials, by nurse.
    pub async fn org_credentials(
        &self,
        org: &OrgId,
    ) -> Result<Vec<(NurseId, Credentials)>, StoreError> {
        nurse_credentials::Entity::find()
            .filter(nurse_credentials::Column::OrgId.eq(org.as_str()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| {
                let id = NurseId(m.nurse_id);
                convert::credentials(m).map(|c| (id, c))
            })
            .collect()
    }

    /// One nurse with her credentials.
    pub async fn get_nurse_with_credentials(
        &self,
        id: NurseId,
    ) -> Result<Option<Nurse>, StoreError> {
        let Some(mut nurse) = self.get_nurse(id).await? else {
            return Ok(None);
        };
        nurse.credentials = self.credentials(id).await?;
        Ok(Some(nurse))
    }

    /// `nurses` with their credentials attached (one read for all).
    pub(crate) async fn with_credentials(
        &self,
        mut nurses: Vec<Nurse>,
    ) -> Result<Vec<Nurse>, StoreError> {
        if nurses.is_empty() {
            return Ok(nurses);
        }
        let mut found: std::collections::HashMap<uuid::Uuid, Credentials> =
            std::collections::HashMap::new();
        // Bounded chunks keep the IN list within every backend's limits.
        for chunk in nurses.chunks(500) {
            for m in nurse_credentials::Entity::find()
                .filter(nurse_credentials::Column::NurseId.is_in(chunk.iter().map(|n| n.id.0)))
                .all(&self.db)
                .await?
            {
                let id = m.nurse_id;
                found.insert(id, convert::credentials(m)?);
            }
        }
        for n in &mut nurses {
            n.credentials = found.remove(&n.id.0);
        }
        Ok(nurses)
    }
}

/// Whether credentials were verified: a convenience for callers that only
/// need the state.
pub fn is_verified(c: Option<&Credentials>) -> bool {
    c.is_some_and(|c| c.verification == Verification::Verified)
}
