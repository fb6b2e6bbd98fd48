//! Orders and their timeline.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .col(pk_uuid(Orders::Id))
                    .col(text(Orders::OrgId))
                    .col(text(Orders::ResidentId))
                    .col(text(Orders::ServiceCode))
                    // snake_case `OrderStatus`
                    .col(text(Orders::Status))
                    .col(double(Orders::Lat))
                    .col(double(Orders::Lng))
                    .col(text(Orders::AddressText))
                    .col(text_null(Orders::AddressDetail))
                    .col(text(Orders::ContactName))
                    .col(text(Orders::ContactPhone))
                    .col(text_null(Orders::Notes))
                    .col(timestamp_with_time_zone_null(Orders::ScheduledFor))
                    .col(timestamp_with_time_zone(Orders::CreatedAt))
                    .col(timestamp_with_time_zone(Orders::PromisedBy))
                    .col(uuid_null(Orders::NurseId))
                    .col(timestamp_with_time_zone_null(Orders::Eta))
                    .col(text_null(Orders::CancelReason))
                    .col(small_integer_null(Orders::RatingStars))
                    .col(text_null(Orders::RatingComment))
                    .col(timestamp_with_time_zone(Orders::UpdatedAt))
                    // Optimistic concurrency: bumped by every conditional update.
                    .col(integer(Orders::Version).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_orders_service_code")
                            .from(Orders::Table, Orders::ServiceCode)
                            .to(Services::Table, Services::Code)
                            .on_delete(ForeignKeyAction::Restrict)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_orders_nurse_id")
                            .from(Orders::Table, Orders::NurseId)
                            .to(Nurses::Table, Nurses::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;

        // The resident's order list: newest first, keyset-paged on (created_at, id).
        manager
            .create_index(
                Index::create()
                    .name("idx_orders_resident_recent")
                    .table(Orders::Table)
                    .col(Orders::OrgId)
                    .col(Orders::ResidentId)
                    .col((Orders::CreatedAt, IndexOrder::Desc))
                    .col((Orders::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        // Dispatch rediscovery after a restart: every order in a given status.
        manager
            .create_index(
                Index::create()
                    .name("idx_orders_status")
                    .table(Orders::Table)
                    .col(Orders::Status)
                    .to_owned(),
            )
            .await?;
        // A nurse's current jobs.
        manager
            .create_index(
                Index::create()
                    .name("idx_orders_nurse_status")
                    .table(Orders::Table)
                    .col(Orders::NurseId)
                    .col(Orders::Status)
                    .to_owned(),
            )
            .await?;
        // No double booking, enforced by the database: a nurse holds at most
        // one order between assignment and the end of the visit. A partial
        // unique index, which PostgreSQL and SQLite both support.
        manager
            .create_index(
                Index::create()
                    .name("uq_orders_one_active_per_nurse")
                    .table(Orders::Table)
                    .col(Orders::NurseId)
                    .unique()
                    .and_where(Expr::col(Orders::Status).is_in([
                        "assigned",
                        "en_route",
                        "arrived",
                        "in_service",
                    ]))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OrderEvents::Table)
                    .col(big_pk_auto(OrderEvents::Id))
                    .col(uuid(OrderEvents::OrderId))
                    .col(text(OrderEvents::Status))
                    .col(timestamp_with_time_zone(OrderEvents::At))
                    .col(json_binary_null(OrderEvents::Detail))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_order_events_order_id")
                            .from(OrderEvents::Table, OrderEvents::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_order_events_order_id")
                    .table(OrderEvents::Table)
                    .col(OrderEvents::OrderId)
                    .col(OrderEvents::Id)
                    .to_owned(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OrderEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Orders::Table).to_owned())
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Services {
    Table,
    Code,
}

#[derive(DeriveIden)]
enum Nurses {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    OrgId,
    ResidentId,
    ServiceCode,
    Status,
    Lat,
    Lng,
    AddressText,
    AddressDetail,
    ContactName,
    ContactPhone,
    Notes,
    ScheduledFor,
    CreatedAt,
    PromisedBy,
    NurseId,
    Eta,
    CancelReason,
    RatingStars,
    RatingComment,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum OrderEvents {
    Table,
    Id,
    OrderId,
    Status,
    At,
    Detail,
}
