//! The `perl_client_replay` suite (tests/suite/perl_client_replay.rs) with the engine on the PostgreSQL store (a database per server).

/// The store every server of this suite runs on.
const STORE: jobcenter_conformance::StoreKind = jobcenter_conformance::StoreKind::Postgres;

#[path = "suite/perl_client_replay.rs"]
mod suite;
