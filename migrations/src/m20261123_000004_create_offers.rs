//! Offers: an order proposed to one nurse, with a deadline.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Offers::Table)
                    .col(pk_uuid(Offers::Id))
                    .col(uuid(Offers::OrderId))
                    .col(uuid(Offers::NurseId))
                    // snake_case `OfferStatus`
                    .col(text(Offers::Status))
                    .col(timestamp_with_time_zone(Offers::CreatedAt))
                    .col(timestamp_with_time_zone(Offers::ExpiresAt))
                    .col(big_integer(Offers::EtaMin))
                    .col(big_integer(Offers::DistanceM))
                    .col(timestamp_with_time_zone_null(Offers::AnsweredAt))
                    .col(text_null(Offers::DeclineReason))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_offers_order_id")
                            .from(Offers::Table, Offers::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_offers_nurse_id")
                            .from(Offers::Table, Offers::NurseId)
                            .to(Nurses::Table, Nurses::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("idx_offers_order_id")
                    .table(Offers::Table)
                    .col(Offers::OrderId)
                    .col(Offers::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_offers_nurse_status")
                    .table(Offers::Table)
                    .col(Offers::NurseId)
                    .col(Offers::Status)
                    .to_owned(),
            )
            .await?;

        // Partial unique indexes (PostgreSQL and SQLite both support them): an
        // order has at most one open offer, and a nurse holds at most one.
        manager
            .create_index(
                Index::create()
                    .name("uq_offers_one_open_per_order")
                    .table(Offers::Table)
                    .col(Offers::OrderId)
                    .unique()
                    .and_where(Expr::col(Offers::Status).eq("open"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_offers_one_open_per_nurse")
                    .table(Offers::Table)
                    .col(Offers::NurseId)
                    .unique()
                    .and_where(Expr::col(Offers::Status).eq("open"))
                    .to_owned(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Offers::Table).to_owned())
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Nurses {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Offers {
    Table,
    Id,
    OrderId,
    NurseId,
    Status,
    CreatedAt,
    ExpiresAt,
    EtaMin,
    DistanceM,
    AnsweredAt,
    DeclineReason,
}
