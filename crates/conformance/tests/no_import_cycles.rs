//! The source files of each crate do not import each other in circles (issue 11 part 3).
//!
//! A file's module "uses" another when it names a path `crate::a::b`, `super::x` or
//! `self::y` (in a `use` line or inline) that resolves to that other file. Paths into a
//! module's own ancestors (`super::Thing` from a child, the usual way a child reaches what
//! its parent shares) are not counted; everything else is. `#[cfg(test)]` code at the end of
//! a file is left out. The test fails when the graph has a cycle and names its files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src` (`a/b.rs` and `a/b/mod.rs` → `[a, b]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// The file holding the longest prefix of `path` that is a module of its own.
fn file_of(src: &Path, path: &[String]) -> Option<PathBuf> {
    for k in (1..=path.len()).rev() {
        let base: PathBuf = path[..k].iter().collect();
        let flat = src.join(&base).with_extension("rs");
        if flat.is_file() {
            return Some(flat);
        }
        let nested = src.join(&base).join("mod.rs");
        if nested.is_file() {
            return Some(nested);
        }
    }
    ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .find(|p| p.is_file())
}

fn strip_comments_and_tests(text: &str) -> String {
    let body = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    body.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path starting with `crate`, `super` or `self` in `text`, with the members of a
/// `{...}` group after it, resolved against module `here`.
fn paths_in(text: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let at_word_start = i == 0 || !is_ident(chars[i - 1]);
        let rest: String = chars[i..chars.len().min(i + 7)].iter().collect();
        let head = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|h| at_word_start && rest.starts_with(h));
        let Some(head) = head else {
            i += 1;
            continue;
        };
        let mut base: Vec<String> = match head {
            "crate::" => Vec::new(),
            "super::" => here[..here.len().saturating_sub(1)].to_vec(),
            _ => here.to_vec(),
        };
        i += head.len();
        loop {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            if i == start {
                break;
            }
            let seg: String = chars[start..i].iter().collect();
            if seg == "super" {
                base.pop();
            } else {
                base.push(seg);
            }
            if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
                i += 2;
            } else {
                break;
            }
        }
        out.push(base.clone());
        if chars.get(i) == Some(&'{') {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '}')
                .map_or(chars.len(), |p| i + p);
            let group: String = chars[i + 1..end].iter().collect();
            for item in group.split(',') {
                let item = item.split(" as ").next().unwrap_or("").trim();
                if !item.is_empty() && item.chars().all(|c| is_ident(c) || c == ':') {
                    let mut p = base.clone();
                    p.extend(item.split("::").filter(|s| !s.is_empty()).map(String::from));
                    out.push(p);
                }
            }
            i = end;
        }
    }
    out
}

/// The files of one crate's `src` and whom each imports.
fn graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g = BTreeMap::new();
    for f in files {
        let here = module_of(src, &f);
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let mut to = BTreeSet::new();
        for p in paths_in(&strip_comments_and_tests(&text), &here) {
            let Some(t) = file_of(src, &p) else { continue };
            let target = module_of(src, &t);
            let ancestor = target.len() <= here.len() && here[..target.len()] == target[..];
            if t != f && !ancestor {
                to.insert(t);
            }
        }
        g.insert(f, to);
    }
    g
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(g: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct St<'a> {
        g: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(s: &mut St<'a>, v: &'a PathBuf) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        let g = s.g;
        for w in g.get(v).into_iter().flatten() {
            let Some((w, _)) = g.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = St {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn workspace_crates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn no_source_file_imports_another_in_a_circle() {
    let root = workspace_crates();
    let mut found = Vec::new();
    let mut crates = 0;
    for e in std::fs::read_dir(&root)
        .expect("crates directory")
        .flatten()
    {
        let src = e.path().join("src");
        if !src.is_dir() {
            continue;
        }
        crates += 1;
        for c in cycles(&graph(&src)) {
            let names: Vec<String> = c
                .iter()
                .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
                .collect();
            found.push(names.join(" <-> "));
        }
    }
    assert!(crates >= 8, "found only {crates} crates under {root:?}");
    let new: Vec<&String> = found
        .iter()
        .filter(|c| !KNOWN_CYCLES.contains(&c.as_str()))
        .collect();
    assert!(new.is_empty(), "import cycles:\n{new:#?}");
    let stale: Vec<&&str> = KNOWN_CYCLES
        .iter()
        .filter(|k| !found.iter().any(|c| c == *k))
        .collect();
    assert!(
        stale.is_empty(),
        "these known cycles are gone (or changed): remove them from KNOWN_CYCLES: {stale:#?}"
    );
}

/// Cycles that are still to be broken, exactly as the test reports them. The list may only
/// shrink: a cycle not on it fails the test, and so does an entry that no longer occurs.
const KNOWN_CYCLES: &[&str] = &[];

/// The checker itself finds a cycle between two sibling files, and ignores a child's
/// `super::` path to its parent.
#[test]
fn the_checker_sees_a_cycle_between_siblings_and_not_child_to_parent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub struct Shared;\n").unwrap();
    std::fs::write(
        src.join("a.rs"),
        "use crate::b::B;\nuse super::Shared;\npub struct A;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "pub struct B;\nfn f() { let _ = crate::a::A; }\n",
    )
    .unwrap();
    let c = cycles(&graph(src));
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0], vec![src.join("a.rs"), src.join("b.rs")]);

    std::fs::write(src.join("b.rs"), "pub struct B;\nuse super::{Shared};\n").unwrap();
    assert!(cycles(&graph(src)).is_empty());
}
