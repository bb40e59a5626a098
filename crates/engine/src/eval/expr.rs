//! The expression evaluator: an AST expression evaluated against a [`Scope`] (docs/JCL.md §1.4, §2.3).
//!
//! The parser already applied Perl precedence, so evaluation is a plain tree walk. `&&`, `||`,
//! `//`, `and`, `or` short-circuit and return an operand; comparisons, `!`, `not`, `xor`
//! and `defined` return `1` or `""`.

use serde_json::{Map, Value};

use super::codec;
use super::scope::Scope;
use super::value::{self, format_float, perl_bool, CmpOp, Num, Val};
use super::{ErrorKind, EvalError};
use crate::syntax::ast::{BinOp, Code, Expr, ExprKind, Func, Literal, UnOp};

/// Evaluate an expression (as line 1 of its evaluation) to a JSON value.
pub fn eval_expr(expr: &Expr, scope: &mut Scope<'_>) -> Result<Value, EvalError> {
    eval_val(expr, scope)
        .map(Val::into_value)
        .map_err(|k| EvalError::new(k, 1))
}

/// Evaluate a condition (`if`, `elsif`, `while`, `until`, `assert`): its Perl truth value.
/// Perl blocks are not supported.
pub fn eval_condition(code: &Code, scope: &mut Scope<'_>) -> Result<bool, EvalError> {
    let expr = code_expr(code)?;
    eval_val(expr, scope)
        .map(|v| v.is_true())
        .map_err(|k| EvalError::new(k, 1))
}

/// Evaluate a case expression or lock/unlock/sleep value: its Perl string value.
pub fn eval_string(code: &Code, scope: &mut Scope<'_>) -> Result<String, EvalError> {
    let expr = code_expr(code)?;
    eval_val(expr, scope)
        .and_then(Val::into_string)
        .map_err(|k| EvalError::new(k, 1))
}

/// Evaluate a [`Code`] (expression or Perl block) to a JSON value (line 1).
pub fn eval_code(code: &Code, scope: &mut Scope<'_>) -> Result<Value, EvalError> {
    eval_expr(code_expr(code)?, scope)
}

fn code_expr(code: &Code) -> Result<&Expr, EvalError> {
    match code {
        Code::Expr(e) => Ok(e),
        Code::Perl(_) => Err(EvalError::new(
            ErrorKind::Unsupported("Perl blocks".into()),
            1,
        )),
    }
}

fn literal(l: &Literal) -> Val {
    match l {
        Literal::Null => Val::Null,
        Literal::Bool(b) => Val::Bool(*b),
        Literal::Int(i) => Val::Int(i128::from(*i)),
        Literal::UInt(u) => Val::Int(i128::from(*u)),
        Literal::Float(f) => Val::Float(*f),
        Literal::Str(s) => Val::Str(s.clone()),
    }
}

fn cmp_op(op: BinOp) -> Option<CmpOp> {
    Some(match op {
        BinOp::NumEq => CmpOp::NumEq,
        BinOp::NumNe => CmpOp::NumNe,
        BinOp::NumLt => CmpOp::NumLt,
        BinOp::NumGt => CmpOp::NumGt,
        BinOp::NumLe => CmpOp::NumLe,
        BinOp::NumGe => CmpOp::NumGe,
        BinOp::StrEq => CmpOp::StrEq,
        BinOp::StrNe => CmpOp::StrNe,
        BinOp::StrLt => CmpOp::StrLt,
        BinOp::StrGt => CmpOp::StrGt,
        BinOp::StrLe => CmpOp::StrLe,
        BinOp::StrGe => CmpOp::StrGe,
        _ => return None,
    })
}

