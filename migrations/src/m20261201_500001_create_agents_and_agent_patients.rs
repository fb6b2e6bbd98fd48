//! The agent list (family doctors, grid workers, ward nurses who order for
//! someone else) and where an agent's registered patients live: a
//! registered patient is a household member owned by `agent:<agent id>`
//! (`resident_patients`); `agent_patient_homes` adds the phone (optional),
//! the address and point, and notes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .col(pk_uuid(Agents::Id))
                    .col(text(Agents::OrgId))
                    .col(text(Agents::Name))
                    .col(text(Agents::Phone))
                    .col(text(Agents::Kind))
                    .col(boolean(Agents::Active).default(true))
                    .col(timestamp_with_time_zone(Agents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agents_org")
                            .from(Agents::Table, Agents::OrgId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // One entry per phone and organisation: a sign-in names one agent.
        manager
            .create_index(
                Index::create()
                    .name("idx_agents_org_phone")
                    .table(Agents::Table)
                    .col(Agents::OrgId)
                    .col(Agents::Phone)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AgentPatientHomes::Table)
                    .col(pk_uuid(AgentPatientHomes::PatientId))
                    .col(text_null(AgentPatientHomes::Phone))
                    .col(text(AgentPatientHomes::AddressText))
                    .col(text_null(AgentPatientHomes::AddressDetail))
                    .col(double(AgentPatientHomes::Lat))
                    .col(double(AgentPatientHomes::Lng))
                    .col(text_null(AgentPatientHomes::Notes))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agent_patient_homes_patient")
                            .from(AgentPatientHomes::Table, AgentPatientHomes::PatientId)
                            .to(ResidentPatients::Table, ResidentPatients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AgentPatientHomes::Table.into_iden(),
            Agents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ResidentPatients {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    OrgId,
    Name,
    Phone,
    Kind,
    Active,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AgentPatientHomes {
    Table,
    PatientId,
    Phone,
    AddressText,
    AddressDetail,
    Lat,
    Lng,
    Notes,
}
