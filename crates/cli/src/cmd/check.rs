//! `jobcenter check`: compile JCL sources and report every error as `file:line: message`.

use jobcenter_engine::Catalog;

use crate::args::CheckArgs;
use crate::cmd::Failure;

/// Compile the files and folders as one set; print every error; exit 1 if there was any.
pub fn run(a: CheckArgs) -> Result<u8, Failure> {
    let mut catalog = Catalog::new();
    let report = catalog.load_paths(&a.files);
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
