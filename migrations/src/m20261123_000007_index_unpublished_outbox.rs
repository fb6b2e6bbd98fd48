//! The relay's poll reads only unpublished outbox rows: index just those.
//!
//! `idx_outbox_published_at_id` (published_at, id) held every row, published
//! or not, and on PostgreSQL the planner read it as a bitmap of all the
//! unpublished rows, then sorted them, so each poll cost grew with the
//! backlog. A partial index on `id` of the unpublished rows serves
//! `WHERE published_at IS NULL ORDER BY id LIMIT n` as an ordered scan that
//! stops after `n` rows, and marking a row published takes it out of the
//! index instead of adding an entry. PostgreSQL and SQLite both support
//! partial indexes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_unpublished")
                    .table(Outbox::Table)
                    .col(Outbox::Id)
                    .and_where(Expr::col(Outbox::PublishedAt).is_null())
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_outbox_published_at_id")
                    .table(Outbox::Table)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_published_at_id")
                    .table(Outbox::Table)
                    .col(Outbox::PublishedAt)
                    .col(Outbox::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_outbox_unpublished")
                    .table(Outbox::Table)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    PublishedAt,
}
