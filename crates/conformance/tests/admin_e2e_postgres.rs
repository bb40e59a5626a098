//! The `admin_e2e` suite (tests/suite/admin_e2e.rs) with the engine on the postgres store.

/// The store every server of this suite runs on.
const STORE: jobcenter_conformance::StoreKind = jobcenter_conformance::StoreKind::Postgres;

#[path = "suite/admin_e2e.rs"]
mod suite;
