//! Inargs and expected-outargs templates: `"$n"`, `"$n+K"` and `"$pad"` placeholders.
//!
//! Every job gets its own number `n`; a string value that is exactly `$n` becomes the
//! number `n`, `$n+K` / `$n-K` become `n ± K`, `$pad` becomes the padding string. So the
//! default `{"input":"$n"}` / `{"output":"$n+3"}` checks each `calladd` result exactly.

use serde_json::{Map, Number, Value};

/// A template with placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(pub Value);

impl Template {
    /// Parse a JSON object template.
    pub fn parse(what: &str, text: &str) -> Result<Template, String> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("{what} is not valid JSON: {e}"))?;
        if !v.is_object() {
            return Err(format!("{what} must be a JSON object"));
        }
        Ok(Template(v))
    }

    /// Add `"key": "$pad"` at the top level (for `--payload`).
    pub fn with_pad(mut self, key: &str) -> Template {
        if let Value::Object(m) = &mut self.0 {
            m.insert(key.to_string(), Value::String("$pad".to_string()));
        }
        self
    }

    /// The template with the placeholders of job `n` filled in.
    pub fn fill(&self, n: i64, pad: &str) -> Value {
        fill(&self.0, n, pad)
    }
}

fn fill(v: &Value, n: i64, pad: &str) -> Value {
    match v {
        Value::String(s) => placeholder(s, n, pad).unwrap_or_else(|| v.clone()),
        Value::Array(a) => Value::Array(a.iter().map(|x| fill(x, n, pad)).collect()),
        Value::Object(m) => {
            let mut out = Map::with_capacity(m.len());
            for (k, x) in m {
                out.insert(k.clone(), fill(x, n, pad));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn placeholder(s: &str, n: i64, pad: &str) -> Option<Value> {
    if s == "$pad" {
        return Some(Value::String(pad.to_string()));
    }
    let rest = s.strip_prefix("$n")?;
    if rest.is_empty() {
        return Some(Value::Number(Number::from(n)));
    }
    let k: i64 = match rest.as_bytes().first()? {
        b'+' => rest[1..].trim().parse().ok()?,
        b'-' => rest[1..].trim().parse::<i64>().ok()?.checked_neg()?,
        _ => return None,
    };
    Some(Value::Number(Number::from(n.checked_add(k)?)))
}

/// Numbers compare by value (`4` equals `4.0`: engines may hand back floats), the rest
/// structurally.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same(p, q)))
        }
        _ => a == b,
    }
}

/// The `add` handler: `{"counter": counter + step}` (step default 1), echoing `pad` if given.
pub fn add(inargs: &Value) -> Result<Value, String> {
    let counter = inargs.get("counter").ok_or("no counter")?;
    let step = inargs.get("step").cloned().unwrap_or(Value::from(1));
    let sum = match (counter.as_i64(), step.as_i64()) {
        (Some(c), Some(s)) => Value::from(c.checked_add(s).ok_or("counter overflow")?),
        _ => match (counter.as_f64(), step.as_f64()) {
            (Some(c), Some(s)) => Number::from_f64(c + s)
                .map(Value::Number)
                .ok_or("counter is not finite")?,
            _ => return Err("counter and step must be numbers".to_string()),
        },
    };
    let mut out = Map::new();
    out.insert("counter".to_string(), sum);
    if let Some(p) = inargs.get("pad") {
        out.insert("pad".to_string(), p.clone());
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_filled() {
        let t = Template(json!({"input": "$n", "x": ["$n+3", "$n-2", "$nope"], "p": "$pad"}));
        assert_eq!(
            t.fill(7, "ab"),
            json!({"input": 7, "x": [10, 5, "$nope"], "p": "ab"})
        );
    }

    #[test]
    fn add_counts_and_echoes_pad() {
        assert_eq!(add(&json!({"counter": 4})), Ok(json!({"counter": 5})));
        assert_eq!(
            add(&json!({"counter": 4, "step": 3, "pad": "x"})),
            Ok(json!({"counter": 7, "pad": "x"}))
        );
        assert!(add(&json!({"step": 3})).is_err());
        assert!(same(&json!({"a": 4.0}), &json!({"a": 4})));
        assert!(!same(&json!({"a": 4}), &json!({"a": 5})));
    }
}
