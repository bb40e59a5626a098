//! The evaluation environment: the six objects `a e v t i o` of one evaluation (docs/JCL.md §2.2).
//!
//! A [`Scope`] is built for **one** map, condition or string evaluation and dropped
//! afterwards (so `t` starts empty every time). `a` and `e` are borrowed read-only; `v` and
//! `o` are copy-on-write (`Cow`): they are only cloned when something writes to them, so
//! evaluating a condition or an input map does not copy the job's variables.
//!
//! If an evaluation fails, drop the scope: nothing of it must be kept (§2.4 step 3).

use serde_json::{Map, Value};
use std::borrow::Cow;

use super::value::Val;
use super::ErrorKind;
use crate::syntax::ast::{Obj, PathPart, Var};

/// A JSON object.
pub type Object = Map<String, Value>;

/// Largest array index an assignment may create (guards against `x[1000000000] = 1`).
pub const MAX_ARRAY_EXTEND: usize = 1 << 20;

/// The ids the environment additionally holds in maps (`+ids` in §2.2's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvIds {
    /// `e.workflow_id`: the workflow version id.
    pub workflow_id: i64,
    /// `e.job_id`.
    pub job_id: i64,
    /// `e.task_id`: the current task's id.
    pub task_id: i64,
}

/// Which evaluation context a scope is for; decides availability and persistence of objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Input map: `i` rw (the result), `v` read-only, no `o`.
    Input,
    /// Output map: `v` rw (kept), `o` read-only (the callee's outputs), no `i`.
    Output,
    /// `let`/`eval`: `v` rw (kept), no `i`/`o`.
    Let,
    /// Condition or case expression: `v` rw (kept: reading may autovivify), no `i`/`o`.
    Condition,
    /// `lock`/`unlock` value: `v` rw but discarded, no `i`/`o`.
    Discarded,
    /// `wfomap`: `o` rw (the result), `v` read-only (changes discarded), no `i`.
    WfOmap,
}

/// The objects of one evaluation.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    context: Context,
    a: &'a Object,
    e: &'a Object,
    ids: Object,
    v: Cow<'a, Object>,
    t: Object,
    i: Option<Object>,
    o: Option<Cow<'a, Object>>,
}

/// One step of a variable path: `.key` or `[n]`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'p> {
    Key(&'p str),
    Index(i64),
}

pub(crate) fn steps(path: &[PathPart]) -> impl Iterator<Item = Step<'_>> + '_ {
    path.iter()
        .flat_map(|p| std::iter::once(Step::Key(p.name.as_str())).chain(p.index.map(Step::Index)))
}

/// How Perl quotes a scalar in `Can't use string (...) as ... ref`: at most 32 characters,
/// followed by `...` when truncated.
fn quoted_for_ref_error(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(_) => Val::from_ref(v).into_string().unwrap_or_default(),
        _ => String::new(),
    };
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(32).collect();
    if chars.next().is_some() {
        format!("\"{head}\"...")
    } else {
        format!("\"{head}\"")
    }
}

pub(crate) fn step_error(v: &Value, step: Step<'_>) -> ErrorKind {
    match (step, v) {
        (Step::Key(_), Value::String(_) | Value::Number(_)) => {
            ErrorKind::StringAsHash(quoted_for_ref_error(v))
        }
        (Step::Index(_), Value::String(_) | Value::Number(_)) => {
            ErrorKind::StringAsArray(quoted_for_ref_error(v))
        }
        (Step::Key(_), _) => ErrorKind::NotAHash,
        (Step::Index(_), _) => ErrorKind::NotAnArray,
    }
}

fn resolve_index(len: usize, i: i64) -> Option<usize> {
    if i >= 0 {
        usize::try_from(i).ok()
    } else {
        let back = usize::try_from(i.unsigned_abs()).ok()?;
        len.checked_sub(back)
    }
}

/// Result of a read-only walk.
enum Found<'m> {
    /// The value exists.
    Value(&'m Value),
    /// The final key/index is absent: the result is null.
    Absent,
    /// An intermediate is absent or null: Perl would autovivify it.
    NeedsViv,
}

fn walk<'m, 'p>(
    mut cur: Option<&'m Value>,
    rest: impl Iterator<Item = Step<'p>>,
) -> Result<Found<'m>, ErrorKind> {
    for step in rest {
        let v = match cur {
            None | Some(Value::Null) => return Ok(Found::NeedsViv),
            Some(v) => v,
        };
        cur = match (step, v) {
            (Step::Key(k), Value::Object(m)) => m.get(k),
            (Step::Index(i), Value::Array(a)) => resolve_index(a.len(), i).and_then(|j| a.get(j)),
            _ => return Err(step_error(v, step)),
        };
    }
    Ok(match cur {
        Some(v) => Found::Value(v),
        None => Found::Absent,
    })
}

