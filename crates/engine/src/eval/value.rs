//! Perl scalar semantics (docs/JCL.md §2.3) on top of `serde_json::Value`: conversions and operators.
//!
//! Values live as `serde_json::Value` in the job's objects; while an expression is evaluated
//! they travel as [`Val`], which keeps integers exact (the full `i64`/`u64` range Perl's IV/UV
//! covers) and floats at full precision. A float is rounded to 15 significant digits (`%.15g`,
//! docs/JCL.md Appendix D.4) only when it is turned back into a JSON value.
//!
//! All operators are plain functions returning `Result<Val, ErrorKind>`; the caller attaches
//! the line number (see [`crate::eval::EvalError`]).

use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

use super::ErrorKind;

/// Largest string an operator may build (the `x` operator), to keep user data from
/// exhausting memory.
pub const MAX_STRING_LEN: usize = 64 * 1024 * 1024;

/// A runtime value of the expression evaluator (docs/JCL.md §2.3 "Runtime values").
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// JSON null / Perl `undef`.
    Null,
    /// A JSON boolean.
    Bool(bool),
    /// An integer; always within `i64::MIN..=u64::MAX` (Perl IV or UV).
    Int(i128),
    /// A float (Perl NV), full precision.
    Float(f64),
    /// A string.
    Str(String),
    /// A JSON array.
    Array(Vec<Value>),
    /// A JSON object.
    Object(Map<String, Value>),
}

/// A number as the numeric operators see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// An integer within `i64::MIN..=u64::MAX`.
    Int(i128),
    /// A float.
    Float(f64),
}

impl Num {
    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// Build an integer result, falling back to a float outside Perl's IV/UV range.
    pub fn int(i: i128) -> Num {
        if i >= i128::from(i64::MIN) && i <= i128::from(u64::MAX) {
            Num::Int(i)
        } else {
            Num::Float(i as f64)
        }
    }

    /// Is this zero (integer or float)?
    pub fn is_zero(self) -> bool {
        match self {
            Num::Int(i) => i == 0,
            Num::Float(f) => f == 0.0,
        }
    }
}

impl From<Num> for Val {
    fn from(n: Num) -> Val {
        match n {
            Num::Int(i) => Val::Int(i),
            Num::Float(f) => Val::Float(f),
        }
    }
}

/// Perl's true value as a comparison result: the number `1`.
pub fn yes() -> Val {
    Val::Int(1)
}

/// Perl's false value as a comparison result: the empty string.
pub fn no() -> Val {
    Val::Str(String::new())
}

/// `1` or `""` for a Rust boolean (the result of comparisons, `!`, `defined`, `xor`).
pub fn perl_bool(b: bool) -> Val {
    if b {
        yes()
    } else {
        no()
    }
}

pub use jobcenter_backend::json_type_name;

