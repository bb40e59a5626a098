//! The `blocking_e2e` suite (tests/suite/blocking_e2e.rs) with the engine on the PostgreSQL store (a database per server).

/// The store every server of this suite runs on.
const STORE: jobcenter_conformance::StoreKind = jobcenter_conformance::StoreKind::Postgres;

#[path = "suite/blocking_e2e.rs"]
mod suite;
