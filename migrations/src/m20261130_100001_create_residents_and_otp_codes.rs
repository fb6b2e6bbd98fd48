//! Residents (created by their first verified phone sign-in) and the
//! one-time sign-in codes (stored as keyed hashes, never in clear).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Residents::Table)
                    .col(pk_uuid(Residents::Id))
                    .col(text(Residents::OrgId))
                    .col(text(Residents::Phone))
                    .col(timestamp_with_time_zone(Residents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_residents_org")
                            .from(Residents::Table, Residents::OrgId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // One resident per phone and organisation.
        manager
            .create_index(
                Index::create()
                    .name("uq_residents_org_phone")
                    .table(Residents::Table)
                    .col(Residents::OrgId)
                    .col(Residents::Phone)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // One live code per (organisation, role, phone): a new code replaces the old.
        manager
            .create_table(
                Table::create()
                    .table(OtpCodes::Table)
                    .col(text(OtpCodes::OrgId))
                    .col(text(OtpCodes::Role))
                    .col(text(OtpCodes::Phone))
                    .col(text(OtpCodes::CodeHash))
                    .col(integer(OtpCodes::Attempts))
                    .col(timestamp_with_time_zone(OtpCodes::SentAt))
                    .col(timestamp_with_time_zone(OtpCodes::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .col(OtpCodes::OrgId)
                            .col(OtpCodes::Role)
                            .col(OtpCodes::Phone),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OtpCodes::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Residents::Table).to_owned())
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Residents {
    Table,
    Id,
    OrgId,
    Phone,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OtpCodes {
    Table,
    OrgId,
    Role,
    Phone,
    CodeHash,
    Attempts,
    SentAt,
    ExpiresAt,
}
