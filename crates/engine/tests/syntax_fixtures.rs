//! Every JCL source of docs/JCL.md Part 4 (tests/fixtures/jcl) parses, and compiles exactly as far
//! as the catalog's stage allows: Stage A sources compile, Stage B/C sources are rejected with
//! `statement X not supported yet` / `section X not supported yet` (Part 3).

use jobcenter_engine::compile::{Catalog, Compiled, LoadReport, Stage, TargetKind};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jcl")
}

fn catalog(stage: Stage) -> Catalog {
    let mut cat = Catalog::with_stage(stage);
    cat.register_locktype("slot");
    cat.register_locktype("abc");
    cat
}

fn loaded_names(r: &LoadReport) -> BTreeSet<String> {
    r.loaded.iter().map(|d| d.name.clone()).collect()
}

/// Files whose definitions need Stage B (without the Stage C ones).
const STAGE_B: [&str; 10] = [
    "k12", "k13", "k29", "k35", "k36", "k37", "k45", "k46", "k46child", "k47",
];
/// Files whose definitions need Stage C.
const STAGE_C: [&str; 4] = ["k24", "k28", "k30", "k41"];

fn all_fixture_names() -> BTreeSet<String> {
    std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let ext = p.extension()?.to_str()?;
            if ext == "wf" || ext == "ac" {
                Some(p.file_stem()?.to_str()?.to_string())
            } else {
                None
            }
        })
        .collect()
}

fn errors_of<'a>(r: &'a LoadReport, name: &str) -> Vec<&'a str> {
    let suffix_wf = format!("/{name}.wf");
    let suffix_ac = format!("/{name}.ac");
    r.errors
        .iter()
        .filter(|e| e.file.ends_with(&suffix_wf) || e.file.ends_with(&suffix_ac))
        .map(|e| e.message.as_str())
        .collect()
}

#[test]
fn every_fixture_parses() {
    let names = all_fixture_names();
    assert_eq!(names.len(), 54, "{names:?}");
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let p = entry.unwrap().path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if p.is_dir() || (ext != "wf" && ext != "ac") {
            continue;
        }
        let src = std::fs::read_to_string(&p).unwrap();
        let file = p.display().to_string();
        let def = jobcenter_engine::parse(&file, &src).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(p
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(def.name()));
    }
}

#[test]
fn all_fixtures_compile_at_stage_c() {
    let mut cat = catalog(Stage::C);
    let report = cat.load_dir(fixtures());
    let shown: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert!(report.is_ok(), "{shown:#?}");
    assert_eq!(loaded_names(&report), all_fixture_names());
    // Actions are loaded first.
    let first_wf = report
        .loaded
        .iter()
        .position(|d| d.kind == TargetKind::Workflow)
        .unwrap();
    assert!(report.loaded[..first_wf]
        .iter()
        .all(|d| d.kind == TargetKind::Action));
    assert_eq!(first_wf, 5);
}

#[test]
fn stage_a_compiles_c01_to_c30_and_rejects_later_statements() {
    let mut cat = catalog(Stage::A);
    let report = cat.load_dir(fixtures());
    let expected: BTreeSet<String> = all_fixture_names()
        .into_iter()
        .filter(|n| !STAGE_B.contains(&n.as_str()) && !STAGE_C.contains(&n.as_str()))
        .collect();
    assert_eq!(loaded_names(&report), expected);
    for n in STAGE_B.iter().chain(STAGE_C.iter()) {
        assert!(!errors_of(&report, n).is_empty(), "{n} must be rejected");
    }
    assert_eq!(
        errors_of(&report, "k12"),
        vec!["statement split not supported yet"]
    );
    assert_eq!(
        errors_of(&report, "k29"),
        vec!["statement sleep not supported yet"]
    );
    assert_eq!(
        errors_of(&report, "k35"),
        vec![
            "section locks not supported yet",
            "statement sleep not supported yet"
        ]
    );
    assert_eq!(
        errors_of(&report, "k36"),
        vec![
            "section locks not supported yet",
            "statement lock not supported yet",
            "statement lock not supported yet",
            "statement unlock not supported yet",
            "statement unlock not supported yet",
        ]
    );
    assert_eq!(
        errors_of(&report, "k37"),
        vec![
            "section locks not supported yet",
            "statement wait_for_lock not supported yet"
        ]
    );
    assert_eq!(
        errors_of(&report, "k24"),
        vec![
            "statement goto not supported yet",
            "statement label not supported yet",
            "statement label not supported yet",
            "statement goto not supported yet",
        ]
    );
    assert_eq!(
        errors_of(&report, "k28"),
        vec![
            "statement subscribe not supported yet",
            "statement raise_event not supported yet",
            "statement wait_for_event not supported yet",
            "statement wait_for_event not supported yet",
            "statement unsubscribe not supported yet",
        ]
    );
    assert_eq!(
        errors_of(&report, "k41"),
        vec!["statement map not supported yet"]
    );
    // k46 calls k46child, which was rejected: the call cannot be bound either.
    assert!(errors_of(&report, "k46").contains(&"action k46child not found?"));
}

