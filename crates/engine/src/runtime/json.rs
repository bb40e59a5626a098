//! JSON helpers of the runtime: PostgreSQL `jsonb @>` containment, error values.

use serde_json::{Map, Value};

/// `haystack @> needle` with jsonb rules: objects contain every key of the needle with a
/// containing value, arrays contain every needle element somewhere (a scalar needle is
/// contained in an array holding it), scalars are equal (numbers by value).
pub fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::Object(h), Value::Object(_)) => object_contains(h, needle),
        (Value::Array(h), Value::Array(n)) => n
            .iter()
            .all(|nv| h.iter().any(|hv| contains_nested(hv, nv))),
        (Value::Array(h), n) if !n.is_object() => h.iter().any(|hv| scalar_eq(hv, n)),
        (h, n) => scalar_eq(h, n),
    }
}

/// Inside arrays a scalar only matches a scalar (no "array contains scalar" shortcut).
fn contains_nested(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => {
            contains(haystack, needle)
        }
        (h, n) => scalar_eq(h, n),
    }
}

/// `object @> needle` for an object haystack (avoids building a `Value`).
pub fn object_contains(haystack: &Map<String, Value>, needle: &Value) -> bool {
    match needle {
        Value::Object(n) => n
            .iter()
            .all(|(k, nv)| haystack.get(k).is_some_and(|hv| contains(hv, nv))),
        _ => false,
    }
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(_), _) | (Value::Object(_), _) => false,
        _ => a == b,
    }
}

/// An engine-raised error value `{"msg": msg, "class": class}`.
pub fn error_value(msg: impl Into<String>, class: &str) -> Value {
    let mut m = Map::new();
    m.insert("msg".into(), Value::String(msg.into()));
    m.insert("class".into(), Value::String(class.into()));
    Value::Object(m)
}

/// The catch rule (docs/JCL.md §2.10 with Appendix D.1): everything is catchable except an
/// object whose `class` is `"fatal"` or JSON `null`, and the string `"class"`.
pub fn catchable(err: &Value) -> bool {
    match err {
        Value::Object(o) => {
            !matches!(o.get("class"), Some(Value::Null))
                && o.get("class").and_then(Value::as_str) != Some("fatal")
        }
        Value::String(s) => s != "class",
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jsonb_containment() {
        let h = json!({"a": 1, "b": {"c": [1, 2, {"d": 3}]}, "s": "x"});
        assert!(contains(&h, &json!({"a": 1.0})));
        assert!(contains(&h, &json!({"b": {"c": [2]}})));
        assert!(contains(&h, &json!({"b": {"c": [{"d": 3}]}})));
        assert!(!contains(&h, &json!({"b": {"c": [3]}})));
        assert!(!contains(&h, &json!({"a": "1"})));
        assert!(!contains(&h, &json!({"z": null})));
        assert!(contains(&json!(["foo", "bar"]), &json!("foo")));
    }

    #[test]
    fn catch_rule() {
        assert!(!catchable(&json!({"class": "fatal"})));
        assert!(!catchable(&json!({"class": null})));
        assert!(!catchable(&json!("class")));
        assert!(catchable(&json!("fatal")));
        assert!(catchable(&json!({"msg": "x"})));
        assert!(catchable(&json!(null)));
        assert!(catchable(&json!({"class": "abort"})));
    }
}
