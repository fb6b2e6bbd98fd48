//! The few errors a caller of the store can act on.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the operation needs does not exist.
    #[error("not found")]
    NotFound,

    /// A constraint refused the write: a duplicate id, a second open offer
    /// for an order or a nurse, a nurse already busy, an unknown reference.
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

    /// Anything else from the database: connection, syntax, timeouts.
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

impl StoreError {
    /// A conflict built from a constraint violation, or the error itself.
    pub(crate) fn from_constraint(err: sea_orm::DbErr, what: &str) -> StoreError {
        match err.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(m)) => {
                StoreError::Conflict(format!("{what}: {m}"))
            }
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(m)) => {
                StoreError::Conflict(format!("{what}: unknown reference: {m}"))
            }
            _ => StoreError::Database(err),
        }
    }
}

/// Whether `err` is a unique or primary key violation.
pub(crate) fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