#[test]
fn stage_b_rejects_only_stage_c() {
    let mut cat = catalog(Stage::B);
    let report = cat.load_dir(fixtures());
    let expected: BTreeSet<String> = all_fixture_names()
        .into_iter()
        .filter(|n| !STAGE_C.contains(&n.as_str()))
        .collect();
    assert_eq!(loaded_names(&report), expected);
    assert_eq!(
        errors_of(&report, "k30"),
        vec![
            "statement subscribe not supported yet",
            "statement wait_for_event not supported yet"
        ]
    );
}

#[test]
fn errors_display_as_file_line_message() {
    let mut cat = catalog(Stage::A);
    let report = cat.load_dir(fixtures());
    let e = report
        .errors
        .iter()
        .find(|e| e.file.ends_with("/k12.wf"))
        .unwrap();
    assert_eq!(e.line, 9);
    assert_eq!(
        e.to_string(),
        format!("{}:9: statement split not supported yet", e.file)
    );
}

#[test]
fn unregistered_lock_types_are_rejected() {
    let mut cat = Catalog::with_stage(Stage::C);
    let report = cat.load_dir(fixtures());
    assert_eq!(errors_of(&report, "k35"), vec!["no locktype slot?"]);
    assert_eq!(errors_of(&report, "k46child"), vec!["no locktype abc?"]);
}

#[test]
fn c42_versions_and_tags_select_like_the_original() {
    let mut cat = Catalog::new();
    cat.register_vtag("stable");
    cat.register_vtag("unittest");
    let dir = fixtures().join("c42");
    let files = [
        ("k38_v0_stable.wf", Some("stable")),
        ("k38_v1_untagged.wf", None),
        ("k38_v2_unittest.wf", Some("unittest")),
        ("k38_v3_untagged.wf", None),
    ];
    for (i, (f, tag)) in files.iter().enumerate() {
        let src = std::fs::read_to_string(dir.join(f)).unwrap();
        let tags: Vec<String> = tag.iter().map(|t| t.to_string()).collect();
        let r = cat.compile_tagged(f, &src, &tags).unwrap();
        assert_eq!(r.version, i as u32);
    }
    let pick = |vtag: Option<&str>| cat.lookup_workflow("k38", vtag).unwrap().version;
    assert_eq!(pick(None), 3);
    assert_eq!(pick(Some("stable")), 0);
    assert_eq!(pick(Some("unittest")), 2);
    assert_eq!(pick(Some("stable:unittest")), 0);
    assert_eq!(pick(Some("unittest:stable")), 2);
    assert_eq!(pick(Some("nonexistent")), 3);
    assert_eq!(pick(Some("default")), 3);
    assert!(cat.lookup_workflow("nope", None).is_none());
    // Unregistered tags are refused.
    let src = std::fs::read_to_string(dir.join("k38_v0_stable.wf")).unwrap();
    let err = cat
        .compile_tagged("k38.wf", &src, &["bogus".to_string()])
        .unwrap_err();
    assert_eq!(err[0].message, "unknown version tag bogus");
}

#[test]
fn variant_with_string_timeout_still_compiles() {
    // The type error of the C40 variant is a run-time input check, not a compile error.
    let mut cat = Catalog::with_stage(Stage::C);
    let src = std::fs::read_to_string(fixtures().join("variants/k28_string_timeout.wf")).unwrap();
    let r = cat.compile("k28_string_timeout.wf", &src).unwrap();
    assert!(matches!(cat.get(r.id), Some(Compiled::Workflow(_))));
}

#[test]
fn load_paths_mixes_files_and_directories_in_dependency_order() {
    // k10 calls k10child: given first, it still compiles after its callee; the directory
    // of c42 contributes four versions of k38.
    let dir = fixtures();
    let mut cat = Catalog::new();
    let report = cat.load_paths(&[
        dir.join("k10.wf"),
        dir.join("k10child.wf"),
        dir.join("c_add.ac"),
        dir.join("k01.wf"),
        dir.join("c42"),
    ]);
    assert!(report.is_ok(), "{:?}", report.errors);
    let order: Vec<&str> = report.loaded.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(order[0], "c_add");
    let pos = |n: &str| order.iter().position(|x| *x == n).unwrap();
    assert!(pos("k10child") < pos("k10"));
    assert_eq!(cat.versions("k38").len(), 4);
    let missing = cat.load_paths(&[dir.join("nope")]);
    assert_eq!(missing.errors.len(), 1);
}