/// Walk mutably, creating intermediate containers (Perl autovivification). With
/// `create_last` the final slot is created too (as null), else `None` if it is absent.
pub(crate) fn walk_mut<'m>(
    root: &'m mut Object,
    path: &[PathPart],
    create_last: bool,
) -> Result<Option<&'m mut Value>, ErrorKind> {
    let mut it = steps(path).peekable();
    let Some(Step::Key(k0)) = it.next() else {
        return Ok(None);
    };
    if it.peek().is_none() && !create_last {
        return Ok(root.get_mut(k0));
    }
    if !root.contains_key(k0) {
        root.insert(k0.to_string(), Value::Null);
    }
    let Some(mut cur) = root.get_mut(k0) else {
        return Ok(None);
    };
    while let Some(step) = it.next() {
        let last = it.peek().is_none();
        if cur.is_null() {
            *cur = match step {
                Step::Key(_) => Value::Object(Map::new()),
                Step::Index(_) => Value::Array(Vec::new()),
            };
        }
        cur = match (step, cur) {
            (Step::Key(k), Value::Object(m)) => {
                if last && !create_last {
                    return Ok(m.get_mut(k));
                }
                if !m.contains_key(k) {
                    m.insert(k.to_string(), Value::Null);
                }
                match m.get_mut(k) {
                    Some(v) => v,
                    None => return Ok(None),
                }
            }
            (Step::Index(i), Value::Array(a)) => {
                let idx = match resolve_index(a.len(), i) {
                    Some(j) => j,
                    None if last && !create_last => return Ok(None),
                    None => return Err(ErrorKind::NonCreatableIndex(i)),
                };
                if idx >= a.len() {
                    if last && !create_last {
                        return Ok(None);
                    }
                    if idx >= MAX_ARRAY_EXTEND {
                        return Err(ErrorKind::OutOfMemory);
                    }
                    a.resize(idx + 1, Value::Null);
                }
                &mut a[idx]
            }
            (step, other) => return Err(step_error(other, step)),
        };
    }
    Ok(Some(cur))
}

impl<'a> Scope<'a> {
    fn new(context: Context, a: &'a Object, e: &'a Object, v: &'a Object) -> Self {
        Scope {
            context,
            a,
            e,
            ids: Map::new(),
            v: Cow::Borrowed(v),
            t: Map::new(),
            i: None,
            o: None,
        }
    }

    /// Scope of an input map: `i` starts empty and is the result ([`Scope::into_inputs`]).
    pub fn input_map(a: &'a Object, e: &'a Object, v: &'a Object) -> Self {
        let mut s = Scope::new(Context::Input, a, e, v);
        s.i = Some(Map::new());
        s
    }

    /// Scope of an output map (`into:`/`collect:`): `o` are the callee's (checked) outputs;
    /// the new variables come from [`Scope::into_vars`].
    pub fn output_map(a: &'a Object, e: &'a Object, v: &'a Object, o: &'a Object) -> Self {
        let mut s = Scope::new(Context::Output, a, e, v);
        s.o = Some(Cow::Borrowed(o));
        s
    }

    /// Scope of a `let`/`eval`; the new variables come from [`Scope::into_vars`].
    pub fn let_map(a: &'a Object, e: &'a Object, v: &'a Object) -> Self {
        Scope::new(Context::Let, a, e, v)
    }

    /// Scope of a condition or case expression (no ids; `v` changes are kept).
    pub fn condition(a: &'a Object, e: &'a Object, v: &'a Object) -> Self {
        Scope::new(Context::Condition, a, e, v)
    }

    /// Scope of a lock/unlock value (no ids; `v` changes are discarded).
    pub fn discarded(a: &'a Object, e: &'a Object, v: &'a Object) -> Self {
        Scope::new(Context::Discarded, a, e, v)
    }

    /// Scope of a `wfomap`: `o` starts empty and is the result ([`Scope::into_outputs`]).
    pub fn wfomap(a: &'a Object, e: &'a Object, v: &'a Object) -> Self {
        let mut s = Scope::new(Context::WfOmap, a, e, v);
        s.o = Some(Cow::Owned(Map::new()));
        s
    }

    /// Add `workflow_id`, `job_id` and `task_id` to the environment (maps only, §2.2).
    pub fn with_ids(mut self, ids: EnvIds) -> Self {
        self.ids
            .insert("workflow_id".into(), Value::from(ids.workflow_id));
        self.ids.insert("job_id".into(), Value::from(ids.job_id));
        self.ids.insert("task_id".into(), Value::from(ids.task_id));
        self
    }

    /// The evaluation context.
    pub fn context(&self) -> Context {
        self.context
    }

    /// The variables after the evaluation if they changed (`None`: unchanged). Only
    /// meaningful for contexts whose `v` changes are kept (output map, let, condition).
    pub fn into_vars(self) -> Option<Object> {
        match self.v {
            Cow::Owned(v) => Some(v),
            Cow::Borrowed(_) => None,
        }
    }

    /// The input object built by an input map (empty for other contexts).
    pub fn into_inputs(self) -> Object {
        self.i.unwrap_or_default()
    }

    /// The output object built by a `wfomap` (empty for other contexts).
    pub fn into_outputs(self) -> Object {
        self.o.map(Cow::into_owned).unwrap_or_default()
    }

