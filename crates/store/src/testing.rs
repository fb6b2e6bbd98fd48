//! Fresh, migrated databases for tests (feature `testing`).
//!
//! PostgreSQL tests need a server at `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets its own
//! database, dropped afterwards. An unreachable server fails the test, it
//! never skips it.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};

use crate::store::Store;

/// The server tests create their databases on.
pub fn test_server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A short-lived admin connection to the server (fails fast when it is down).
async fn admin(server_url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(server_url.to_owned());
    opts.max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    Database::connect(opts).await
}

/// `url` with its database name replaced by `name` (query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// A database created for one test; dropped (`WITH (FORCE)`) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    server_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// The database's name, `yixin_t_<uuid>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL connecting to it, e.g. for a second `Store` (another "instance").
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // Drop cannot await, and may run inside a runtime: use a thread with its own.
        let dropper = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("test database {name} not dropped: no runtime: {e}");
                    return;
                }
            };
            rt.block_on(async {
                match admin(&server_url).await {
                    Ok(admin) => {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        if let Err(e) = admin.execute_unprepared(&sql).await {
                            eprintln!("test database {name} not dropped: {e}");
                        }
                        let _ = admin.close().await;
                    }
                    Err(e) => eprintln!("test database {name} not dropped: {e}"),
                }
            });
        });
        let _ = dropper.join();
    }
}

/// A new, uniquely named PostgreSQL database, migrated and seeded.
///
/// # Panics
/// If the server is unreachable or the database cannot be set up: the test
/// fails with a message saying so.
pub async fn fresh_postgres() -> (Store, TestDatabase) {
    let server_url = test_server_url();
    let admin = match admin(&server_url).await {
        Ok(db) => db,
        Err(e) => panic!(
            "PostgreSQL is required for this test but is not reachable at {server_url} \
             (set TEST_DATABASE_URL, or start the server): {e}"
        ),
    };
    let name = format!("yixin_t_{}", uuid::Uuid::new_v4().simple());
    if let Err(e) = admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
    {
        panic!("cannot create test database {name} on {server_url}: {e}");
    }
    let _ = admin.close().await;

    let url = with_database(&server_url, &name);
    let guard = TestDatabase {
        server_url,
        name,
        url: url.clone(),
    };
    let store = match Store::connect(&url, 10).await {
        Ok(s) => s,
        Err(e) => panic!("cannot connect to test database {url}: {e}"),
    };
    if let Err(e) = store.migrate().await {
        panic!("cannot migrate test database {url}: {e}");
    }
    (store, guard)
}

/// A new in-memory SQLite database (one connection), migrated and seeded.
///
/// # Panics
/// If it cannot be set up.
pub async fn fresh_sqlite() -> Store {
    let store = match Store::connect("sqlite::memory:", 1).await {
        Ok(s) => s,
        Err(e) => panic!("cannot open in-memory SQLite: {e}"),
    };
    if let Err(e) = store.migrate().await {
        panic!("cannot migrate in-memory SQLite: {e}");
    }
    store
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
