//! Clinical governance, part 1: nurses' credentials, the catalogue's
//! credential requirements, which credentials qualified a nurse for an
//! offer, and the append-only audit trail.
//!
//! - `nurse_credentials`: one row per nurse (licence, first registration,
//!   title, certificates as JSON, verification and who/when).
//! - `services.requirements`: JSON {min_years, min_title, certificates};
//!   null reads as the pilot rules' defaults.
//! - `offers.qualified_by`: JSON, what the dispatch gate found.
//! - `audit_log`: who read or changed what, when, from where. Append-only:
//!   triggers refuse UPDATE and DELETE on both PostgreSQL and SQLite.

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NurseCredentials::Table)
                    .col(pk_uuid(NurseCredentials::NurseId))
                    .col(text(NurseCredentials::OrgId))
                    .col(text(NurseCredentials::LicenceNo))
                    .col(date(NurseCredentials::FirstRegisteredOn))
                    // snake_case `Title`
                    .col(text(NurseCredentials::Title))
                    .col(json_binary(NurseCredentials::Certificates))
                    // `pending` | `verified` | `rejected`
                    .col(text(NurseCredentials::Verification))
                    .col(text_null(NurseCredentials::ReviewedBy))
                    .col(timestamp_with_time_zone_null(NurseCredentials::ReviewedAt))
                    .col(text_null(NurseCredentials::RejectReason))
                    .col(text(NurseCredentials::UpdatedBy))
                    .col(timestamp_with_time_zone(NurseCredentials::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_nurse_credentials_nurse_id")
                            .from(NurseCredentials::Table, NurseCredentials::NurseId)
                            .to(Nurses::Table, Nurses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_nurse_credentials_org")
                    .table(NurseCredentials::Table)
                    .col(NurseCredentials::OrgId)
                    .to_owned(),
            )
            .await?;

        manager
            .alter_table(
                Table::alter()
                    .table(Services::Table)
                    .add_column(json_binary_null(Services::Requirements))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Offers::Table)
                    .add_column(json_binary_null(Offers::QualifiedBy))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(pk_auto(AuditLog::Id).big_integer())
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(text(AuditLog::OrgId))
                    .col(text(AuditLog::ActorSub))
                    .col(text(AuditLog::ActorRole))
                    .col(text(AuditLog::Action))
                    .col(text(AuditLog::SubjectKind))
                    .col(text(AuditLog::SubjectId))
                    .col(text_null(AuditLog::ClientAddr))
                    .col(text_null(AuditLog::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_org_at")
                    .table(AuditLog::Table)
                    .col(AuditLog::OrgId)
                    .col(AuditLog::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_org_subject")
                    .table(AuditLog::Table)
                    .col(AuditLog::OrgId)
                    .col(AuditLog::SubjectId)
                    .col(AuditLog::Id)
                    .to_owned(),
            )
            .await?;

        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$ \
                     BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; \
                     $$ LANGUAGE plpgsql",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log \
                     FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
                )
                .await?;
            }
            DatabaseBackend::Sqlite => {
                for op in ["UPDATE", "DELETE"] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER audit_log_no_{} BEFORE {op} ON audit_log \
                         BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
                        op.to_lowercase()
                    ))
                    .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
                .await?;
            db.execute_unprepared("DROP FUNCTION IF EXISTS audit_log_append_only()")
                .await?;
        }
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Offers::Table)
                    .drop_column(Offers::QualifiedBy)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Services::Table)
                    .drop_column(Services::Requirements)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(NurseCredentials::Table).to_owned())
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum NurseCredentials {
    Table,
    NurseId,
    OrgId,
    LicenceNo,
    FirstRegisteredOn,
    Title,
    Certificates,
    Verification,
    ReviewedBy,
    ReviewedAt,
    RejectReason,
    UpdatedBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Nurses {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Services {
    Table,
    Requirements,
}

#[derive(DeriveIden)]
enum Offers {
    Table,
    QualifiedBy,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    OrgId,
    ActorSub,
    ActorRole,
    Action,
    SubjectKind,
    SubjectId,
    ClientAddr,
    Detail,
}
