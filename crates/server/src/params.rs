//! Param helpers with the reference's Perl semantics: truthiness, text and number forms.

use serde_json::{Map, Value};

/// Perl truthiness (docs/PROTOCOL.md conventions): absent, `null`, `false`, `0`, `0.0`, `""` and
/// `"0"` are false; everything else (also `{}`, `[]`, `"0.0"`) is true.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !(s.is_empty() || s == "0"),
        Some(Value::Array(_)) | Some(Value::Object(_)) => true,
    }
}

/// The text form of a scalar (strings as they are, numbers in decimal, booleans as Perl
/// prints them); arrays and objects as JSON text.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(true) => "1".into(),
        Value::Bool(false) => String::new(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A required param: its text form when truthy, else `Err(reason)`.
pub fn required(p: &Map<String, Value>, key: &str, reason: &str) -> Result<String, String> {
    let v = p.get(key);
    if truthy(v) {
        Ok(v.map(text).unwrap_or_default())
    } else {
        Err(reason.to_string())
    }
}

/// An optional param's text form when truthy.
pub fn optional(p: &Map<String, Value>, key: &str) -> Option<String> {
    let v = p.get(key);
    truthy(v).then(|| v.map(text).unwrap_or_default())
}

/// Perl numification of a param: numbers as they are, numeric strings parsed (leading
/// numeric part), everything else 0.
pub fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => {
            let t = s.trim_start();
            let end = t
                .char_indices()
                .take_while(|(i, c)| {
                    c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '-' || *c == '+'))
                })
                .map(|(i, c)| i + c.len_utf8())
                .last()
                .unwrap_or(0);
            t[..end].parse().unwrap_or(0.0)
        }
        _ => 0.0,
    }
}

/// The task key a `get_task` `job_id` refers to: numbers in decimal, strings as they are.
pub fn task_key(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn perl_truthiness() {
        for v in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!("0"),
        ] {
            assert!(!truthy(Some(&v)), "{v} is falsy");
        }
        assert!(!truthy(None));
        for v in [
            json!({}),
            json!([]),
            json!("0.0"),
            json!("false"),
            json!(1),
            json!(true),
        ] {
            assert!(truthy(Some(&v)), "{v} is truthy");
        }
    }

    #[test]
    fn numification() {
        assert_eq!(number(&json!(2)), 2.0);
        assert_eq!(number(&json!("3")), 3.0);
        assert_eq!(number(&json!("1.5x")), 1.5);
        assert_eq!(number(&json!("abc")), 0.0);
        assert_eq!(number(&json!("-2")), -2.0);
        assert_eq!(number(&json!({})), 0.0);
    }
}
