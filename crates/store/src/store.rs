//! The [`Store`] handle: connecting, migrating, transactions.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use yixin_migration::{Migrator, MigratorTrait};

use crate::error::StoreError;

/// How long a SQLite writer waits for the write lock before `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// Key of the PostgreSQL advisory lock that serialises `migrate` across instances.
const MIGRATE_LOCK_KEY: i64 = 0x7969_7869_6e00_0001;

/// The system of record: every read and write of orders, offers, nurses,
/// areas, the catalogue, the outbox and the location trail goes through it.
///
/// Cheap to clone (it wraps a connection pool); share one per process.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: DatabaseConnection,
}

impl Store {
    /// Connects to `postgres://…` or `sqlite://path?mode=rwc` / `sqlite::memory:`.
    ///
    /// SQLite gets WAL, foreign keys and a busy timeout; an in-memory database
    /// lives in one connection that is never recycled (a second connection
    /// would see another, empty database), whatever `max_connections` says.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .sqlx_logging(false);

        if url.starts_with("sqlite:") {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            if in_memory {
                opts.max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
            opts.map_sqlx_sqlite_opts(move |o| {
                let o = o.foreign_keys(true).busy_timeout(SQLITE_BUSY_TIMEOUT);
                if in_memory {
                    o
                } else {
                    o.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                }
            });
        }

        let db = Database::connect(opts).await?;
        Ok(Store { db })
    }

    /// Wraps an existing connection (e.g. one a test set up).
    pub fn from_connection(db: DatabaseConnection) -> Store {
        Store { db }
    }

    /// Runs pending migrations, then upserts `Catalog::seed()`.
    ///
    /// Idempotent. On PostgreSQL both happen in one transaction under an
    /// advisory lock, so instances starting together do not race.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if self.backend() == DatabaseBackend::Postgres {
            let txn = self.db.begin().await?;
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATE_LOCK_KEY})"))
                .await?;
            Migrator::up(&txn, None).await?;
            crate::catalog::seed(&txn).await?;
            txn.commit().await?;
        } else {
            Migrator::up(&self.db, None).await?;
            let txn = self.begin_write().await?;
            crate::catalog::seed(&txn).await?;
            txn.commit().await?;
        }
        Ok(())
    }

    /// Checks the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.db.ping().await?)
    }

    /// The underlying sea-orm connection, for what the store does not offer.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// PostgreSQL or SQLite.
    pub fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<(), StoreError> {
        Ok(self.db.close().await?)
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// `BEGIN` (IMMEDIATE), so two writers queue on the busy timeout instead
    /// of one failing with `SQLITE_BUSY` when upgrading a read lock.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction, StoreError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        Ok(self.db.begin_with_options(options).await?)
    }
}

/// Ends a write transaction with its body's result: commits on success (a
/// constraint the commit trips is mapped as `what`'s), rolls back on failure.
pub(crate) async fn finish<T>(
    txn: DatabaseTransaction,
    result: Result<T, StoreError>,
    what: &str,
) -> Result<T, StoreError> {
    match result {
        Ok(done) => {
            txn.commit()
                .await
                .map_err(|e| StoreError::from_constraint(e, what))?;
            Ok(done)
        }
        Err(e) => {
            rollback(txn).await;
            Err(e)
        }
    }
}

/// Rolls back, keeping the original error if the rollback fails too.
pub(crate) async fn rollback(txn: DatabaseTransaction) {
    if let Err(e) = txn.rollback().await {
        tracing::warn!(error = %e, "rollback failed");
    }
}