/// Apply a non-short-circuit binary operator to two evaluated operands.
pub fn apply_binary(op: BinOp, l: &Val, r: &Val) -> Result<Val, ErrorKind> {
    if let Some(c) = cmp_op(op) {
        return value::compare(c, l, r);
    }
    match op {
        BinOp::Pow => value::pow(l, r),
        BinOp::Mul => value::mul(l, r),
        BinOp::Div => value::div(l, r),
        BinOp::Mod => value::modulus(l, r),
        BinOp::Repeat => value::repeat(l, r),
        BinOp::Add => value::add(l, r),
        BinOp::Sub => value::sub(l, r),
        BinOp::Concat => value::concat(l, r),
        BinOp::Xor => Ok(perl_bool(l.is_true() != r.is_true())),
        BinOp::And | BinOp::LowAnd => Ok(if l.is_true() { r.clone() } else { l.clone() }),
        BinOp::Or | BinOp::LowOr => Ok(if l.is_true() { l.clone() } else { r.clone() }),
        BinOp::DefinedOr => Ok(if l.is_null() { r.clone() } else { l.clone() }),
        // Comparisons were handled above.
        _ => Ok(Val::Null),
    }
}

/// Evaluate an expression to a runtime value (errors without location).
pub fn eval_val(expr: &Expr, scope: &mut Scope<'_>) -> Result<Val, ErrorKind> {
    match &expr.kind {
        ExprKind::Lit(l) => Ok(literal(l)),
        ExprKind::Var(var) => scope.read(var),
        ExprKind::Unary(op, x) => {
            let v = eval_val(x, scope)?;
            match op {
                UnOp::Not | UnOp::LowNot => Ok(perl_bool(!v.is_true())),
                UnOp::Neg => value::negate(&v),
                UnOp::Plus => Ok(value::plus(v)),
            }
        }
        ExprKind::Binary(op, l, r) => {
            let lv = eval_val(l, scope)?;
            match op {
                BinOp::And | BinOp::LowAnd => {
                    if lv.is_true() {
                        eval_val(r, scope)
                    } else {
                        Ok(lv)
                    }
                }
                BinOp::Or | BinOp::LowOr => {
                    if lv.is_true() {
                        Ok(lv)
                    } else {
                        eval_val(r, scope)
                    }
                }
                BinOp::DefinedOr => {
                    if lv.is_null() {
                        eval_val(r, scope)
                    } else {
                        Ok(lv)
                    }
                }
                _ => {
                    let rv = eval_val(r, scope)?;
                    apply_binary(*op, &lv, &rv)
                }
            }
        }
        ExprKind::Match(x, pattern) => {
            let text = eval_val(x, scope)?.into_string()?;
            super::regex::is_match(pattern, &text)
                .map(perl_bool)
                .map_err(|e| ErrorKind::Regex(e.to_string()))
        }
        ExprKind::Call(f, args) => call(*f, args, scope),
    }
}

fn one_arg(f: Func, args: &[Expr]) -> Result<&Expr, ErrorKind> {
    match args {
        [x] => Ok(x),
        _ => Err(ErrorKind::Arity(f.name().to_string())),
    }
}

/// Evaluate the arguments of a variadic function, flattening `list(x)` arguments (Perl list
/// context: an array gives its elements, an object its key/value pairs).
fn list_args(args: &[Expr], scope: &mut Scope<'_>) -> Result<Vec<Val>, ErrorKind> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        if let ExprKind::Call(Func::List, inner) = &a.kind {
            let x = eval_val(one_arg(Func::List, inner)?, scope)?;
            match x {
                Val::Array(items) => out.extend(items.into_iter().map(Val::from_value)),
                Val::Object(m) => {
                    for (k, v) in m {
                        out.push(Val::Str(k));
                        out.push(Val::from_value(v));
                    }
                }
                _ => return Err(ErrorKind::NotAReference),
            }
        } else {
            out.push(eval_val(a, scope)?);
        }
    }
    Ok(out)
}

fn string_arg(f: Func, args: &[Expr], scope: &mut Scope<'_>) -> Result<String, ErrorKind> {
    eval_val(one_arg(f, args)?, scope)?.into_string()
}

