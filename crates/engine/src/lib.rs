//! JCL, the JobCenter workflow language: parse, compile to task graphs, evaluate, run jobs.
//!
//! Layers, in the order data flows through them:
//! - [`syntax`]: lexer, layout pass and parser producing the AST;
//! - [`compile`]: compile-time checks and lowering of a workflow to its task graph;
//! - [`eval`]: the Perl-compatible value model, the expression evaluator, maps and type checks;
//! - [`runtime`]: jobs walking their task graphs, action tasks for workers, child jobs;
//! - [`backend`]: the interface the API server uses (the stored procedures of the original),
//!   re-exported from the `jobcenter-backend` crate so the server need not depend on the engine.

pub use jobcenter_backend as backend;
pub mod compile;
pub mod eval;
pub mod runtime;
pub mod syntax;

/// JCL front end: `parse(file, src)` → AST; `Catalog::compile`/`load_dir` → task graphs.
pub use compile::{Catalog, CompileError, DefinitionRef, LoadReport, Stage};
/// The job runtime: the in-process [`Backend`](backend::Backend) implementation.
pub use runtime::{Engine, EngineConfig};
pub use syntax::parse;
