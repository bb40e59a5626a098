//! Map evaluation: assignment lists, compound operators, magic assignments, `ifdef` (§1.5, §2.4).
//!
//! [`eval_map`] runs the items of a map top to bottom against a [`Scope`]; errors carry the
//! 1-based item index as their line. The `run_*` helpers build the right scope for each
//! evaluation context of §2.2 and return its result, so a task step is one call:
//!
//! | context | helper | result |
//! |---|---|---|
//! | input map | [`run_input_map`] | the input object `i` |
//! | output map | [`run_output_map`] | new `v` if changed |
//! | `let`/`eval` | [`run_let`] | new `v` if changed |
//! | `wfomap` | [`run_wfomap`] | the output object `o` |
//! | condition | [`run_condition`] | truth value, new `v` if changed |
//! | case expression | [`run_case`] | string, new `v` if changed |
//! | lock/unlock value | [`run_lock_value`] | string |
//! | implicit input (`raise_error X`, `sleep X`) | [`run_implicit_input`] | `{key: X}` |

use serde_json::Value;

use super::expr::{eval_condition, eval_string, eval_val};
use super::scope::{step_error, EnvIds, Object, Scope, Step};
use super::value::{self, Val};
use super::{ErrorKind, EvalError};
use crate::syntax::ast::{AssignOp, Assignment, Code, Magic, Map, MapBody, MapItem, MapKind, Obj};

/// Evaluate all items of a map against a scope. On error the scope must be dropped.
pub fn eval_map(map: &Map, scope: &mut Scope<'_>) -> Result<(), EvalError> {
    let items = match &map.body {
        MapBody::Items(items) => items,
        MapBody::Perl(_) => {
            return Err(EvalError::new(
                ErrorKind::Unsupported("Perl blocks".into()),
                1,
            ))
        }
    };
    for (idx, item) in items.iter().enumerate() {
        let result = match item {
            MapItem::Assign(a) => assign(a, scope),
            MapItem::Magic(m) => magic(map.kind, m, scope),
        };
        if let Err(kind) = result {
            let err = EvalError::new(kind, idx + 1);
            tracing::debug!(kind = ?map.kind, line = idx + 1, error = %err, "map evaluation failed");
            return Err(err);
        }
    }
    Ok(())
}

/// Perform one assignment (`lhs op rhs`, with `ifdef`).
pub fn assign(a: &Assignment, scope: &mut Scope<'_>) -> Result<(), ErrorKind> {
    if matches!(a.op, AssignOp::DefinedOr | AssignOp::Or) {
        // Short-circuit: the right-hand side is only evaluated when it is needed.
        let cur = scope.read(&a.target)?;
        let needed = match a.op {
            AssignOp::DefinedOr => cur.is_null(),
            _ => !cur.is_true(),
        };
        if !needed {
            return Ok(());
        }
        let rhs = eval_val(&a.value, scope)?;
        if a.ifdef && rhs.is_null() {
            return Ok(());
        }
        *scope.slot(&a.target)? = rhs.into_value();
        return Ok(());
    }
    let rhs = eval_val(&a.value, scope)?;
    if a.ifdef && rhs.is_null() {
        return Ok(());
    }
    let slot = scope.slot(&a.target)?;
    let new = match a.op {
        AssignOp::Assign => rhs.into_value(),
        AssignOp::Push => {
            match slot {
                Value::Null => *slot = Value::Array(vec![rhs.into_value()]),
                Value::Array(arr) => arr.push(rhs.into_value()),
                other => return Err(step_error(other, Step::Index(0))),
            }
            return Ok(());
        }
        AssignOp::Concat => value::concat(&Val::from_ref(slot), &rhs)?.into_value(),
        AssignOp::Add => value::add(&Val::from_ref(slot), &rhs)?.into_value(),
        AssignOp::Sub => value::sub(&Val::from_ref(slot), &rhs)?.into_value(),
        AssignOp::Mul => value::mul(&Val::from_ref(slot), &rhs)?.into_value(),
        AssignOp::Div => value::div(&Val::from_ref(slot), &rhs)?.into_value(),
        // Handled above.
        AssignOp::DefinedOr | AssignOp::Or => return Ok(()),
    };
    *slot = new;
    Ok(())
}

/// The (source, destination) objects of magic assignments in a map kind (§1.5 table).
pub fn magic_objects(kind: MapKind) -> (Obj, Obj) {
    match kind {
        MapKind::Input => (Obj::V, Obj::I),
        MapKind::Output | MapKind::Let => (Obj::O, Obj::V),
        MapKind::WfOmap => (Obj::V, Obj::O),
    }
}

