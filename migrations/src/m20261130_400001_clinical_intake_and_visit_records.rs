//! Clinical governance, part 2: the catalogue's intake questions, consent
//! text and visit-record form (`services.clinical`), what the resident put
//! on an order (`orders.clinical`: answers, flags, consent, doctor's order,
//! screening outcome) and the visit records (`visit_records`, append-only:
//! an amendment is a new version, never an update).
//!
//! One column per `ALTER TABLE`: SQLite allows no more.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Services::Table)
                    .add_column(json_binary_null(Services::Clinical))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(json_binary_null(Orders::Clinical))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(VisitRecords::Table)
                    .col(pk_uuid(VisitRecords::Id))
                    .col(uuid(VisitRecords::OrderId))
                    .col(integer(VisitRecords::Version))
                    .col(text(VisitRecords::OrgId))
                    .col(uuid(VisitRecords::NurseId))
                    .col(text(VisitRecords::ServiceCode))
                    .col(json_binary(VisitRecords::FieldValues))
                    .col(text_null(VisitRecords::Notes))
                    .col(timestamp_with_time_zone(VisitRecords::SubmittedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_visit_records_order_id")
                            .from(VisitRecords::Table, VisitRecords::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // One row per version: two concurrent amendments cannot both be "version 2".
        manager
            .create_index(
                Index::create()
                    .name("uq_visit_records_order_version")
                    .table(VisitRecords::Table)
                    .col(VisitRecords::OrderId)
                    .col(VisitRecords::Version)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The coordinators' export: an organisation's records of a period.
        manager
            .create_index(
                Index::create()
                    .name("idx_visit_records_org_submitted")
                    .table(VisitRecords::Table)
                    .col(VisitRecords::OrgId)
                    .col(VisitRecords::SubmittedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(VisitRecords::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .drop_column(Orders::Clinical)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Services::Table)
                    .drop_column(Services::Clinical)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Services {
    Table,
    Clinical,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    Clinical,
}

#[derive(DeriveIden)]
enum VisitRecords {
    Table,
    Id,
    OrderId,
    Version,
    OrgId,
    NurseId,
    ServiceCode,
    FieldValues,
    Notes,
    SubmittedAt,
}
