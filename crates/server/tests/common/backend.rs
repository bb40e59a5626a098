//! The server tests' scripted backend: the shared [`StubBackend`] (crate `jobcenter-backend`,
//! feature `stub`) with the workflows these tests use.
//!
//! Workflows: `calladd` → action `add` (required input `counter`, a number; output
//! `counter`), `<x>` → action `<x>` for every other action defined with
//! [`StubBackend::action`], `forever` → action `nobody` (nobody announces it), `instant` →
//! finishes at once with `{"done":true}`. Lock `slot` has the value `sleutel`.

use std::sync::Arc;

pub use jobcenter_backend::stub::{ActionDef, StubBackend, Workflow};
use serde_json::json;

/// A fresh backend with the workflows, actions and lock above.
pub fn mini_backend() -> Arc<StubBackend> {
    let b = StubBackend::new();
    b.action("add", ActionDef::default());
    b.action("nobody", ActionDef::default());
    b.workflow(
        "calladd",
        Workflow::task("add")
            .input("counter", "number")
            .output("counter"),
    );
    b.workflow("forever", Workflow::task("nobody"));
    b.workflow("instant", Workflow::instant(json!({"done": true})));
    b.lock("slot", "sleutel");
    Arc::new(b)
}
