//! `jobcenter check`: compile JCL sources and report every error as `file:line: message`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jobcenter_engine::compile::called_names;

use crate::args::CheckArgs;
use crate::cmd::Failure;

/// Compile the files and folders as one set, with the same stage and lock types as `serve`
/// (and its defaults); a file brings along the definitions it calls from its own folder.
/// Print every error; exit 1 if there was any.
pub fn run(a: CheckArgs) -> Result<u8, Failure> {
    let mut catalog = crate::cmd::serve::catalog(&a.jcl);
    let paths = with_dependencies(&a.files);
    for p in paths.iter().skip(a.files.len()) {
        eprintln!("with: {} (called from a file given)", p.display());
    }
    let report = catalog.load_paths(&paths);
    for e in &report.errors {
        crate::cmd::emit(e);
    }
    for d in &report.loaded {
        eprintln!("ok: {:?} {} (version {})", d.kind, d.name, d.version);
    }
    if report.is_ok() {
        Ok(0)
    } else {
        eprintln!("{} error(s)", report.errors.len());
        Ok(1)
    }
}

/// The paths given, then the files they call (directly or not) that lie beside them:
/// `NAME.wf` or `NAME.ac` in the caller's folder for each called NAME. Folders are taken
/// whole already; files that cannot be read or parsed are left to the compile to report.
pub fn with_dependencies(given: &[PathBuf]) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = given.to_vec();
    let mut seen: BTreeSet<PathBuf> = given.iter().map(|p| canonical(p)).collect();
    let mut i = 0;
    while i < all.len() {
        let path = all[i].clone();
        i += 1;
        if path.is_dir() {
            continue;
        }
        let Ok(src) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(def) = jobcenter_engine::parse(&path.display().to_string(), &src) else {
            continue;
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        for name in called_names(&def) {
            for ext in ["wf", "ac"] {
                let dep = dir.join(format!("{name}.{ext}"));
                if dep.is_file() && seen.insert(canonical(&dep)) {
                    all.push(dep);
                }
            }
        }
    }
    all
}

/// The path without `.`/`..`/links where possible, to notice a file given twice.
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
