//! JCL front end: lexer → layout → parser → compiler on arbitrary text.
//!
//! The catalog is preloaded with the example definitions (examples/jcl) and the engine's
//! conformance fixtures, so calls in the fuzzed source can resolve and the compiler's later
//! stages (binding, lowering, graph building) are reached. Invariants: no panic, no hang,
//! no unbounded memory; errors carry a file name; a definition that compiles is found in
//! the catalog under its name.
#![no_main]

use jobcenter_engine::{Catalog, Stage};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn base_catalog() -> &'static Catalog {
    static CAT: OnceLock<Catalog> = OnceLock::new();
    CAT.get_or_init(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut cat = Catalog::with_stage(Stage::C);
        cat.register_locktype("slot");
        cat.register_locktype("abc");
        cat.register_vtag("stable");
        let _ = cat.load_paths(&[
            format!("{root}/examples/jcl").into(),
            format!("{root}/crates/engine/tests/fixtures/jcl").into(),
        ]);
        cat
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    // The parser alone (what `jobcenter jcl check` runs first).
    let parsed = jobcenter_engine::parse("fuzz.wf", src);
    let mut cat = base_catalog().clone();
    match cat.compile("fuzz.wf", src) {
        Ok(r) => {
            assert!(parsed.is_ok(), "compiled but did not parse");
            assert!(cat.versions(&r.name).contains(&r.id));
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "failure without an error");
            for e in &errors {
                assert_eq!(e.file, "fuzz.wf");
            }
        }
    }
});