fn call(f: Func, args: &[Expr], scope: &mut Scope<'_>) -> Result<Val, ErrorKind> {
    match f {
        Func::ToString => Ok(Val::Str(string_arg(f, args, scope)?)),
        Func::ToNumber => Ok(eval_val(one_arg(f, args)?, scope)?.to_num()?.into()),
        Func::Defined => Ok(perl_bool(!eval_val(one_arg(f, args)?, scope)?.is_null())),
        Func::Concat => {
            let mut s = String::new();
            for v in list_args(args, scope)? {
                s.push_str(&v.to_str()?);
            }
            Ok(Val::Str(s))
        }
        Func::Array => Ok(Val::Array(
            list_args(args, scope)?
                .into_iter()
                .map(Val::into_value)
                .collect(),
        )),
        Func::Object => {
            let mut m = Map::new();
            let mut it = list_args(args, scope)?.into_iter();
            while let Some(k) = it.next() {
                let v = it.next().unwrap_or(Val::Null);
                m.insert(k.into_string()?, v.into_value());
            }
            Ok(Val::Object(m))
        }
        Func::ToJson => {
            let v = eval_val(one_arg(f, args)?, scope)?;
            match v {
                Val::Array(_) | Val::Object(_) => {
                    let mut s = String::new();
                    canonical_json(&v.into_value(), &mut s);
                    Ok(Val::Str(s))
                }
                _ => Err(ErrorKind::ToJsonScalar),
            }
        }
        Func::FromJson => {
            let text = string_arg(f, args, scope)?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| ErrorKind::Json(format!("malformed JSON string: {e}")))?;
            match v {
                Value::Array(_) | Value::Object(_) => Ok(Val::from_value(v)),
                _ => Err(ErrorKind::FromJsonScalar),
            }
        }
        Func::B64Encode => {
            let bytes = codec::latin1_bytes(&string_arg(f, args, scope)?)?;
            Ok(Val::Str(codec::base64_encode(&bytes, true)))
        }
        Func::B64Decode => {
            let text = string_arg(f, args, scope)?;
            Ok(Val::Str(codec::latin1_string(&codec::base64_decode(&text))))
        }
        Func::Md5 => {
            let bytes = codec::latin1_bytes(&string_arg(f, args, scope)?)?;
            Ok(Val::Str(codec::hex(&codec::md5(&bytes))))
        }
        Func::Md5B64 => {
            let bytes = codec::latin1_bytes(&string_arg(f, args, scope)?)?;
            Ok(Val::Str(codec::base64_encode(&codec::md5(&bytes), false)))
        }
        Func::Keys => match eval_val(one_arg(f, args)?, scope)? {
            Val::Object(m) => Ok(Val::Array(
                m.into_iter().map(|(k, _)| Value::String(k)).collect(),
            )),
            _ => Err(ErrorKind::NotAnObject),
        },
        Func::Values => match eval_val(one_arg(f, args)?, scope)? {
            Val::Object(m) => Ok(Val::Array(m.into_iter().map(|(_, v)| v).collect())),
            _ => Err(ErrorKind::NotAnObject),
        },
        Func::List => match eval_val(one_arg(f, args)?, scope)? {
            v @ (Val::Array(_) | Val::Object(_)) => Ok(v),
            _ => Err(ErrorKind::NotAReference),
        },
    }
}

/// Canonical compact JSON text (sorted keys), the way the original's `tojson` writes it:
/// floats with 15 significant digits and a `.0` when integral.
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.push_str(&n.to_string());
            } else {
                let s = format_float(n.as_f64().unwrap_or(0.0));
                let integral = s.bytes().all(|c| c.is_ascii_digit() || c == b'-');
                out.push_str(&s);
                if integral {
                    out.push_str(".0");
                }
            }
        }
        Value::String(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                if let Some(x) = m.get(k) {
                    canonical_json(x, out);
                }
            }
            out.push('}');
        }
    }
}

/// Perl numification of a JSON value (`tonumber`), as a JSON number.
pub fn to_number_value(v: &Value) -> Result<Value, ErrorKind> {
    let n: Num = Val::from_ref(v).to_num()?;
    Ok(Val::from(n).into_value())
}