impl Val {
    /// Convert a JSON value (moved, no copy of its content).
    pub fn from_value(v: Value) -> Val {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(b),
            Value::Number(n) => number_to_val(&n),
            Value::String(s) => Val::Str(s),
            Value::Array(a) => Val::Array(a),
            Value::Object(o) => Val::Object(o),
        }
    }

    /// Convert a borrowed JSON value (clones strings and containers).
    pub fn from_ref(v: &Value) -> Val {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => number_to_val(n),
            Value::String(s) => Val::Str(s.clone()),
            Value::Array(a) => Val::Array(a.clone()),
            Value::Object(o) => Val::Object(o.clone()),
        }
    }

    /// Convert back to JSON. Floats are rounded to 15 significant digits (`%.15g`, docs/JCL.md
    /// Appendix D.4); non-finite floats become the strings Perl prints (`Inf`, `-Inf`, `NaN`).
    pub fn into_value(self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Int(i) => int_to_value(i),
            Val::Float(f) => float_to_value(f),
            Val::Str(s) => Value::String(s),
            Val::Array(a) => Value::Array(a),
            Val::Object(o) => Value::Object(o),
        }
    }

    /// Is this `undef` (JSON null)?
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// Perl truthiness: false are null, `false`, `0`, `0.0`, `""` and `"0"`.
    pub fn is_true(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !(s.is_empty() || s == "0"),
            Val::Array(_) | Val::Object(_) => true,
        }
    }

    /// Perl numification (`0 + x`); arrays and objects are an error.
    pub fn to_num(&self) -> Result<Num, ErrorKind> {
        match self {
            Val::Null => Ok(Num::Int(0)),
            Val::Bool(b) => Ok(Num::Int(i128::from(*b))),
            Val::Int(i) => Ok(Num::Int(*i)),
            Val::Float(f) => Ok(Num::Float(*f)),
            Val::Str(s) => Ok(str_to_num(s)),
            Val::Array(_) => Err(ErrorKind::RefAsNumber("an ARRAY")),
            Val::Object(_) => Err(ErrorKind::RefAsNumber("a HASH")),
        }
    }

    /// The operand of an integer-preserving operator (`+ - * **`, unary `-`): like
    /// [`Val::to_num`], but a float that holds an integral value below 2**53 counts as an
    /// integer, as Perl's `SvIV_please` does (`(8 / 2) + 1` is the integer `5`). Strings keep
    /// their numification (`"3.0" + 1` stays a float).
    pub fn arith_num(&self) -> Result<Num, ErrorKind> {
        match self {
            Val::Float(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                Ok(Num::Int(*f as i128))
            }
            other => other.to_num(),
        }
    }

    /// Perl stringification; arrays and objects are an error.
    pub fn to_str(&self) -> Result<Cow<'_, str>, ErrorKind> {
        match self {
            Val::Null => Ok(Cow::Borrowed("")),
            Val::Bool(true) => Ok(Cow::Borrowed("1")),
            Val::Bool(false) => Ok(Cow::Borrowed("0")),
            Val::Int(i) => Ok(Cow::Owned(i.to_string())),
            Val::Float(f) => Ok(Cow::Owned(format_float(*f))),
            Val::Str(s) => Ok(Cow::Borrowed(s.as_str())),
            Val::Array(_) => Err(ErrorKind::RefAsString("an ARRAY")),
            Val::Object(_) => Err(ErrorKind::RefAsString("a HASH")),
        }
    }

    /// Stringification consuming the value (avoids a copy for strings).
    pub fn into_string(self) -> Result<String, ErrorKind> {
        match self {
            Val::Str(s) => Ok(s),
            other => other.to_str().map(Cow::into_owned),
        }
    }
}

/// Is a JSON value true in Perl's sense (docs/JCL.md §2.3 "Truthiness")?
pub fn is_true(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => match number_to_val(n) {
            Val::Int(i) => i != 0,
            Val::Float(f) => f != 0.0,
            _ => true,
        },
        Value::String(s) => !(s.is_empty() || s == "0"),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Perl stringification of a JSON value (case values, lock values); arrays and objects
/// are an error.
pub fn to_perl_string(v: &Value) -> Result<String, ErrorKind> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Val::from_ref(other).into_string(),
    }
}

fn number_to_val(n: &Number) -> Val {
    if let Some(i) = n.as_i64() {
        Val::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Val::Int(i128::from(u))
    } else {
        Val::Float(n.as_f64().unwrap_or(0.0))
    }
}

/// An integer result as JSON (i64 or u64; outside both it is stored as a float).
pub fn int_to_value(i: i128) -> Value {
    if let Ok(v) = i64::try_from(i) {
        Value::Number(Number::from(v))
    } else if let Ok(v) = u64::try_from(i) {
        Value::Number(Number::from(v))
    } else {
        float_to_value(i as f64)
    }
}

/// A float result as JSON, rounded to 15 significant digits like the original's JSON output.
pub fn float_to_value(f: f64) -> Value {
    if !f.is_finite() {
        return Value::String(format_float(f));
    }
    let rounded = format_float(f).parse::<f64>().unwrap_or(f);
    match Number::from_f64(rounded) {
        Some(n) => Value::Number(n),
        None => Value::String(format_float(f)),
    }
}