    /// Read access to the variables as they are now.
    pub fn vars(&self) -> &Object {
        &self.v
    }

    /// Read access to the temporaries.
    pub fn temps(&self) -> &Object {
        &self.t
    }

    fn unavailable(obj: Obj) -> ErrorKind {
        ErrorKind::UnavailableObject(obj.letter())
    }

    /// The object for reading.
    fn root(&self, obj: Obj) -> Result<&Object, ErrorKind> {
        match obj {
            Obj::A => Ok(self.a),
            Obj::E => Ok(self.e),
            Obj::V => Ok(&self.v),
            Obj::T => Ok(&self.t),
            Obj::I => self.i.as_ref().ok_or(Self::unavailable(obj)),
            Obj::O => self.o.as_deref().ok_or(Self::unavailable(obj)),
        }
    }

    /// The object for writing (assignments and persisting autovivification); `None` if
    /// writes to it are not kept in this context.
    fn root_mut(&mut self, obj: Obj) -> Result<Option<&mut Object>, ErrorKind> {
        Ok(match obj {
            Obj::A | Obj::E => None,
            Obj::V => match self.context {
                Context::Output | Context::Let | Context::Condition => Some(self.v.to_mut()),
                // Changes would be discarded: skip the copy (autovivification is unobservable).
                Context::Input | Context::WfOmap | Context::Discarded => None,
            },
            Obj::T => Some(&mut self.t),
            Obj::I => Some(self.i.as_mut().ok_or(Self::unavailable(obj))?),
            Obj::O => match (&mut self.o, self.context) {
                (None, _) => return Err(Self::unavailable(obj)),
                (Some(o), Context::WfOmap) => Some(o.to_mut()),
                (Some(_), _) => None,
            },
        })
    }

    /// Read a variable (`X.p.q[n]`): missing keys/indexes give null; walking through a
    /// missing intermediate autovivifies it where that is observable (§2.3).
    pub fn read(&mut self, var: &Var) -> Result<Val, ErrorKind> {
        let mut it = steps(&var.path);
        let Some(Step::Key(k0)) = it.next() else {
            return Ok(Val::Null);
        };
        let root = self.root(var.obj)?;
        let first = if var.obj == Obj::E && !self.ids.is_empty() {
            self.ids.get(k0).or_else(|| root.get(k0))
        } else {
            root.get(k0)
        };
        match walk(first, it)? {
            Found::Value(v) => Ok(Val::from_ref(v)),
            Found::Absent => Ok(Val::Null),
            Found::NeedsViv => {
                let persist = matches!(var.obj, Obj::V | Obj::T | Obj::I | Obj::O);
                match self.root_mut(var.obj) {
                    Ok(Some(root)) if persist => {
                        Ok(walk_mut(root, &var.path, false)?
                            .map_or(Val::Null, |v| Val::from_ref(v)))
                    }
                    _ => Ok(Val::Null),
                }
            }
        }
    }

    /// The slot an assignment writes to, created (with intermediates) as needed.
    pub fn slot(&mut self, place: &Var) -> Result<&mut Value, ErrorKind> {
        let root = self.root_mut(place.obj)?.ok_or(ErrorKind::ReadOnly)?;
        walk_mut(root, &place.path, true)?.ok_or(ErrorKind::ReadOnly)
    }

    /// Replace a whole top-level object (magic `<*>`).
    pub fn replace_object(&mut self, obj: Obj, content: Object) -> Result<(), ErrorKind> {
        match (obj, self.context) {
            (Obj::V, Context::Output | Context::Let | Context::Condition) => {
                self.v = Cow::Owned(content);
            }
            (Obj::I, Context::Input) => self.i = Some(content),
            (Obj::O, Context::WfOmap) => self.o = Some(Cow::Owned(content)),
            (Obj::I | Obj::O, _) if self.root(obj).is_err() => return Err(Self::unavailable(obj)),
            _ => return Err(ErrorKind::ReadOnly),
        }
        Ok(())
    }

    /// A copy of a whole top-level object (magic `<*>`).
    pub fn object_copy(&self, obj: Obj) -> Result<Object, ErrorKind> {
        let mut m = self.root(obj)?.clone();
        if obj == Obj::E {
            for (k, v) in &self.ids {
                m.insert(k.clone(), v.clone());
            }
        }
        Ok(m)
    }

    /// Set one top-level key of a writable object (magic `<a,b>`).
    pub fn set_top(&mut self, obj: Obj, key: &str, value: Value) -> Result<(), ErrorKind> {
        let root = self.root_mut(obj)?.ok_or(ErrorKind::ReadOnly)?;
        root.insert(key.to_string(), value);
        Ok(())
    }

    /// One top-level key of an object (magic `<a,b>`), null if absent.
    pub fn top_value(&self, obj: Obj, key: &str) -> Result<Value, ErrorKind> {
        Ok(self.root(obj)?.get(key).cloned().unwrap_or(Value::Null))
    }
}
