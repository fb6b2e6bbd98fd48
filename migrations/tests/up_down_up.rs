//! CI rule: every migration goes up, comes back down and goes up again, on
//! both backends.

// In a `cfg(test)` module so the workspace's test allowances (unwrap) apply.
#[cfg(test)]
mod up_down_up {
    use sea_orm_migration::sea_orm::{
        ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    };
    use yixin_migration::{Migrator, MigratorTrait};

    const TABLES: [&str; 28] = [
        "organizations",
        "service_categories",
        "services",
        "service_areas",
        "nurses",
        "orders",
        "order_events",
        "offers",
        "idempotency_keys",
        "outbox",
        "nurse_locations",
        "residents",
        "otp_codes",
        "resident_addresses",
        "resident_patients",
        "order_patients",
        "nurse_credentials",
        "audit_log",
        "visit_records",
        "alarms",
        "visit_checks",
        "nurse_shifts",
        "bookings",
        "agents",
        "agent_patient_homes",
        "region_leases",
        "webhook_endpoints",
        "webhook_deliveries",
    ];

    async fn table_names(db: &DatabaseConnection) -> Vec<String> {
        let sql = match db.get_database_backend() {
            DbBackend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' \
                                  AND name NOT LIKE 'sqlite_%' ORDER BY name"
                .to_owned(),
            _ => "SELECT table_name AS name FROM information_schema.tables \
                  WHERE table_schema = 'public' ORDER BY table_name"
                .to_owned(),
        };
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get::<String>("", "name").unwrap())
            .collect()
    }

    async fn up_down_up(db: &DatabaseConnection) {
        Migrator::up(db, None).await.unwrap();
        let tables = table_names(db).await;
        for t in TABLES {
            assert!(
                tables.iter().any(|n| n == t),
                "missing table {t}: {tables:?}"
            );
        }
        // Every migration applied, none pending.
        assert!(
            Migrator::get_pending_migrations(db)
                .await
                .unwrap()
                .is_empty()
        );
        // Running again is a no-op.
        Migrator::up(db, None).await.unwrap();

        Migrator::down(db, None).await.unwrap();
        let tables = table_names(db).await;
        assert_eq!(
            tables,
            vec!["seaql_migrations".to_owned()],
            "down left tables behind"
        );

        Migrator::up(db, None).await.unwrap();
        assert_eq!(table_names(db).await.len(), TABLES.len() + 1);

        // One step down and up again exercises each `down` on its own.
        let n = u32::try_from(Migrator::migrations().len()).unwrap();
        for _ in 0..n {
            Migrator::down(db, Some(1)).await.unwrap();
        }
        for _ in 0..n {
            Migrator::up(db, Some(1)).await.unwrap();
        }
        assert_eq!(table_names(db).await.len(), TABLES.len() + 1);
    }

    #[tokio::test]
    async fn up_down_up_sqlite() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        up_down_up(&db).await;
    }

    #[tokio::test]
    async fn up_down_up_postgres() {
        let server = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let admin = Database::connect(&server).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for this test and is not reachable at {server} \
                 (set TEST_DATABASE_URL): {e}"
            )
        });
        let name = format!("yixin_m_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();

        let url = match server.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("TEST_DATABASE_URL has no database path: {server}"),
        };
        let db = Database::connect(&url).await.unwrap();
        up_down_up(&db).await;
        db.close().await.unwrap();

        admin
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
}