/// Perform a magic assignment: `<a,b>` copies same-named fields, `<*>` replaces the whole
/// destination object by a copy of the source.
pub fn magic(kind: MapKind, m: &Magic, scope: &mut Scope<'_>) -> Result<(), ErrorKind> {
    let (from, to) = magic_objects(kind);
    match &m.names {
        None => {
            let copy = scope.object_copy(from)?;
            scope.replace_object(to, copy)
        }
        Some(names) => {
            for n in names {
                let v = scope.top_value(from, n)?;
                scope.set_top(to, n, v)?;
            }
            Ok(())
        }
    }
}

/// Attach the environment ids (if any) to `scope` and evaluate `map` in it.
fn run_in<'s>(
    mut scope: Scope<'s>,
    ids: Option<EnvIds>,
    map: &Map,
) -> Result<Scope<'s>, EvalError> {
    if let Some(ids) = ids {
        scope = scope.with_ids(ids);
    }
    eval_map(map, &mut scope)?;
    Ok(scope)
}

/// Run an input map: `i` starts empty; `v` is read-only. Returns `i` (not yet type-checked:
/// apply [`crate::eval::types::check_inputs_owned`] with the callee's `in:` spec).
pub fn run_input_map(
    map: &Map,
    a: &Object,
    e: &Object,
    v: &Object,
    ids: Option<EnvIds>,
) -> Result<Object, EvalError> {
    Ok(run_in(Scope::input_map(a, e, v), ids, map)?.into_inputs())
}

/// Run an output map with the callee's (checked) outputs `o`. Returns the new variables if
/// they changed (`None`: keep the old ones).
pub fn run_output_map(
    map: &Map,
    a: &Object,
    e: &Object,
    v: &Object,
    o: &Object,
    ids: Option<EnvIds>,
) -> Result<Option<Object>, EvalError> {
    Ok(run_in(Scope::output_map(a, e, v, o), ids, map)?.into_vars())
}

/// Run a `let`/`eval` map. Returns the new variables if they changed.
pub fn run_let(
    map: &Map,
    a: &Object,
    e: &Object,
    v: &Object,
    ids: Option<EnvIds>,
) -> Result<Option<Object>, EvalError> {
    Ok(run_in(Scope::let_map(a, e, v), ids, map)?.into_vars())
}

/// Run a `wfomap`: `o` starts empty, `v` is read-only. Returns `o` (not yet checked: apply
/// [`crate::eval::types::check_outputs`] with the workflow's `out:` spec).
pub fn run_wfomap(
    map: &Map,
    a: &Object,
    e: &Object,
    v: &Object,
    ids: Option<EnvIds>,
) -> Result<Object, EvalError> {
    Ok(run_in(Scope::wfomap(a, e, v), ids, map)?.into_outputs())
}

/// Evaluate a condition (no ids in `e`). Returns the truth value and the new variables if
/// reading autovivified something (the original keeps such changes).
pub fn run_condition(
    code: &Code,
    a: &Object,
    e: &Object,
    v: &Object,
) -> Result<(bool, Option<Object>), EvalError> {
    let mut scope = Scope::condition(a, e, v);
    let b = eval_condition(code, &mut scope)?;
    Ok((b, scope.into_vars()))
}

/// Evaluate a case expression (no ids). Returns its string value and the new variables if
/// they changed.
pub fn run_case(
    code: &Code,
    a: &Object,
    e: &Object,
    v: &Object,
) -> Result<(String, Option<Object>), EvalError> {
    let mut scope = Scope::condition(a, e, v);
    let s = eval_string(code, &mut scope)?;
    Ok((s, scope.into_vars()))
}

/// Evaluate a lock/unlock value (no ids; changes to `v` are discarded).
pub fn run_lock_value(
    code: &Code,
    a: &Object,
    e: &Object,
    v: &Object,
) -> Result<String, EvalError> {
    let mut scope = Scope::discarded(a, e, v);
    eval_string(code, &mut scope)
}

/// Evaluate the implicit input map of `raise_error X` (`key` = `msg`) or `sleep X`: an
/// input-map scope whose result is `{key: X}` (to be checked against the statement's spec).
pub fn run_implicit_input(
    key: &str,
    code: &Code,
    a: &Object,
    e: &Object,
    v: &Object,
    ids: Option<EnvIds>,
) -> Result<Object, EvalError> {
    let mut scope = Scope::input_map(a, e, v);
    if let Some(ids) = ids {
        scope = scope.with_ids(ids);
    }
    let expr = match code {
        Code::Expr(x) => x,
        Code::Perl(_) => {
            return Err(EvalError::new(
                ErrorKind::Unsupported("Perl blocks".into()),
                1,
            ))
        }
    };
    let val = eval_val(expr, &mut scope).map_err(|k| EvalError::new(k, 1))?;
    let mut i = scope.into_inputs();
    i.insert(key.to_string(), val.into_value());
    Ok(i)
}
