//! Compile-time checks and lowering of workflows to task graphs.
//!
//! - [`graph`]: the compiled data ([`Workflow`] task graphs, [`Action`]s);
//! - [`Catalog`]: the definitions store with versions, lookup and compile-time binding;
//!   [`Catalog::compile`] and [`Catalog::load_dir`] are the entry points.

mod catalog;
pub mod graph;
mod load;
mod lower;

pub use crate::syntax::CompileError;
pub use catalog::{Catalog, DefinitionRef, LoadReport, Stage, BASE_TYPES};
pub use graph::{
    Action, BranchRole, CallMode, CallTarget, CallTask, Compiled, DefId, LockValue, LockWait,
    NoOpRole, RetryPolicy, TargetKind, Task, TaskId, TaskKind, Workflow, DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_STEPS,
};
pub use lower::called_names;
