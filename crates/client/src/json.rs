//! Small JSON helpers: job ids that arrive as numbers or strings, Perl truthiness, wrapping.

use serde_json::{json, Map, Value};

/// A job id from a JSON value: a non-negative integer number or a decimal digit string.
///
/// ```
/// use serde_json::json;
/// assert_eq!(jobcenter::json::job_id_of(&json!(6)), Some(6));
/// assert_eq!(jobcenter::json::job_id_of(&json!("6")), Some(6));
/// assert_eq!(jobcenter::json::job_id_of(&json!("x6")), None);
/// assert_eq!(jobcenter::json::job_id_of(&json!(null)), None);
/// ```
pub fn job_id_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().filter(|i| *i >= 0),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<i64>().ok()
        }
        _ => None,
    }
}

/// Perl truthiness as the protocol uses it: absent, `null`, `false`, `0`, `0.0`, `""` and
/// `"0"` are false, everything else (including `{}`, `[]` and `"0.0"`) is true.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().map(|f| f != 0.0).unwrap_or(true),
        Some(Value::String(s)) => !(s.is_empty() || s == "0"),
        Some(_) => true,
    }
}

/// The Perl client's `wrap`: an object stays as it is, anything else becomes `{"error": x}`.
pub fn wrap(v: Value) -> Value {
    if v.is_object() {
        v
    } else {
        json!({ "error": v })
    }
}

/// `{"error": text}`.
pub fn error_value(text: impl Into<String>) -> Value {
    json!({ "error": text.into() })
}

/// Whether outargs denote an error: an object with a top-level `error` member.
pub fn is_error_outargs(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.contains_key("error"))
}

/// Build a params object from pairs.
pub(crate) fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = Map::with_capacity(N);
    for (k, v) in pairs {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

/// A duration as the JSON number of seconds (an integer when whole).
pub(crate) fn seconds(d: std::time::Duration) -> Value {
    if d.subsec_nanos() == 0 {
        Value::from(d.as_secs())
    } else {
        Value::from(d.as_secs_f64())
    }
}
