//! The nurses' location trail (GPS fixes as received).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key to `nurses`: this is a high-rate append-only trail,
        // written in batches; the writer has already authenticated the nurse.
        manager
            .create_table(
                Table::create()
                    .table(NurseLocations::Table)
                    .col(big_pk_auto(NurseLocations::Id))
                    .col(uuid(NurseLocations::NurseId))
                    .col(double(NurseLocations::Lat))
                    .col(double(NurseLocations::Lng))
                    .col(double(NurseLocations::AccuracyM))
                    .col(timestamp_with_time_zone(NurseLocations::RecordedAt))
                    .col(timestamp_with_time_zone(NurseLocations::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_nurse_locations_nurse_recorded_at")
                    .table(NurseLocations::Table)
                    .col(NurseLocations::NurseId)
                    .col(NurseLocations::RecordedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(NurseLocations::Table).to_owned())
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum NurseLocations {
    Table,
    Id,
    NurseId,
    Lat,
    Lng,
    AccuracyM,
    RecordedAt,
    ReceivedAt,
}
