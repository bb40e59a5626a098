//! Compiling into the catalog: one definition (parse, check, lower, store) or a directory
//! of `.jcl` files with their dependencies, in an order that binds calls (docs/JCL.md §2.6).

use super::catalog::{Catalog, DefinitionRef, LoadReport};
use super::lower;
use crate::syntax::{self, ast, CompileError};
use std::collections::BTreeSet;
use std::path::Path;

impl Catalog {
    /// Parse, check, lower and store `src` as a new version of the definition it contains.
    /// Calls are bound with the tag list `["default"]`.
    pub fn compile(
        &mut self,
        file_name: &str,
        src: &str,
    ) -> Result<DefinitionRef, Vec<CompileError>> {
        self.compile_tagged(file_name, src, &[])
    }

    /// Like [`Catalog::compile`], attaching version `tags` (which must be registered) to the
    /// new version and binding calls with the tag list `tags ++ ["default"]`.
    pub fn compile_tagged(
        &mut self,
        file_name: &str,
        src: &str,
        tags: &[String],
    ) -> Result<DefinitionRef, Vec<CompileError>> {
        let def = syntax::parse(file_name, src)?;
        self.compile_definition(file_name, &def, tags)
    }

    /// Check, lower and store an already parsed definition as a new version.
    pub fn compile_definition(
        &mut self,
        file_name: &str,
        def: &ast::Definition,
        tags: &[String],
    ) -> Result<DefinitionRef, Vec<CompileError>> {
        let mut errors = Vec::new();
        for t in tags {
            if !self.vtags.contains(t) {
                errors.push(CompileError::new(
                    file_name,
                    0,
                    format!("unknown version tag {t}"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let id = self.defs.len();
        let version = self.next_version(def.name());
        let compiled = lower::compile(self, file_name, def, id, version, tags)?;
        let r = DefinitionRef {
            id,
            name: compiled.name().to_string(),
            version,
            kind: compiled.target_kind(),
        };
        tracing::debug!(name = %r.name, version, id, "compiled definition");
        self.by_name.entry(r.name.clone()).or_default().push(id);
        self.defs.push(compiled);
        Ok(r)
    }

    /// The version the next compile of `name` gets (`last + 1`, first 0).
    pub fn next_version(&self, name: &str) -> u32 {
        self.versions(name)
            .iter()
            .filter_map(|id| self.defs.get(*id))
            .map(|d| d.version() + 1)
            .max()
            .unwrap_or(0)
    }

    /// Load every `*.ac` and `*.wf` file of a directory (not recursive): actions first, then
    /// workflows in dependency order (a workflow is compiled after the workflows it calls
    /// that are in the same directory). Enforces that a file's base name starts with the
    /// definition's name. Every problem is reported; good files are still loaded.
    pub fn load_dir(&mut self, path: impl AsRef<Path>) -> LoadReport {
        self.load_paths(&[path.as_ref().to_path_buf()])
    }

    /// Load JCL files and directories (each directory: its `*.ac` and `*.wf` files, not
    /// recursive) as one set, like [`Catalog::load_dir`]: actions first, then workflows in
    /// dependency order across all of them.
    pub fn load_paths(&mut self, paths: &[std::path::PathBuf]) -> LoadReport {
        let mut report = LoadReport::default();
        let mut files = Vec::new();
        for path in paths {
            if !path.is_dir() {
                files.push(path.clone());
                continue;
            }
            match std::fs::read_dir(path) {
                Ok(rd) => {
                    let mut found: Vec<_> = rd
                        .flatten()
                        .map(|entry| entry.path())
                        .filter(|p| {
                            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                            (ext == "wf" || ext == "ac") && p.is_file()
                        })
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => {
                    report.errors.push(CompileError::new(
                        &path.display().to_string(),
                        0,
                        format!("cannot read directory: {e}"),
                    ));
                }
            }
        }
        let mut actions = Vec::new();
        let mut workflows = Vec::new();
        for p in files {
            let file = p.display().to_string();
            let src = match std::fs::read_to_string(&p) {
                Ok(s) => s,
                Err(e) => {
                    report.errors.push(CompileError::new(
                        &file,
                        0,
                        format!("cannot read file: {e}"),
                    ));
                    continue;
                }
            };
            let def = match syntax::parse(&file, &src) {
                Ok(d) => d,
                Err(errs) => {
                    report.errors.extend(errs);
                    continue;
                }
            };
            let base = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            let (what, is_wf) = match &def {
                ast::Definition::Workflow(_) => ("workflow", true),
                ast::Definition::Action(a) => match a.kind {
                    ast::ActionKind::Action => ("action", false),
                    ast::ActionKind::Procedure => ("procedure", false),
                },
            };
            if !base.starts_with(def.name()) {
                report.errors.push(CompileError::new(
                    &file,
                    def.line(),
                    format!(
                        "{what} filename {base} does not match {what} name {}",
                        def.name()
                    ),
                ));
                continue;
            }
            if is_wf {
                workflows.push((file, def));
            } else {
                actions.push((file, def));
            }
        }
        for (file, def) in &actions {
            match self.compile_definition(file, def, &[]) {
                Ok(r) => report.loaded.push(r),
                Err(errs) => report.errors.extend(errs),
            }
        }
        // Workflows: repeatedly compile those whose in-directory callees are done.
        let mut pending: Vec<(String, ast::Definition)> = workflows;
        while !pending.is_empty() {
            let names: BTreeSet<String> =
                pending.iter().map(|(_, d)| d.name().to_string()).collect();
            let ready: Vec<usize> = (0..pending.len())
                .filter(|&i| {
                    let own = pending[i].1.name();
                    lower::called_names(&pending[i].1)
                        .iter()
                        .all(|n| n == own || !names.contains(n))
                })
                .collect();
            // On a cycle, compile the first remaining one anyway (it reports the missing target).
            let chosen: Vec<usize> = if ready.is_empty() { vec![0] } else { ready };
            let mut rest = Vec::new();
            let mut batch = Vec::new();
            for (i, item) in pending.into_iter().enumerate() {
                if chosen.contains(&i) {
                    batch.push(item);
                } else {
                    rest.push(item);
                }
            }
            for (file, def) in &batch {
                match self.compile_definition(file, def, &[]) {
                    Ok(r) => report.loaded.push(r),
                    Err(errs) => report.errors.extend(errs),
                }
            }
            pending = rest;
        }
        report
            .errors
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        report
    }
}
