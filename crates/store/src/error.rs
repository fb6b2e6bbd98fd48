//! The few errors a caller of the store can act on, and the one place
//! database errors are classified (a constraint, a backend that is not
//! answering, anything else).

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the operation needs does not exist.
    #[error("not found")]
    NotFound,

    /// A constraint refused the write: a duplicate id, a second open offer
    /// for an order or a nurse, a nurse already busy, an unknown reference.
    /// The message is the store's own words, the same on PostgreSQL and
    /// SQLite; never the database's constraint text.
    #[error("conflict: {0}")]
    Conflict(String),

    /// The idempotency key was used before with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyConflict,

    /// A conditional update found the row in another state (another instance
    /// got there first); `current` is the status it found.
    #[error("stale state: the row is now {current}")]
    StaleState { current: String },

    /// A row that fails domain validation (written behind the store's back,
    /// or by an older version with other rules).
    #[error("corrupt row: {0}")]
    Corrupt(String),

    /// The database did not answer in time or cannot be reached (no pool
    /// connection within `database.acquire_timeout_ms`, a statement past
    /// `database.statement_timeout_ms`, a dropped connection, a locked
    /// SQLite file). Retrying later may succeed: HTTP answers 503.
    #[error("database unavailable")]
    Unavailable(#[source] sea_orm::DbErr),

    /// Anything else from the database: syntax, types, bugs.
    #[error(transparent)]
    Database(sea_orm::DbErr),
}

impl From<sea_orm::DbErr> for StoreError {
    fn from(err: sea_orm::DbErr) -> Self {
        if is_unavailable(&err) {
            StoreError::Unavailable(err)
        } else {
            StoreError::Database(err)
        }
    }
}

impl StoreError {
    /// A conflict built from a constraint violation, or the error itself.
    ///
    /// The message has only stable words: which kind of thing (`what`) and
    /// which key (`… already exists (external_id taken)`); the database's own text (which differs between PostgreSQL
    /// and SQLite and names internal constraints) stays out.
    pub(crate) fn from_constraint(err: sea_orm::DbErr, what: &str) -> StoreError {
        match err.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(m)) => {
                StoreError::Conflict(format!("{what} already exists ({} taken)", unique_key(&m)))
            }
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => {
                StoreError::Conflict(format!("{what} refers to something that does not exist"))
            }
            _ => StoreError::from(err),
        }
    }

    /// Whether the backend was unavailable (as opposed to refusing the request).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// The unique keys a client may trip, found by a column name both
/// databases put in their message (PostgreSQL names the constraint, SQLite
/// the columns); anything else is the row's identity.
fn unique_key(message: &str) -> &'static str {
    const KEYS: [&str; 3] = ["external_id", "phone", "idempotency"];
    KEYS.into_iter()
        .find(|k| message.contains(k))
        .unwrap_or("id")
}

/// Whether `err` is a unique or primary key violation.
pub(crate) fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Whether `err` says the database is not answering rather than refusing:
/// pool timeouts, dropped or refused connections, statement timeouts,
/// a server shutting down, a locked SQLite file.
fn is_unavailable(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx::Error as Sqlx};
    let runtime = match err {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(r) | DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return matches!(err, DbErr::Conn(_));
    };
    match sqlx.as_ref() {
        Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
        Sqlx::Tls(_) | Sqlx::Protocol(_) => true,
        Sqlx::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // PostgreSQL: 57014 statement timeout / cancelled, 57P01-57P05
            // shutdown and idle timeouts, 08xxx connection exceptions, 53300
            // too many connections. SQLite: 5 busy, 6 locked.
            code == "57014"
                || code.starts_with("57P")
                || code.starts_with("08")
                || code == "53300"
                || code == "5"
                || code == "6"
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_keys_are_named_alike_on_both_backends() {
        let pg = r#"duplicate key value violates unique constraint "idx_nurses_org_external_id""#;
        let lite = "UNIQUE constraint failed: nurses.org_id, nurses.external_id";
        assert_eq!(unique_key(pg), "external_id");
        assert_eq!(unique_key(lite), "external_id");
        assert_eq!(unique_key("UNIQUE constraint failed: nurses.id"), "id");
    }

    #[test]
    fn pool_timeouts_are_unavailable() {
        let e = StoreError::from(sea_orm::DbErr::ConnectionAcquire(
            sea_orm::ConnAcquireErr::Timeout,
        ));
        assert!(e.is_unavailable());
        let e = StoreError::from(sea_orm::DbErr::Custom("x".into()));
        assert!(!e.is_unavailable());
    }
}
