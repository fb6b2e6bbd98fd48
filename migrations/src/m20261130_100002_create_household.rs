//! A resident's household: saved addresses, the people they order for, and
//! which of them an order is for.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ResidentAddresses::Table)
                    .col(pk_uuid(ResidentAddresses::Id))
                    .col(text(ResidentAddresses::OrgId))
                    .col(text(ResidentAddresses::ResidentId))
                    .col(text(ResidentAddresses::Label))
                    .col(text(ResidentAddresses::Text))
                    .col(text_null(ResidentAddresses::Detail))
                    .col(double(ResidentAddresses::Lat))
                    .col(double(ResidentAddresses::Lng))
                    .col(timestamp_with_time_zone(ResidentAddresses::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_resident_addresses_owner")
                    .table(ResidentAddresses::Table)
                    .col(ResidentAddresses::OrgId)
                    .col(ResidentAddresses::ResidentId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ResidentPatients::Table)
                    .col(pk_uuid(ResidentPatients::Id))
                    .col(text(ResidentPatients::OrgId))
                    .col(text(ResidentPatients::ResidentId))
                    .col(text(ResidentPatients::Name))
                    .col(text(ResidentPatients::Sex))
                    .col(integer(ResidentPatients::BirthYear))
                    .col(text(ResidentPatients::Relation))
                    .col(text_null(ResidentPatients::Conditions))
                    .col(text_null(ResidentPatients::Allergies))
                    .col(timestamp_with_time_zone(ResidentPatients::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_resident_patients_owner")
                    .table(ResidentPatients::Table)
                    .col(ResidentPatients::OrgId)
                    .col(ResidentPatients::ResidentId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OrderPatients::Table)
                    .col(pk_uuid(OrderPatients::OrderId))
                    .col(uuid(OrderPatients::PatientId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_order_patients_order")
                            .from(OrderPatients::Table, OrderPatients::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OrderPatients::Table.into_iden(),
            ResidentPatients::Table.into_iden(),
            ResidentAddresses::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ResidentAddresses {
    Table,
    Id,
    OrgId,
    ResidentId,
    Label,
    Text,
    Detail,
    Lat,
    Lng,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ResidentPatients {
    Table,
    Id,
    OrgId,
    ResidentId,
    Name,
    Sex,
    BirthYear,
    Relation,
    Conditions,
    Allergies,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OrderPatients {
    Table,
    OrderId,
    PatientId,
}
