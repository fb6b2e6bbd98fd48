//! Service areas (GeoJSON polygons an organisation serves) and the nurse roster.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ServiceAreas::Table)
                    .col(pk_uuid(ServiceAreas::Id))
                    .col(text(ServiceAreas::OrgId))
                    .col(text(ServiceAreas::Name))
                    // A GeoJSON Polygon object.
                    .col(json_binary(ServiceAreas::Polygon))
                    .col(timestamp_with_time_zone(ServiceAreas::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_service_areas_org_id")
                            .from(ServiceAreas::Table, ServiceAreas::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_service_areas_org_id")
                    .table(ServiceAreas::Table)
                    .col(ServiceAreas::OrgId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Nurses::Table)
                    .col(pk_uuid(Nurses::Id))
                    .col(text(Nurses::OrgId))
                    .col(text(Nurses::Name))
                    .col(text(Nurses::Phone))
                    // JSON array of skill strings.
                    .col(json_binary(Nurses::Skills))
                    .col(boolean(Nurses::Active))
                    // `off` | `on`
                    .col(text(Nurses::ShiftState))
                    .col(timestamp_with_time_zone(Nurses::CreatedAt))
                    .col(timestamp_with_time_zone(Nurses::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_nurses_org_id")
                            .from(Nurses::Table, Nurses::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_nurses_org_id")
                    .table(Nurses::Table)
                    .col(Nurses::OrgId)
                    .to_owned(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Nurses::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ServiceAreas::Table).to_owned())
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ServiceAreas {
    Table,
    Id,
    OrgId,
    Name,
    Polygon,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Nurses {
    Table,
    Id,
    OrgId,
    Name,
    Phone,
    Skills,
    Active,
    ShiftState,
    CreatedAt,
    UpdatedAt,
}
