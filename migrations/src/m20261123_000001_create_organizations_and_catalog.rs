//! Organisations (tenants, e.g. one hospital) and the service catalogue.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(text(Organizations::Id).primary_key())
                    .col(text(Organizations::Name))
                    .col(timestamp_with_time_zone(Organizations::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ServiceCategories::Table)
                    .col(text(ServiceCategories::Code).primary_key())
                    .col(text(ServiceCategories::NameZh))
                    .col(text(ServiceCategories::NameEn))
                    .col(integer(ServiceCategories::Sort))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Services::Table)
                    .col(text(Services::Code).primary_key())
                    .col(text(Services::CategoryCode))
                    .col(text(Services::NameZh))
                    .col(text(Services::NameEn))
                    // u32 in the domain: a big integer holds every value losslessly.
                    .col(big_integer(Services::DurationMin))
                    .col(big_integer(Services::PriceCents))
                    // JSON array of skill strings.
                    .col(json_binary(Services::RequiredSkills))
                    .col(boolean(Services::Active))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_services_category_code")
                            .from(Services::Table, Services::CategoryCode)
                            .to(ServiceCategories::Table, ServiceCategories::Code)
                            .on_delete(ForeignKeyAction::Restrict)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("idx_services_category_code")
                    .table(Services::Table)
                    .col(Services::CategoryCode)
                    .to_owned(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Services::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ServiceCategories::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Organizations::Table).to_owned())
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ServiceCategories {
    Table,
    Code,
    NameZh,
    NameEn,
    Sort,
}

#[derive(DeriveIden)]
enum Services {
    Table,
    Code,
    CategoryCode,
    NameZh,
    NameEn,
    DurationMin,
    PriceCents,
    RequiredSkills,
    Active,
}
