//! Chained jobs: a nurse may hold one current job and one **next** job
//! (won while the current visit was ending). `orders.chained_after` names
//! the current job a next job waits for; it is cleared when that job ends,
//! and the next job becomes her current one.
//!
//! `offers.free_at`: a chained offer's predicted end of the nurse's
//! current visit (her travel to the new order starts then).
//!
//! The one-active-job-per-nurse index becomes two: at most one current job
//! (`chained_after` null) and at most one next job (`chained_after` set)
//! per nurse, so two accepts never both win a slot, on PostgreSQL and
//! SQLite alike (partial unique indexes).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD: &str = "uq_orders_one_active_per_nurse";
const CURRENT: &str = "uq_orders_one_current_per_nurse";
const NEXT: &str = "uq_orders_one_next_per_nurse";
const ACTIVE: [&str; 4] = ["assigned", "en_route", "arrived", "in_service"];

fn slot_index(name: &str, next: bool) -> IndexCreateStatement {
    let chained = if next {
        Expr::col(Orders::ChainedAfter).is_not_null()
    } else {
        Expr::col(Orders::ChainedAfter).is_null()
    };
    Index::create()
        .name(name)
        .table(Orders::Table)
        .col(Orders::NurseId)
        .unique()
        .and_where(Expr::col(Orders::Status).is_in(ACTIVE))
        .and_where(chained)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(ColumnDef::new(Orders::ChainedAfter).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Offers::Table)
                    .add_column(
                        ColumnDef::new(Offers::FreeAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name(OLD).table(Orders::Table).to_owned())
            .await?;
        manager.create_index(slot_index(CURRENT, false)).await?;
        manager.create_index(slot_index(NEXT, true)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [NEXT, CURRENT] {
            manager
                .drop_index(Index::drop().name(name).table(Orders::Table).to_owned())
                .await?;
        }
        // A next job cannot outlive the old rule: back to waiting.
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE orders SET status = 'pending', nurse_id = NULL \
             WHERE chained_after IS NOT NULL AND status IN ('assigned', 'en_route', 'arrived', 'in_service')",
        )
        .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .drop_column(Orders::ChainedAfter)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Offers::Table)
                    .drop_column(Offers::FreeAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(OLD)
                    .table(Orders::Table)
                    .col(Orders::NurseId)
                    .unique()
                    .and_where(Expr::col(Orders::Status).is_in(ACTIVE))
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    NurseId,
    Status,
    ChainedAfter,
}

#[derive(DeriveIden)]
enum Offers {
    Table,
    FreeAt,
}
