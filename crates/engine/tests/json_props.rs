//! Property tests of the engine's JSON value conversions (issue 10): JSON values go into the
//! evaluator ([`Val::from_value`], [`Val::from_ref`]) and come back ([`Val::into_value`])
//! unchanged, except floats, which are rounded once to 15 significant digits and then stay
//! put; integers keep their exact value over the whole i64/u64 range; Perl truthiness and
//! jsonb containment agree with their definitions on any value.

use jobcenter_engine::eval::value::{self, float_to_value, int_to_value, Val};
use jobcenter_engine::runtime::{contains, object_contains};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// JSON without floats: converting it in and out is the identity.
fn exact_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        prop_oneof![Just(""), Just("0"), Just("0.0"), Just("00"), Just(" ")].prop_map(Value::from),
    ]
}

fn nest(leaf: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    leaf.prop_recursive(3, 48, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec(("[a-d]{0,3}", inner), 0..5)
                .prop_map(|kvs| Value::Object(kvs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn exact_json() -> impl Strategy<Value = Value> {
    nest(exact_leaf().boxed())
}

fn finite() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("finite", |f| f.is_finite())
}

/// Any JSON, floats included.
fn any_json() -> impl Strategy<Value = Value> {
    nest(prop_oneof![exact_leaf(), finite().prop_map(Value::from)].boxed())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn exact_values_round_trip(v in exact_json()) {
        prop_assert_eq!(Val::from_ref(&v), Val::from_value(v.clone()));
        prop_assert_eq!(Val::from_value(v.clone()).into_value(), v);
    }

    #[test]
    fn floats_are_rounded_once_then_stable(f in finite()) {
        let once = Val::from_value(Value::from(f)).into_value();
        prop_assert_eq!(&once, &float_to_value(f));
        let twice = Val::from_value(once.clone()).into_value();
        prop_assert_eq!(&twice, &once);
        if let Some(back) = once.as_f64() {
            if f != 0.0 {
                prop_assert!(((back - f) / f).abs() <= 5e-15, "{} -> {}", f, back);
            }
        }
    }

    #[test]
    fn integers_keep_their_exact_value(i in any::<i64>(), u in any::<u64>()) {
        prop_assert_eq!(int_to_value(i128::from(i)), Value::from(i));
        prop_assert_eq!(int_to_value(i128::from(u)), Value::from(u));
        prop_assert_eq!(Val::from_value(Value::from(i)), Val::Int(i128::from(i)));
        prop_assert_eq!(Val::from_value(Value::from(u)), Val::Int(i128::from(u)));
        // Beyond u64 an integer result is stored as a float (Perl NV).
        let big = i128::from(u) + i128::from(u64::MAX) + 1;
        prop_assert!(int_to_value(big).is_f64());
    }

    #[test]
    fn truthiness_is_the_same_on_json_and_on_values(v in any_json()) {
        prop_assert_eq!(value::is_true(&v), Val::from_ref(&v).is_true());
        let falsy = matches!(&v, Value::Null | Value::Bool(false))
            || v.as_f64() == Some(0.0)
            || v.as_str().is_some_and(|s| s.is_empty() || s == "0");
        prop_assert_eq!(value::is_true(&v), !falsy, "{}", v);
    }

    #[test]
    fn containment_is_reflexive_and_survives_extra_members(
        v in any_json(),
        extra in proptest::collection::vec(("[e-h]{1,3}", any_json()), 0..4),
    ) {
        prop_assert!(contains(&v, &v), "{} does not contain itself", v);
        let mut base = Map::new();
        base.insert("k".to_string(), v.clone());
        let mut wider = base.clone();
        for (k, x) in extra {
            wider.insert(k, x);
        }
        let (base, wider) = (Value::Object(base), Value::Object(wider));
        prop_assert!(contains(&wider, &base));
        if let Value::Object(w) = &wider {
            prop_assert!(object_contains(w, &base));
            prop_assert!(object_contains(w, &Value::Object(Map::new())));
        }
    }
}
