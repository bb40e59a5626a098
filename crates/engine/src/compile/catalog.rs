//! The definitions store: every compiled version of every workflow and action, version
//! lookup (docs/JCL.md §2.7 step 1, §2.15) and compile-time binding of calls (§2.6).

use super::graph::{Action, Compiled, DefId, TargetKind, Workflow};
use crate::syntax::CompileError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// How much of the language the compiler accepts (docs/JCL.md Part 3). Constructs of a later
/// stage are parsed and then rejected with `statement X not supported yet` (or
/// `section X not supported yet`, `procedure definitions not supported yet`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// Sequential workflows, calls, control flow, try/catch (C01–C30).
    A,
    /// Plus split/callflow, locks, sleep, wait_for_lock, regex match (C31–C39).
    B,
    /// Plus events, goto/label, roles, interface, map, detachflow, procedures, `list()`.
    C,
}

/// A reference to a compiled definition, as returned by [`Catalog::compile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionRef {
    /// The catalog id.
    pub id: DefId,
    /// The definition name.
    pub name: String,
    /// The new version.
    pub version: u32,
    /// Workflow, action or procedure.
    pub kind: TargetKind,
}

/// What [`Catalog::load_dir`] did: the definitions it compiled and every error it found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Definitions compiled successfully, in compile order.
    pub loaded: Vec<DefinitionRef>,
    /// All errors (`file:line: message` when displayed), in file order.
    pub errors: Vec<CompileError>,
}

impl LoadReport {
    /// `true` if no file had an error.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The base type names (docs/JCL.md §2.5).
pub const BASE_TYPES: [&str; 6] = ["null", "boolean", "number", "string", "array", "object"];

/// The store of compiled definitions.
///
/// Versions are numbered per name from 0, shared across kinds. Lookups follow the tag rule
/// of docs/JCL.md §2.7 step 1 (without tags: the highest version). Calls are bound when the
/// caller is compiled; recompiling a callee later does not change existing callers.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(super) defs: Vec<Compiled>,
    pub(super) by_name: HashMap<String, Vec<DefId>>,
    pub(super) types: BTreeSet<String>,
    pub(super) locktypes: BTreeSet<String>,
    pub(super) vtags: BTreeSet<String>,
    pub(super) stage: Stage,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new()
    }
}

impl Catalog {
    /// An empty catalog accepting Stage A, knowing the base types and `integer`, no lock
    /// types and the version tag `default`.
    pub fn new() -> Self {
        let mut types: BTreeSet<String> = BASE_TYPES.iter().map(|s| s.to_string()).collect();
        types.insert("integer".to_string());
        Catalog {
            defs: Vec::new(),
            by_name: HashMap::new(),
            types,
            locktypes: BTreeSet::new(),
            vtags: ["default".to_string()].into_iter().collect(),
            stage: Stage::A,
        }
    }

    /// An empty catalog accepting the given stage.
    pub fn with_stage(stage: Stage) -> Self {
        let mut c = Catalog::new();
        c.stage = stage;
        c
    }

    /// The accepted stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Change the accepted stage (affects later compiles only).
    pub fn set_stage(&mut self, stage: Stage) {
        self.stage = stage;
    }

    /// Register a (schema) type name usable in io-specs.
    pub fn register_type(&mut self, name: &str) {
        self.types.insert(name.to_string());
    }

    /// Whether a type name is known.
    pub fn has_type(&self, name: &str) -> bool {
        self.types.contains(name)
    }

    /// Register a lock type usable in `locks:` sections.
    pub fn register_locktype(&mut self, name: &str) {
        self.locktypes.insert(name.to_string());
    }

    /// Whether a lock type is registered (`check_if_lock_exists` returns null otherwise).
    pub fn has_locktype(&self, name: &str) -> bool {
        self.locktypes.contains(name)
    }

    /// Register a version tag usable with [`Catalog::compile_tagged`].
    pub fn register_vtag(&mut self, tag: &str) {
        self.vtags.insert(tag.to_string());
    }

    /// The definition with this id.
    pub fn get(&self, id: DefId) -> Option<&Compiled> {
        self.defs.get(id)
    }

    /// The workflow with this id.
    pub fn workflow(&self, id: DefId) -> Option<&Arc<Workflow>> {
        match self.defs.get(id) {
            Some(Compiled::Workflow(w)) => Some(w),
            _ => None,
        }
    }

    /// The action (or procedure) with this id.
    pub fn action(&self, id: DefId) -> Option<&Arc<Action>> {
        match self.defs.get(id) {
            Some(Compiled::Action(a)) => Some(a),
            _ => None,
        }
    }

    /// All definitions in compile order.
    pub fn definitions(&self) -> &[Compiled] {
        &self.defs
    }

    /// The ids of all versions of `name`, oldest first.
    pub fn versions(&self, name: &str) -> &[DefId] {
        self.by_name.get(name).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Select a version among the definitions of `name` accepted by `filter`, with the tag
    /// rule of docs/JCL.md §2.7 step 1: tag list `L = split(vtag, ':') ++ ["default"]`; candidates
    /// carry a tag in `L` or no tag; the earliest tag position wins (untagged ranks last),
    /// then the highest version.
    pub fn select(
        &self,
        name: &str,
        vtag: Option<&str>,
        filter: impl Fn(&Compiled) -> bool,
    ) -> Option<&Compiled> {
        let mut list: Vec<&str> = match vtag {
            Some(t) if !t.is_empty() && t != "default" => t.split(':').collect(),
            _ => Vec::new(),
        };
        list.push("default");
        self.select_with(name, &list, filter)
    }

    /// [`Catalog::select`] with an explicit tag list (already including `default`).
    pub fn select_with(
        &self,
        name: &str,
        list: &[&str],
        filter: impl Fn(&Compiled) -> bool,
    ) -> Option<&Compiled> {
        let mut best: Option<(usize, u32, &Compiled)> = None;
        for d in self
            .versions(name)
            .iter()
            .filter_map(|id| self.defs.get(*id))
        {
            if !filter(d) {
                continue;
            }
            let rank = if d.tags().is_empty() {
                list.len()
            } else {
                match d
                    .tags()
                    .iter()
                    .filter_map(|t| list.iter().position(|l| l == t))
                    .min()
                {
                    Some(r) => r,
                    None => continue,
                }
            };
            let better = match best {
                None => true,
                Some((br, bv, _)) => rank < br || (rank == br && d.version() > bv),
            };
            if better {
                best = Some((rank, d.version(), d));
            }
        }
        best.map(|(_, _, d)| d)
    }

    /// The workflow `create_job` runs for `name` and `vtag` (docs/JCL.md §2.7 step 1), or `None`
    /// (`no workflow named NAME`).
    pub fn lookup_workflow(&self, name: &str, vtag: Option<&str>) -> Option<&Arc<Workflow>> {
        match self.select(name, vtag, |d| matches!(d, Compiled::Workflow(_))) {
            Some(Compiled::Workflow(w)) => Some(w),
            _ => None,
        }
    }

    /// The latest version of an action or procedure by name (what workers serve).
    pub fn latest_action(&self, name: &str) -> Option<&Arc<Action>> {
        self.versions(name)
            .iter()
            .rev()
            .find_map(|id| match self.defs.get(*id) {
                Some(Compiled::Action(a)) => Some(a),
                _ => None,
            })
    }

    /// Whether the definition `id` accepts a type name (for io-spec checks).
    pub(crate) fn types(&self) -> &BTreeSet<String> {
        &self.types
    }

    /// Registered lock types.
    pub(crate) fn locktypes(&self) -> &BTreeSet<String> {
        &self.locktypes
    }
}
