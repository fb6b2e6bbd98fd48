//! `nurse_shifts`: the roster's planned shifts (when a nurse will work),
//! from which bookable slots are computed. `bookings`: one reservation per
//! booked order, holding its nurse for the visit's time range; the store
//! checks a new one against the nurse's others (with travel between them)
//! in one transaction under a lock on the nurse's row. A booking is written
//! before its order (so there is no foreign key to `orders`); one whose
//! order is cancelled or rejected no longer holds the nurse. The visits of
//! one course (a package booked at once) share a `course_id`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SHIFTS_INDEX: &str = "idx_nurse_shifts_org_starts";
const BOOKINGS_INDEX: &str = "idx_bookings_nurse_starts";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NurseShifts::Table)
                    .col(
                        ColumnDef::new(NurseShifts::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(NurseShifts::OrgId).text().not_null())
                    .col(ColumnDef::new(NurseShifts::NurseId).uuid().not_null())
                    .col(
                        ColumnDef::new(NurseShifts::StartsAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(NurseShifts::EndsAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(NurseShifts::Table, NurseShifts::NurseId)
                            .to(Nurses::Table, Nurses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(SHIFTS_INDEX)
                    .table(NurseShifts::Table)
                    .col(NurseShifts::OrgId)
                    .col(NurseShifts::StartsAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Bookings::Table)
                    .col(
                        ColumnDef::new(Bookings::OrderId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Bookings::OrgId).text().not_null())
                    .col(ColumnDef::new(Bookings::NurseId).uuid().not_null())
                    .col(ColumnDef::new(Bookings::Lat).double().not_null())
                    .col(ColumnDef::new(Bookings::Lng).double().not_null())
                    .col(
                        ColumnDef::new(Bookings::StartsAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Bookings::EndsAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Bookings::CourseId).uuid().null())
                    .col(
                        ColumnDef::new(Bookings::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Bookings::Table, Bookings::NurseId)
                            .to(Nurses::Table, Nurses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(BOOKINGS_INDEX)
                    .table(Bookings::Table)
                    .col(Bookings::NurseId)
                    .col(Bookings::StartsAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Bookings::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(NurseShifts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum NurseShifts {
    Table,
    Id,
    OrgId,
    NurseId,
    StartsAt,
    EndsAt,
}

#[derive(DeriveIden)]
enum Bookings {
    Table,
    OrderId,
    OrgId,
    NurseId,
    Lat,
    Lng,
    StartsAt,
    EndsAt,
    CourseId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Nurses {
    Table,
    Id,
}
