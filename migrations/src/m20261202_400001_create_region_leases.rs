//! `region_leases`: who dispatches each region (sharded dispatch). One row
//! per region: its holder (a dispatcher instance's id), a fencing token
//! raised on every change of hands, and when the lease runs out. Taken and
//! renewed only by conditional updates; a row with no holder is a region
//! known (an order came from it) that nobody has taken yet.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RegionLeases::Table)
                    .col(text(RegionLeases::Region).primary_key())
                    .col(text_null(RegionLeases::Holder))
                    .col(big_integer(RegionLeases::Token).default(0))
                    .col(timestamp_with_time_zone_null(RegionLeases::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RegionLeases::AcquiredAt))
                    .col(timestamp_with_time_zone_null(RegionLeases::RenewedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RegionLeases::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RegionLeases {
    Table,
    Region,
    Holder,
    Token,
    ExpiresAt,
    AcquiredAt,
    RenewedAt,
}
