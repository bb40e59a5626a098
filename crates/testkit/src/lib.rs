//! Test support shared by the crates' tests (not used by any program): result matching.
//!
//! Expected job results in the JCL tests (docs/JCL.md Part 4) name values that differ
//! from run to run (job ids, child job ids, task ids, event ids) by placeholders: `<J>`,
//! `<C>`, `<C1>`, `<T>`, `<E>`, i.e. `<`, upper-case letters or digits, `>`. [`matches()`]
//! compares such an expected value with an actual one; [`text_matches`] does it for text.
//!
//! [`cases`] reads expected runs from a fixture file that several suites check (the engine's
//! own tests and the end-to-end suite run the same docs/JCL.md Part 4 cases), and
//! [`reference`](mod@reference) computes what the reference workers of docs/JCL.md Part 4 answer.

use serde_json::{Number, Value};

/// Does `actual` match `expected`?
///
/// - a placeholder string (`"<J>"`) matches any number, or a string of one or more digits;
/// - inside a longer string each placeholder matches one or more digits, the rest must be
///   equal ([`text_matches`]);
/// - numbers compare by value (`2` matches `2.0`; integers exactly, not through `f64`);
/// - arrays element by element, objects member by member with the same keys (order
///   irrelevant); everything else must be equal.
///
/// ```
/// use jobcenter_testkit::matches;
/// use serde_json::json;
/// assert!(matches(&json!({"job": "<J>", "n": 2}), &json!({"n": 2.0, "job": 17})));
/// assert!(!matches(&json!({"job": "<J>", "n": 2}), &json!({"n": 3, "job": 17})));
/// ```
pub fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(p), Value::Number(_)) => is_placeholder(p),
        (Value::String(p), Value::String(s)) => text_matches(p, s),
        (Value::Number(a), Value::Number(b)) => same_number(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| matches(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| matches(v, w)))
        }
        (a, b) => a == b,
    }
}

/// Numbers by value: integers exactly, otherwise as `f64`.
fn same_number(a: &Number, b: &Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => a.as_f64() == b.as_f64(),
    }
}

