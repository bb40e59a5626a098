//! Throw-away PostgreSQL databases for tests: each one created with a random name and
//! dropped again when the handle goes away, so test runs never see each other's data.

use postgres::{Client, NoTls};

/// The server the tests use, unless `JOBCENTER_TEST_PG` names another (an admin URL whose
/// user may create databases).
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists as long as this value.
#[derive(Debug)]
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    // The `postgres` client runs a runtime of its own: keep it off tokio's threads.
    std::thread::spawn(f).join().ok()
}

impl TestDatabase {
    /// Create a fresh, empty database. Fails with a message saying how to provide
    /// PostgreSQL when the server cannot be reached (never skips silently).
    pub fn create() -> Result<TestDatabase, String> {
        let admin =
            std::env::var("JOBCENTER_TEST_PG").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string());
        let name = format!("jc_test_{}", uuid::Uuid::new_v4().simple());
        let (a, n) = (admin.clone(), name.clone());
        on_thread(move || -> Result<(), String> {
            let mut c = Client::connect(&a, NoTls).map_err(|e| {
                format!(
                    "PostgreSQL for the tests is not reachable at {a} ({e}): start it \
                     (.ci/run does) or set JOBCENTER_TEST_PG to an admin URL"
                )
            })?;
            c.batch_execute(&format!("CREATE DATABASE {n}"))
                .map_err(|e| format!("CREATE DATABASE {n}: {e}"))
        })
        .ok_or("the database thread panicked")??;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Ok(TestDatabase { admin, name, url })
    }

    /// The connection URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (a, n) = (self.admin.clone(), self.name.clone());
        on_thread(move || {
            if let Ok(mut c) = Client::connect(&a, NoTls) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"));
            }
        });
    }
}
