//! `--store` values: which backend, and where (`memory`, `sqlite:PATH`, `postgres://...`).

use std::path::PathBuf;

use crate::SyncMode;

/// A parsed store specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// In memory: nothing survives a restart.
    Memory,
    /// A SQLite file (`sqlite:PATH`, optionally `?sync=full|normal|off`).
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// How commits are synced.
        sync: SyncMode,
    },
    /// A PostgreSQL connection URL (`postgres://user@host:port/db`).
    Postgres(String),
}

/// The default store of `jobcenter serve`.
pub const DEFAULT_STORE: &str = "sqlite:./jobcenter.db";

impl std::fmt::Display for StoreSpec {
    /// The `--store` spelling (parses back to the same spec).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Memory => f.write_str("memory"),
            StoreSpec::Sqlite { path, sync } => {
                write!(f, "sqlite:{}", path.display())?;
                match sync {
                    SyncMode::Full => Ok(()),
                    SyncMode::Normal => f.write_str("?sync=normal"),
                    SyncMode::Off => f.write_str("?sync=off"),
                }
            }
            StoreSpec::Postgres(url) => f.write_str(url),
        }
    }
}

impl std::str::FromStr for StoreSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "memory" {
            return Ok(StoreSpec::Memory);
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(StoreSpec::Postgres(s.to_string()));
        }
        if let Some(rest) = s.strip_prefix("sqlite:") {
            let (path, query) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err("sqlite: needs a file name, e.g. sqlite:./jobcenter.db".into());
            }
            let mut sync = SyncMode::Full;
            if let Some(q) = query {
                for kv in q.split('&') {
                    match kv.split_once('=') {
                        Some(("sync", v)) => sync = v.parse()?,
                        _ => return Err(format!("unknown sqlite option {kv:?} (known: sync)")),
                    }
                }
            }
            return Ok(StoreSpec::Sqlite {
                path: PathBuf::from(path),
                sync,
            });
        }
        Err(format!(
            "unknown store {s:?}: expected memory, sqlite:PATH or postgres://user@host:port/db"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_refuses_the_rest() {
        assert_eq!("memory".parse(), Ok(StoreSpec::Memory));
        assert_eq!(
            DEFAULT_STORE.parse(),
            Ok(StoreSpec::Sqlite {
                path: "./jobcenter.db".into(),
                sync: SyncMode::Full
            })
        );
        assert_eq!(
            "sqlite:/x/y.db?sync=normal".parse(),
            Ok(StoreSpec::Sqlite {
                path: "/x/y.db".into(),
                sync: SyncMode::Normal
            })
        );
        assert_eq!(
            "postgres://u@h:5432/db".parse(),
            Ok(StoreSpec::Postgres("postgres://u@h:5432/db".into()))
        );
        for spec in ["memory", "sqlite:/a b/c.db?sync=off", "postgres://x@y/z"] {
            let parsed: StoreSpec = spec.parse().expect("parses");
            assert_eq!(parsed.to_string(), spec);
        }
        for bad in [
            "",
            "sqlite:",
            "sqlite:a?sync=maybe",
            "sqlite:a?x=1",
            "mysql://x",
        ] {
            assert!(bad.parse::<StoreSpec>().is_err(), "{bad}");
        }
    }
}