/// `<J>`, `<C1>`, `<T>`: `<`, one or more upper-case letters or digits, `>`.
pub fn is_placeholder(p: &str) -> bool {
    p.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .is_some_and(|inner| {
            !inner.is_empty()
                && inner
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
}

/// Text comparison where each placeholder of `pattern` stands for one or more digits and
/// everything else (including `<b>`, which is no placeholder) must be equal.
///
/// ```
/// use jobcenter_testkit::text_matches;
/// assert!(text_matches("childjob <C> raised error", "childjob 42 raised error"));
/// assert!(!text_matches("childjob <C> raised error", "childjob x raised error"));
/// ```
pub fn text_matches(pattern: &str, text: &str) -> bool {
    let Some(open) = pattern.find('<') else {
        return pattern == text;
    };
    let Some(close) = pattern[open..].find('>').map(|c| open + c) else {
        return pattern == text;
    };
    let (lit, ph, rest) = (
        &pattern[..open],
        &pattern[open..=close],
        &pattern[close + 1..],
    );
    let Some(after_lit) = text.strip_prefix(lit) else {
        return false;
    };
    if !is_placeholder(ph) {
        return after_lit
            .strip_prefix(ph)
            .is_some_and(|t| text_matches(rest, t));
    }
    let digits = after_lit.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && text_matches(rest, &after_lit[digits..])
}

pub mod reference {
    //! What the reference workers of docs/JCL.md Part 4 answer (`c_slow` never does), for
    //! the engine's tests (driving the engine directly) and the end-to-end suite (as
    //! actions of our worker library).

    use serde_json::{json, Value};

    /// A JSON number for `x`: an integer when it has no fraction (so `5 + 1` gives `6`).
    pub fn number(x: f64) -> Value {
        if x.fract() == 0.0 && x.abs() < 9.0e15 {
            json!(x as i64)
        } else {
            json!(x)
        }
    }

    /// `c_add`: `{"counter": counter + step}`.
    pub fn c_add(inargs: &Value) -> Value {
        let c = inargs["counter"].as_f64().unwrap_or(0.0);
        let s = inargs["step"].as_f64().unwrap_or(0.0);
        json!({ "counter": number(c + s) })
    }

    /// `c_fail`, by input `what`.
    pub fn c_fail(inargs: &Value) -> Value {
        match inargs["what"].as_str().unwrap_or("") {
            "string" => json!({"error": "plain string error"}),
            "object" => json!({"error": {"msg": "it broke", "class": "myclass", "extra": 42}}),
            "fatal" => json!({"error": {"msg": "fatal from worker", "class": "fatal"}}),
            "wrongtype" => json!({"res": 42}),
            "empty" => json!({}),
            _ => json!({"res": "fine"}),
        }
    }

    /// `c_echo`: `{"y": {"inargs": <inputs>, "env": <env>}}`.
    pub fn c_echo(inargs: &Value, env: &Value) -> Value {
        json!({"y": {"inargs": inargs, "env": env}})
    }

    /// `c_soft` on attempt `n` (from 1): a soft error while `n <= x`, then `{"y": n}`.
    pub fn c_soft(inargs: &Value, n: i64) -> Value {
        let x = inargs["x"].as_f64().unwrap_or(0.0);
        if (n as f64) <= x {
            json!({"error": {"class": "soft", "msg": format!("attempt {n} failed")}})
        } else {
            json!({ "y": n })
        }
    }
}

/// The entry `key` of a fixture text, as `T`.
pub fn entry<T: serde::de::DeserializeOwned>(fixture: &str, key: &str) -> Result<T, String> {
    let all: Value = serde_json::from_str(fixture).map_err(|e| format!("fixture: {e}"))?;
    let v = all
        .get(key)
        .cloned()
        .ok_or_else(|| format!("fixture: no entry {key}"))?;
    serde_json::from_value(v).map_err(|e| format!("fixture: {key}: {e}"))
}

/// What a run must give.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// The job finishes with these outargs (compared with [`matches()`]).
    Out(Value),
    /// `create_job` is refused with this message.
    Rejected(String),
}

/// One expected run of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The workflow.
    pub wf: String,
    /// Its input arguments.
    pub inargs: Value,
    /// What it must give.
    pub expect: Expect,
}

