//! `nurses.external_id`: the identity provider's own subject for a roster
//! nurse, so a deployment's tokens need not carry our internal UUID. Unique
//! within an organisation (several nurses without one are fine: NULLs are
//! distinct on both PostgreSQL and SQLite).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_nurses_org_external_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Nurses::Table)
                    .add_column(ColumnDef::new(Nurses::ExternalId).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Nurses::Table)
                    .col(Nurses::OrgId)
                    .col(Nurses::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Nurses::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Nurses::Table)
                    .drop_column(Nurses::ExternalId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Nurses {
    Table,
    OrgId,
    ExternalId,
}
