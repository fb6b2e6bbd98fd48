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

/// How long the store waits for the database, so a request never hangs on
/// it: past these bounds an operation fails with [`StoreError::Unavailable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Connections in the pool.
    pub max_connections: u32,
    /// Longest wait for a pooled connection (including opening one).
    pub acquire_timeout: Duration,
    /// Longest wait to open a connection.
    pub connect_timeout: Duration,
    /// PostgreSQL's `statement_timeout` on every connection (zero: none).
    /// Migrations lift it for their own transaction.
    pub statement_timeout: Duration,
}

impl PoolOptions {
    /// `max_connections` connections with patient bounds for tools and
    /// tests (30 s for a connection, no statement timeout). Services take
    /// theirs from configuration (`database.acquire_timeout_ms`, …), which
    /// defaults to 1.5 s and 5 s.
    pub fn new(max_connections: u32) -> Self {
        Self {
            max_connections,
            acquire_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            statement_timeout: Duration::ZERO,
        }
    }
}

impl Store {
    /// Connects to `postgres://…` or `sqlite://path?mode=rwc` / `sqlite::memory:`
    /// with the patient bounds of [`PoolOptions::new`].
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        Self::connect_with(url, PoolOptions::new(max_connections)).await
    }

    /// Connects with explicit pool bounds.
    ///
    /// SQLite gets WAL, foreign keys and a busy timeout; an in-memory database
    /// lives in one connection that is never recycled (a second connection
    /// would see another, empty database), whatever `max_connections` says.
    pub async fn connect_with(url: &str, pool: PoolOptions) -> Result<Store, StoreError> {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(pool.max_connections.max(1))
            .acquire_timeout(pool.acquire_timeout)
            .connect_timeout(pool.connect_timeout)
            .sqlx_logging(false);
        if url.starts_with("postgres") && !pool.statement_timeout.is_zero() {
            let ms = pool.statement_timeout.as_millis().to_string();
            // Sent in the startup packet: no extra round trip per connection.
            opts.map_sqlx_postgres_opts(move |o| o.options([("statement_timeout", ms.clone())]));
        }

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
            // A migration may rewrite a large table: no statement timeout here.
            txn.execute_unprepared("SET LOCAL statement_timeout = 0")
                .await?;
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
