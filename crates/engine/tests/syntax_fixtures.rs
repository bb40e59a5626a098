//! Every JCL source of JCL.md Part 4 (the fixtures folder) parses and compiles as its stage allows.

use jobcenter_engine::compile::{Catalog, Stage};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jcl")
}

#[test]
fn all_fixtures_compile_at_stage_c() {
    let mut cat = Catalog::with_stage(Stage::C);
    cat.register_locktype("slot");
    cat.register_locktype("abc");
    let report = cat.load_dir(fixtures());
    for e in &report.errors {
        eprintln!("{e}");
    }
    assert!(report.is_ok(), "{} errors", report.errors.len());
    assert_eq!(report.loaded.len(), 54);
}
