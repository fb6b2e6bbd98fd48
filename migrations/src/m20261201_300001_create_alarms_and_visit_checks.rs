//! Nurse safety and visit checks (issue 17):
//!
//! - `alarms`: a nurse's SOS and the automatic alarms (missed check-in,
//!   silent phone): where she was, the job, who acknowledged and resolved
//!   it (with a note), and its escalation to the organisation's webhook
//!   (claimed with a conditional update, so one instance sends it).
//! - `visit_checks`: one row per visit that reached `arrived` (or got an
//!   arrival override): the lone-worker timer (next check-in due, when the
//!   phone was asked, last check-in, which automatic alarms were raised) and
//!   the short-visit review flag with its clearing.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alarms::Table)
                    .col(pk_uuid(Alarms::Id))
                    .col(text(Alarms::OrgId))
                    .col(uuid(Alarms::NurseId))
                    .col(uuid_null(Alarms::OrderId))
                    // `sos` | `missed_check_in` | `silent_phone`
                    .col(text(Alarms::Kind))
                    .col(double_null(Alarms::Lat))
                    .col(double_null(Alarms::Lng))
                    .col(double_null(Alarms::AccuracyM))
                    .col(text_null(Alarms::Note))
                    .col(timestamp_with_time_zone(Alarms::RaisedAt))
                    .col(text_null(Alarms::AcknowledgedBy))
                    .col(timestamp_with_time_zone_null(Alarms::AcknowledgedAt))
                    .col(text_null(Alarms::ResolvedBy))
                    .col(timestamp_with_time_zone_null(Alarms::ResolvedAt))
                    .col(text_null(Alarms::ResolutionNote))
                    .col(timestamp_with_time_zone_null(Alarms::EscalationClaimedAt))
                    .col(timestamp_with_time_zone_null(Alarms::EscalatedAt))
                    // `delivered` | `failed` | `no_endpoint`
                    .col(text_null(Alarms::Escalation))
                    .col(integer(Alarms::EscalationAttempts).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_alarms_nurse_id")
                            .from(Alarms::Table, Alarms::NurseId)
                            .to(Nurses::Table, Nurses::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_alarms_org_raised")
                    .table(Alarms::Table)
                    .col(Alarms::OrgId)
                    .col(Alarms::RaisedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_alarms_unclaimed")
                    .table(Alarms::Table)
                    .col(Alarms::EscalationClaimedAt)
                    .col(Alarms::AcknowledgedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(VisitChecks::Table)
                    .col(pk_uuid(VisitChecks::OrderId))
                    .col(text(VisitChecks::OrgId))
                    .col(uuid(VisitChecks::NurseId))
                    .col(timestamp_with_time_zone_null(VisitChecks::ArrivedAt))
                    .col(timestamp_with_time_zone_null(VisitChecks::StartedAt))
                    .col(timestamp_with_time_zone_null(VisitChecks::CheckInDueAt))
                    .col(timestamp_with_time_zone_null(VisitChecks::CheckInAskedAt))
                    .col(timestamp_with_time_zone_null(VisitChecks::LastCheckInAt))
                    .col(timestamp_with_time_zone_null(VisitChecks::MissedAlarmAt))
                    .col(timestamp_with_time_zone_null(VisitChecks::SilentAlarmAt))
                    // Set when the visit ends (completed, cancelled): no more timers.
                    .col(timestamp_with_time_zone_null(VisitChecks::ClosedAt))
                    .col(text_null(VisitChecks::ArrivalOverrideBy))
                    .col(timestamp_with_time_zone_null(
                        VisitChecks::ArrivalOverrideAt,
                    ))
                    .col(text_null(VisitChecks::ArrivalOverrideNote))
                    .col(integer_null(VisitChecks::ArrivalDistanceM))
                    // `short_visit`, while flagged for review.
                    .col(text_null(VisitChecks::ReviewFlag))
                    .col(integer_null(VisitChecks::VisitMinutes))
                    .col(timestamp_with_time_zone_null(VisitChecks::FlaggedAt))
                    .col(text_null(VisitChecks::FlagClearedBy))
                    .col(timestamp_with_time_zone_null(VisitChecks::FlagClearedAt))
                    .col(text_null(VisitChecks::FlagNote))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_visit_checks_order_id")
                            .from(VisitChecks::Table, VisitChecks::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_visit_checks_open")
                    .table(VisitChecks::Table)
                    .col(VisitChecks::ClosedAt)
                    .col(VisitChecks::CheckInDueAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_visit_checks_org_flag")
                    .table(VisitChecks::Table)
                    .col(VisitChecks::OrgId)
                    .col(VisitChecks::ReviewFlag)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(VisitChecks::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Alarms::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Alarms {
    Table,
    Id,
    OrgId,
    NurseId,
    OrderId,
    Kind,
    Lat,
    Lng,
    AccuracyM,
    Note,
    RaisedAt,
    AcknowledgedBy,
    AcknowledgedAt,
    ResolvedBy,
    ResolvedAt,
    ResolutionNote,
    EscalationClaimedAt,
    EscalatedAt,
    Escalation,
    EscalationAttempts,
}

#[derive(DeriveIden)]
enum VisitChecks {
    Table,
    OrderId,
    OrgId,
    NurseId,
    ArrivedAt,
    StartedAt,
    CheckInDueAt,
    CheckInAskedAt,
    LastCheckInAt,
    MissedAlarmAt,
    SilentAlarmAt,
    ClosedAt,
    ArrivalOverrideBy,
    ArrivalOverrideAt,
    ArrivalOverrideNote,
    ArrivalDistanceM,
    ReviewFlag,
    VisitMinutes,
    FlaggedAt,
    FlagClearedBy,
    FlagClearedAt,
    FlagNote,
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
}