/// The cases under `key` of a fixture text: `{"KEY": [{"wf": .., "in": .., "out": ..}, {"wf":
/// .., "in": .., "rejected": "message"}, ..], ..}`. An error names what is wrong; a key
/// without cases is an error too (a test that checks nothing must not pass).
pub fn cases(fixture: &str, key: &str) -> Result<Vec<Case>, String> {
    let all: Value = serde_json::from_str(fixture).map_err(|e| format!("fixture: {e}"))?;
    let list = all
        .get(key)
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| format!("fixture: no cases for {key}"))?;
    list.iter()
        .map(|c| {
            let wf = c.get("wf").and_then(Value::as_str);
            let expect = match (c.get("out"), c.get("rejected").and_then(Value::as_str)) {
                (Some(out), None) => Some(Expect::Out(out.clone())),
                (None, Some(msg)) => Some(Expect::Rejected(msg.to_string())),
                _ => None,
            };
            match (wf, c.get("in"), expect) {
                (Some(wf), Some(inargs), Some(expect)) => Ok(Case {
                    wf: wf.to_string(),
                    inargs: inargs.clone(),
                    expect,
                }),
                _ => Err(format!(
                    "fixture: {key}: a case needs wf, in, and out or rejected: {c}"
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value_and_a_wrong_value_fails() {
        assert!(matches(&json!({"a": 2}), &json!({"a": 2.0})));
        assert!(!matches(&json!({"a": 2}), &json!({"a": 3})));
        assert!(!matches(&json!(2), &json!(2.5)));
        assert!(!matches(&json!(2), &json!("2")));
        // beyond f64's 53 bits: still told apart
        assert!(!matches(
            &json!(9_007_199_254_740_993_i64),
            &json!(9_007_199_254_740_992_i64)
        ));
        assert!(matches(&json!(u64::MAX), &json!(u64::MAX)));
    }

    #[test]
    fn a_placeholder_matches_ids_and_nothing_else() {
        assert!(matches(&json!("<J>"), &json!(17)));
        assert!(matches(&json!("<C1>"), &json!("123")));
        assert!(!matches(&json!("<J>"), &json!("abc")));
        assert!(!matches(&json!("<J>"), &json!("")));
        assert!(!matches(&json!("<J>"), &json!(null)));
        assert!(!matches(&json!("<J>"), &json!([1])));
        // not placeholders: compared as text
        assert!(!matches(&json!("<j>"), &json!(17)));
        assert!(!matches(&json!("<>"), &json!(17)));
        assert!(matches(&json!("a<b>c"), &json!("a<b>c")));
        assert!(!matches(&json!("a<b>c"), &json!("a1c")));
    }

    #[test]
    fn placeholders_inside_text_match_digits_only() {
        assert!(text_matches(
            "timeout for job <J> in task <T>",
            "timeout for job 4 in task 77"
        ));
        assert!(!text_matches(
            "timeout for job <J> in task <T>",
            "timeout for job 4 in task x"
        ));
        assert!(!text_matches(
            "childjob <C> raised error",
            "childjob x raised error"
        ));
        assert!(!text_matches("job <J>", "job "));
        assert!(!text_matches("job <J>", "job 12 and more"));
        assert!(!text_matches("job <J> done", "task 12 done"));
    }

    #[test]
    fn structures_must_match_member_by_member() {
        assert!(!matches(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!matches(&json!({"a": 1, "b": 2}), &json!({"a": 1})));
        assert!(!matches(&json!({"a": 1}), &json!({"b": 1})));
        assert!(!matches(&json!([1, 2]), &json!([2, 1])));
        assert!(!matches(&json!([1]), &json!([1, 1])));
        assert!(matches(
            &json!({"x": [{"id": "<J>"}], "y": true}),
            &json!({"y": true, "x": [{"id": 9}]})
        ));
        assert!(!matches(&json!(true), &json!(false)));
    }

    #[test]
    fn fixture_cases_are_read_and_checked() {
        let text = r#"{"C1": [{"wf": "a", "in": {"x": 1}, "out": {"y": 2}},
                             {"wf": "a", "in": {}, "rejected": "no x"}],
                      "C2": [], "C3": [{"wf": "a", "in": {}}]}"#;
        let got = cases(text, "C1").expect("C1");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].expect, Expect::Out(json!({"y": 2})));
        assert_eq!(got[1].expect, Expect::Rejected("no x".into()));
        assert!(cases(text, "C2").is_err(), "no cases");
        assert!(cases(text, "C3").is_err(), "no expectation");
        assert!(cases(text, "C4").is_err(), "no key");
        assert!(cases("not json", "C1").is_err());
    }

    #[test]
    fn reference_results() {
        use reference::*;
        assert_eq!(
            c_add(&json!({"counter": 5, "step": 1})),
            json!({"counter": 6})
        );
        assert_eq!(
            c_add(&json!({"counter": 0.5, "step": 1})),
            json!({"counter": 1.5})
        );
        assert_eq!(c_fail(&json!({"what": "empty"})), json!({}));
        assert_eq!(
            c_soft(&json!({"x": 1}), 1),
            json!({"error": {"class": "soft", "msg": "attempt 1 failed"}})
        );
        assert_eq!(c_soft(&json!({"x": 1}), 2), json!({"y": 2}));
    }
}
