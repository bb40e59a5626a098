//! Input/output type checks and their exact messages (docs/JCL.md §2.5; cases C02–C06, C20, C28).

use jobcenter_engine::eval::types::{
    check_inputs, check_inputs_owned, check_outputs, validate, IoSpec, IoType, SchemaRegistry,
    TypeError,
};
use serde_json::{json, Map, Value};

fn o(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn spec(name: &str, ty: &str) -> IoSpec {
    let reg = SchemaRegistry::new();
    IoSpec {
        name: name.into(),
        ty: reg.resolve(ty, name, true).unwrap(),
        default: None,
        optional: false,
    }
}

#[test]
fn jcl_c02_missing_and_ill_typed_inputs() {
    let s = [spec("input", "number")];
    let err = check_inputs(&s, &o(json!({"input": "x"}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"input argument "input" has wrong type string (should be number)"#
    );
    assert_eq!(err.sqlstate(), "P0001");
    let err = check_inputs(&s, &o(json!({}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"required input argument "input" not found"#
    );
    assert_eq!(
        check_inputs(&s, &o(json!({"input": 5}))).unwrap(),
        o(json!({"input": 5}))
    );
    assert!(
        check_inputs(&s, &o(json!({"input": 5.5}))).is_ok(),
        "number accepts floats"
    );
}

#[test]
fn jcl_c03_defaults_null_and_extra_arguments() {
    let s = [
        spec("n", "number").with_default(json!(10)),
        spec("s", "string").with_default(json!("dflt")),
        spec("o", "object"),
    ];
    assert_eq!(
        Value::Object(check_inputs(&s, &o(json!({"o": {"z": [1, 2]}}))).unwrap()),
        json!({"n": 10, "s": "dflt", "o": {"z": [1, 2]}})
    );
    assert_eq!(
        Value::Object(check_inputs(&s, &o(json!({"n": null, "s": null, "o": null}))).unwrap()),
        json!({"n": null, "s": null, "o": null})
    );
    assert_eq!(
        Value::Object(check_inputs_owned(&s, o(json!({"o": {}, "extra": true}))).unwrap()),
        json!({"n": 10, "s": "dflt", "o": {}, "extra": true})
    );
    assert_eq!(
        check_inputs(&s, &o(json!({"o": [1]})))
            .unwrap_err()
            .to_string(),
        r#"input argument "o" has wrong type array (should be object)"#
    );
}

#[test]
fn jcl_c20_defaults_are_inserted_without_type_checking() {
    // The parser supplies the JSON value of a default; the check inserts it as is.
    let s = [
        spec("op", "string").with_default(json!("\"+\"")),
        spec("b", "boolean").with_default(json!(false)),
        spec("nl", "string").with_default(json!(null)),
        spec("n", "number").with_default(json!(-2.5)),
        spec("odd", "number").with_default(json!("not a number")),
    ];
    assert_eq!(
        Value::Object(check_inputs(&s, &Map::new()).unwrap()),
        json!({"op": "\"+\"", "b": false, "nl": null, "n": -2.5, "odd": "not a number"})
    );
}

#[test]
fn jcl_c04_schema_type_integer() {
    let s = [spec("n", "integer")];
    assert!(check_inputs(&s, &o(json!({"n": 3}))).is_ok());
    assert!(check_inputs(&s, &o(json!({"n": 3.0}))).is_ok());
    let msg = |v: Value| {
        check_inputs(&s, &o(json!({ "n": v })))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        msg(json!(1.5)),
        "input argument \"n\" with value \"1.5\" does not validate against schema:\\n\"{\n    \"type\": \"integer\"\n}\""
    );
    assert_eq!(
        msg(json!("1")),
        "input argument \"n\" with value \"\"1\"\" does not validate against schema:\\n\"{\n    \"type\": \"integer\"\n}\""
    );
    assert_eq!(
        msg(json!(null)),
        "input argument \"n\" with value \"null\" does not validate against schema:\\n\"{\n    \"type\": \"integer\"\n}\""
    );
}

#[test]
fn jcl_c05_required_output_missing_and_optional() {
    let s = [spec("r", "number"), spec("opt", "string").optional()];
    let err = check_outputs(&s, &o(json!({"opt": "only opt"}))).unwrap_err();
    assert_eq!(err.to_string(), "required output parameter r not found");
    assert!(
        check_outputs(&s, &o(json!({"r": 1}))).is_ok(),
        "optional may be absent"
    );
    assert!(check_outputs(&s, &o(json!({"r": null, "opt": null, "extra": [1]}))).is_ok());
}

#[test]
fn jcl_c06_output_of_wrong_type() {
    let s = [spec("r", "number")];
    let err = check_outputs(&s, &o(json!({"r": "not a number"}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ouput parameter r has wrong type string (should be number)"
    );
    let s = [spec("r", "integer")];
    let err = check_outputs(&s, &o(json!({"r": 1.5}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "output parameter \"r\" with value \"1.5\" does not validate against schema:\n\"{\n    \"type\": \"integer\"\n}\""
    );
}

#[test]
fn jcl_c28_implicit_input_checks() {
    // call c_add: counter = 'abc'
    let s = [
        spec("counter", "number"),
        spec("step", "number").with_default(json!(1)),
    ];
    assert_eq!(
        check_inputs(&s, &o(json!({"counter": "abc"})))
            .unwrap_err()
            .to_string(),
        r#"input argument "counter" has wrong type string (should be number)"#
    );
    // raise_error 42 (implicit `msg string`)
    let s = [spec("msg", "string")];
    assert_eq!(
        check_inputs(&s, &o(json!({"msg": 42})))
            .unwrap_err()
            .to_string(),
        r#"input argument "msg" has wrong type number (should be string)"#
    );
    // raise_error v.nothing: null is accepted by a base type
    assert!(check_inputs(&s, &o(json!({"msg": null}))).is_ok());
}

#[test]
fn every_json_type_name_in_messages() {
    let s = [spec("x", "null")];
    for (v, name) in [
        (json!(true), "boolean"),
        (json!(1), "number"),
        (json!("s"), "string"),
        (json!([]), "array"),
        (json!({}), "object"),
    ] {
        assert_eq!(
            check_inputs(&s, &o(json!({ "x": v })))
                .unwrap_err()
                .to_string(),
            format!(r#"input argument "x" has wrong type {name} (should be null)"#)
        );
    }
}

#[test]
fn first_failing_declaration_wins_in_order() {
    let s = [spec("a", "string"), spec("b", "number")];
    let err = check_inputs(&s, &o(json!({"a": 1}))).unwrap_err();
    assert!(matches!(err, TypeError::WrongInputType { ref name, .. } if name == "a"));
}

#[test]
fn type_resolution_and_registered_schemas() {
    let mut reg = SchemaRegistry::new();
    assert_eq!(
        reg.resolve("nosuch", "x", true).unwrap_err().to_string(),
        "unknown type nosuch"
    );
    reg.insert(
        "point",
        json!({"type": "object", "required": ["x", "y"], "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "additionalProperties": false}),
    );
    reg.insert("coord", json!("jcdb:point#/properties/x"));
    reg.insert("broken", json!("jcdb:ghost#/x"));
    assert!(matches!(
        reg.resolve("point", "p", true).unwrap(),
        IoType::Schema { .. }
    ));
    assert_eq!(
        reg.resolve("coord", "c", true).unwrap(),
        IoType::Schema {
            name: "coord".into(),
            schema: json!({"type": "number"})
        }
    );
    assert_eq!(
        reg.resolve("broken", "b", true).unwrap_err().to_string(),
        "unkown type ghost referenced from schema broken for input argument b"
    );
    let point = reg.get("point").unwrap().clone();
    assert!(validate(&point, &json!({"x": 1, "y": 2.5})));
    assert!(!validate(&point, &json!({"x": 1})));
    assert!(!validate(&point, &json!({"x": 1, "y": 2, "z": 3})));
    assert!(!validate(&point, &json!(null)));
}

#[test]
fn schema_keywords() {
    let cases = [
        (json!({"enum": [1, "a"]}), json!("a"), true),
        (json!({"enum": [1, "a"]}), json!(2), false),
        (json!({"type": ["string", "null"]}), json!(null), true),
        (json!({"minimum": 1, "maximum": 3}), json!(3), true),
        (
            json!({"minimum": 1, "exclusiveMinimum": true}),
            json!(1),
            false,
        ),
        (
            json!({"minLength": 2, "maxLength": 3}),
            json!("abcd"),
            false,
        ),
        (
            json!({"items": {"type": "integer"}, "minItems": 1}),
            json!([1, 2]),
            true,
        ),
        (
            json!({"items": [{"type": "string"}], "additionalItems": false}),
            json!(["a", 1]),
            false,
        ),
        (json!({"uniqueItems": true}), json!([1, 1.0]), false),
        (
            json!({"anyOf": [{"type": "string"}, {"type": "number"}]}),
            json!(true),
            false,
        ),
        (
            json!({"oneOf": [{"minimum": 0}, {"maximum": 10}]}),
            json!(5),
            false,
        ),
        (json!({"not": {"type": "string"}}), json!(5), true),
        (json!({"multipleOf": 0.5}), json!(1.5), true),
        (
            json!({"dependencies": {"a": ["b"]}}),
            json!({"a": 1}),
            false,
        ),
        (
            json!({"definitions": {"n": {"type": "number"}}, "$ref": "#/definitions/n"}),
            json!(1),
            true,
        ),
        (json!({"maxProperties": 1}), json!({"a": 1, "b": 2}), false),
        (json!({"pattern": "^[a-z]+$"}), json!("abc"), true),
        (json!({"pattern": "^[a-z]+$"}), json!("abc1"), false),
        (
            json!({"patternProperties": {"^x_": {"type": "number"}}, "additionalProperties": false}),
            json!({"x_a": 1}),
            true,
        ),
        (
            json!({"patternProperties": {"^x_": {"type": "number"}}, "additionalProperties": false}),
            json!({"x_a": "s"}),
            false,
        ),
        (
            json!({"patternProperties": {"^x_": {"type": "number"}}, "additionalProperties": false}),
            json!({"y": 1}),
            false,
        ),
    ];
    for (schema, value, want) in cases {
        assert_eq!(validate(&schema, &value), want, "{schema} on {value}");
    }
}

#[test]
fn io_specs_from_the_ast() {
    use jobcenter_engine::syntax::ast;
    let reg = SchemaRegistry::new();
    let lines = [
        ast::IoSpec {
            line: 2,
            name: "n".into(),
            ty: "integer".into(),
            default: None,
            optional: false,
        },
        ast::IoSpec {
            line: 3,
            name: "s".into(),
            ty: "string".into(),
            default: Some(json!("d")),
            optional: false,
        },
    ];
    let specs = IoSpec::from_ast_list(&lines, &reg, true).unwrap();
    assert!(matches!(specs[0].ty, IoType::Schema { .. }));
    assert_eq!(specs[1].default, Some(json!("d")));
    assert_eq!(
        Value::Object(check_inputs(&specs, &o(json!({"n": 2}))).unwrap()),
        json!({"n": 2, "s": "d"})
    );
    let bad = [ast::IoSpec {
        line: 2,
        name: "x".into(),
        ty: "blob".into(),
        default: None,
        optional: false,
    }];
    assert_eq!(
        IoSpec::from_ast_list(&bad, &reg, true)
            .unwrap_err()
            .to_string(),
        "unknown type blob"
    );
}
