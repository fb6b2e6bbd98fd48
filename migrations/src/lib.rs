//! Database schema of Yixin, as sea-orm migrations.
//!
//! One migration set runs on PostgreSQL (production) and SQLite (the embedded
//! default and tests). Tables are described with the sea-query schema builder
//! so each backend gets its own DDL; nothing here is dialect-specific SQL.
//!
//! Owns: table, index and constraint definitions, and their `down` steps.
//! Must not touch: data. The service catalogue is seeded by `yixin-store`
//! from `Catalog::seed()`, so the seed stays data, not a migration.
//! Never edit a migration that has landed; add a new one.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_organizations_and_catalog;
mod m20261123_000002_create_service_areas_and_nurses;
mod m20261123_000003_create_orders_and_events;
mod m20261123_000004_create_offers;
mod m20261123_000005_create_idempotency_keys_and_outbox;
mod m20261123_000006_create_nurse_locations;
mod m20261123_000007_index_unpublished_outbox;
mod m20261130_100001_create_residents_and_otp_codes;
mod m20261130_100002_create_household;
mod m20261130_200001_add_nurse_external_id;
mod m20261130_300001_create_credentials_and_audit;
mod m20261130_400001_clinical_intake_and_visit_records;
mod m20261201_300001_create_alarms_and_visit_checks;
mod m20261201_400001_create_shifts_and_bookings;
mod m20261201_500001_create_agents_and_agent_patients;
mod m20261202_100001_chained_jobs;
mod m20261202_400001_create_region_leases;
mod m20261202_500001_create_webhooks;

/// Every migration of the schema, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_organizations_and_catalog::Migration),
            Box::new(m20261123_000002_create_service_areas_and_nurses::Migration),
            Box::new(m20261123_000003_create_orders_and_events::Migration),
            Box::new(m20261123_000004_create_offers::Migration),
            Box::new(m20261123_000005_create_idempotency_keys_and_outbox::Migration),
            Box::new(m20261123_000006_create_nurse_locations::Migration),
            Box::new(m20261123_000007_index_unpublished_outbox::Migration),
            Box::new(m20261130_100001_create_residents_and_otp_codes::Migration),
            Box::new(m20261130_100002_create_household::Migration),
            Box::new(m20261130_200001_add_nurse_external_id::Migration),
            Box::new(m20261130_300001_create_credentials_and_audit::Migration),
            Box::new(m20261130_400001_clinical_intake_and_visit_records::Migration),
            Box::new(m20261201_300001_create_alarms_and_visit_checks::Migration),
            Box::new(m20261201_400001_create_shifts_and_bookings::Migration),
            Box::new(m20261201_500001_create_agents_and_agent_patients::Migration),
            Box::new(m20261202_100001_chained_jobs::Migration),
            Box::new(m20261202_400001_create_region_leases::Migration),
            Box::new(m20261202_500001_create_webhooks::Migration),
        ]
    }
}