/// Format a float like Perl does (`%.15g`): `0.1+0.2` → `0.3`, `3.0` → `3`, `1e21` →
/// `1e+21`, infinities `Inf`/`-Inf`, not-a-number `NaN`.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // 15 significant digits in scientific notation; the exponent is the one after rounding.
    let sci = format!("{:.14e}", f);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    if !(-4..15).contains(&exp) {
        let m = strip_fraction_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = usize::try_from(14 - exp).unwrap_or(0);
        let fixed = format!("{:.*}", decimals, f);
        strip_fraction_zeros(&fixed).to_string()
    }
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn is_perl_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// Perl numification of a string: the longest numeric prefix after leading whitespace.
/// A plain integer (optionally signed, optionally surrounded by whitespace) that fits in
/// Perl's IV/UV range gives an integer, everything else a float (`"12abc"` → `12.0`,
/// `"abc"` → `0.0`).
pub fn str_to_num(s: &str) -> Num {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_perl_space(b[i]) {
        i += 1;
    }
    let start = i;
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    // Inf / Infinity / NaN, case-insensitive.
    let rest = &s[i..];
    let lower: String = rest
        .chars()
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    if lower.starts_with("inf") {
        return Num::Float(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if lower.starts_with("nan") {
        return Num::Float(f64::NAN);
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    let mut is_int = true;
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        frac_digits = j - i - 1;
        if int_digits > 0 || frac_digits > 0 {
            i = j;
            is_int = false;
        }
    }
    if int_digits == 0 && frac_digits == 0 {
        return Num::Float(0.0);
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
            is_int = false;
        }
    }
    let num_text = &s[start..i];
    let mut k = i;
    while k < b.len() && is_perl_space(b[k]) {
        k += 1;
    }
    let whole = k == b.len();
    if is_int && whole {
        if let Ok(v) = num_text.parse::<i128>() {
            if v >= i128::from(i64::MIN) && v <= i128::from(u64::MAX) {
                return Num::Int(v);
            }
        }
    }
    Num::Float(num_text.parse::<f64>().unwrap_or(0.0))
}

// ---------------------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------------------

/// `+`: integer when both operands are integers and the result fits, else float.
pub fn add(l: &Val, r: &Val) -> Result<Val, ErrorKind> {
    Ok(match (l.arith_num()?, r.arith_num()?) {
        (Num::Int(a), Num::Int(b)) => Num::int(a + b),
        (a, b) => Num::Float(a.as_f64() + b.as_f64()),
    }
    .into())
}

/// `-` (binary).
pub fn sub(l: &Val, r: &Val) -> Result<Val, ErrorKind> {
    Ok(match (l.arith_num()?, r.arith_num()?) {
        (Num::Int(a), Num::Int(b)) => Num::int(a - b),
        (a, b) => Num::Float(a.as_f64() - b.as_f64()),
    }
    .into())
}

/// `*`.
pub fn mul(l: &Val, r: &Val) -> Result<Val, ErrorKind> {
    Ok(match (l.arith_num()?, r.arith_num()?) {
        (Num::Int(a), Num::Int(b)) => match a.checked_mul(b) {
            Some(p) => Num::int(p),
            None => Num::Float(a as f64 * b as f64),
        },
        (a, b) => Num::Float(a.as_f64() * b.as_f64()),
    }
    .into())
}

/// `/`: always a float; division by zero is `Illegal division by zero`.
pub fn div(l: &Val, r: &Val) -> Result<Val, ErrorKind> {
    let (a, b) = (l.to_num()?, r.to_num()?);
    if b.is_zero() {
        return Err(ErrorKind::DivisionByZero);
    }
    Ok(Val::Float(a.as_f64() / b.as_f64()))
}

fn to_integer_for_modulus(n: Num) -> Option<i128> {
    match n {
        Num::Int(i) => Some(i),
        Num::Float(f) if f.is_finite() && f.abs() < 18_446_744_073_709_551_616.0 => {
            Some(f.trunc() as i128)
        }
        Num::Float(_) => None,
    }
}

/// `%`: operands truncated to integers, result has the sign of the right operand;
/// a zero right operand is `Illegal modulus zero`.
pub fn modulus(l: &Val, r: &Val) -> Result<Val, ErrorKind> {
    let (a, b) = (l.to_num()?, r.to_num()?);
    match (to_integer_for_modulus(a), to_integer_for_modulus(b)) {
        (Some(x), Some(y)) => {
            if y == 0 {
                return Err(ErrorKind::ModulusZero);
            }
            let mut m = x % y;
            if m != 0 && ((m < 0) != (y < 0)) {
                m += y;
            }
            Ok(Num::int(m).into())
        }
        _ => {
            // Huge or non-finite operands: float modulus with Perl's sign rule.
            let (x, y) = (a.as_f64().trunc(), b.as_f64().trunc());
            if y == 0.0 {
                return Err(ErrorKind::ModulusZero);
            }
            let mut m = x % y;
            if m != 0.0 && ((m < 0.0) != (y < 0.0)) {
                m += y;
            }
            Ok(Val::Float(m))
        }
    }
}

/// `**`: a float, except (Appendix D.2) an integer base that is not a power of two raised to
/// a non-negative integer exponent whose result fits an integer.
pub fn pow(l: &Val, r: &Val) -> Result<Val, ErrorKind> {
    let (a, b) = (l.arith_num()?, r.arith_num()?);
    let result = a.as_f64().powf(b.as_f64());
    if let (Num::Int(base), Num::Int(exp)) = (a, b) {
        let mag = base.unsigned_abs();
        let power_of_two = mag & mag.wrapping_sub(1) == 0;
        if exp >= 0 && !power_of_two {
            if let Ok(e) = u32::try_from(exp) {
                if let Some(p) = base.checked_pow(e) {
                    if p >= i128::from(i64::MIN) && p <= i128::from(i64::MAX) {
                        return Ok(Val::Int(p));
                    }
                }
            }
        }
    }
    Ok(Val::Float(result))
}

/// Unary `-`: numeric negation; a string starting with a letter or `_` gives `"-string"`,
/// one starting with `-` gives `"+rest"` and one with `+` gives `"-rest"` (Perl rules).
pub fn negate(v: &Val) -> Result<Val, ErrorKind> {
    if let Val::Str(s) = v {
        let first = s.chars().next();
        let numeric_looking = {
            let t = s.trim_start_matches(|c: char| c.is_ascii() && is_perl_space(c as u8));
            t.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                || ((t.starts_with('+') || t.starts_with('-'))
                    && t[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.'))
                || str_looks_like_special(t)
        };
        if !numeric_looking {
            match first {
                Some(c) if c.is_alphabetic() || c == '_' => return Ok(Val::Str(format!("-{s}"))),
                Some('-') => return Ok(Val::Str(format!("+{}", &s[1..]))),
                Some('+') => return Ok(Val::Str(format!("-{}", &s[1..]))),
                _ => {}
            }
        }
    }
    Ok(match v.arith_num()? {
        Num::Int(i) => Num::int(-i),
        Num::Float(f) => Num::Float(-f),
    }
    .into())
}

fn str_looks_like_special(t: &str) -> bool {
    let t = t.trim_start_matches(['+', '-']);
    let lower = t.get(..3).map(str::to_ascii_lowercase);
    matches!(lower.as_deref(), Some("inf") | Some("nan"))
}

/// Unary `+`: returns the operand unchanged.
pub fn plus(v: Val) -> Val {
    v
}

/// `.`: string concatenation.
pub fn concat(l: &Val, r: &Val) -> Result<Val, ErrorKind> {
    let a = l.to_str()?;
    let b = r.to_str()?;
    let mut s = String::with_capacity(a.len() + b.len());
    s.push_str(&a);
    s.push_str(&b);
    Ok(Val::Str(s))
}

/// `x`: the left string repeated `int(right)` times (`""` for counts ≤ 0).
pub fn repeat(l: &Val, r: &Val) -> Result<Val, ErrorKind> {
    let s = l.to_str()?;
    let count = match r.to_num()? {
        Num::Int(i) => i,
        Num::Float(f) if f.is_finite() => f.trunc() as i128,
        Num::Float(_) => 0,
    };
    if count <= 0 || s.is_empty() {
        return Ok(no());
    }
    let total = (s.len() as u128).saturating_mul(count as u128);
    if total > MAX_STRING_LEN as u128 {
        return Err(ErrorKind::OutOfMemory);
    }
    // `count` is bounded by MAX_STRING_LEN here, so the conversion cannot fail.
    Ok(Val::Str(s.repeat(usize::try_from(count).unwrap_or(0))))
}

/// Numeric comparison (`None` if either side is NaN).
pub fn num_cmp(l: &Val, r: &Val) -> Result<Option<Ordering>, ErrorKind> {
    Ok(match (l.to_num()?, r.to_num()?) {
        (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
        (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
    })
}

/// String comparison in code point order.
pub fn str_cmp(l: &Val, r: &Val) -> Result<Ordering, ErrorKind> {
    Ok(l.to_str()?.as_ref().cmp(r.to_str()?.as_ref()))
}

/// `eq`: string equality, with the boolean quirk (Appendix D.5): when the *left* operand is a
/// JSON boolean, `'true'`/`'false'` compare by truth value and anything else compares by
/// truthiness (`false eq ''` and `false eq '0'` are both true).
pub fn str_eq(l: &Val, r: &Val) -> Result<bool, ErrorKind> {
    if let Val::Bool(b) = l {
        if let Val::Str(s) = r {
            if s == "true" {
                return Ok(*b);
            }
            if s == "false" {
                return Ok(!*b);
            }
        }
        if matches!(r, Val::Array(_) | Val::Object(_)) {
            return Err(ErrorKind::RefAsString(if matches!(r, Val::Array(_)) {
                "an ARRAY"
            } else {
                "a HASH"
            }));
        }
        return Ok(*b == r.is_true());
    }
    Ok(l.to_str()? == r.to_str()?)
}

/// The comparison and equality operators, by their JCL spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    NumEq,
    /// `!=`
    NumNe,
    /// `<`
    NumLt,
    /// `>`
    NumGt,
    /// `<=`
    NumLe,
    /// `>=`
    NumGe,
    /// `eq`
    StrEq,
    /// `ne`
    StrNe,
    /// `lt`
    StrLt,
    /// `gt`
    StrGt,
    /// `le`
    StrLe,
    /// `ge`
    StrGe,
}

/// Apply a comparison operator; the result is `1` or `""`.
pub fn compare(op: CmpOp, l: &Val, r: &Val) -> Result<Val, ErrorKind> {
    use CmpOp::*;
    let b = match op {
        NumEq => num_cmp(l, r)? == Some(Ordering::Equal),
        NumNe => num_cmp(l, r)? != Some(Ordering::Equal),
        NumLt => num_cmp(l, r)? == Some(Ordering::Less),
        NumGt => num_cmp(l, r)? == Some(Ordering::Greater),
        NumLe => matches!(num_cmp(l, r)?, Some(Ordering::Less | Ordering::Equal)),
        NumGe => matches!(num_cmp(l, r)?, Some(Ordering::Greater | Ordering::Equal)),
        StrEq => str_eq(l, r)?,
        StrNe => !str_eq(l, r)?,
        StrLt => str_cmp(l, r)? == Ordering::Less,
        StrGt => str_cmp(l, r)? == Ordering::Greater,
        StrLe => str_cmp(l, r)? != Ordering::Greater,
        StrGe => str_cmp(l, r)? != Ordering::Less,
    };
    Ok(perl_bool(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_float_matches_perl_g15() {
        assert_eq!(format_float(0.1 + 0.2), "0.3");
        assert_eq!(format_float(3.0), "3");
        assert_eq!(format_float(1e21), "1e+21");
        assert_eq!(format_float(1e15), "1e+15");
        assert_eq!(format_float(1e14), "100000000000000");
        assert_eq!(format_float(1.0 / 3.0), "0.333333333333333");
        assert_eq!(format_float(0.0001), "0.0001");
        assert_eq!(format_float(0.00001), "1e-05");
        assert_eq!(format_float(-2.5), "-2.5");
        assert_eq!(format_float(3.5), "3.5");
        assert_eq!(format_float(f64::INFINITY), "Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(123456789012345680.0), "1.23456789012346e+17");
    }

    #[test]
    fn numification_of_strings() {
        assert_eq!(str_to_num("7"), Num::Int(7));
        assert_eq!(str_to_num(" -7 "), Num::Int(-7));
        assert_eq!(str_to_num("12abc"), Num::Float(12.0));
        assert_eq!(str_to_num("abc"), Num::Float(0.0));
        assert_eq!(str_to_num(""), Num::Float(0.0));
        assert_eq!(str_to_num("3.5x"), Num::Float(3.5));
        assert_eq!(str_to_num(".5"), Num::Float(0.5));
        assert_eq!(str_to_num("1e3"), Num::Float(1000.0));
        assert_eq!(str_to_num("1e"), Num::Float(1.0));
        assert_eq!(str_to_num("0x10"), Num::Float(0.0));
        assert_eq!(
            str_to_num("18446744073709551615"),
            Num::Int(18446744073709551615)
        );
        assert_eq!(
            str_to_num("18446744073709551616"),
            Num::Float(18446744073709551616.0)
        );
        assert_eq!(str_to_num("-inf"), Num::Float(f64::NEG_INFINITY));
        assert!(matches!(str_to_num("NaN"), Num::Float(f) if f.is_nan()));
    }
}
