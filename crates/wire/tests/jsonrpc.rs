//! JSON-RPC model: classification (§5.3, C9–C13), error objects (§5.6/§5.7, C21),
//! falsy ids (§5.2), result packing (§5.5, C22) and the exact encoder output (§13.2).

use jobcenter_wire::{
    classify, encode_error, encode_notification, encode_request, encode_result,
    encode_result_id_text, frame, is_falsy_id, pack_result, validate_error, Fatal, Id, Incoming,
    RpcError,
};
use serde_json::{json, Value};

fn fatal(payload: &str) -> String {
    match classify(payload.as_bytes()) {
        Err(Fatal(reason)) => reason,
        Ok(other) => panic!("expected fatal for {payload}, got {other:?}"),
    }
}

#[test]
fn c9_batch_is_fatal_not_a_json_object() {
    assert_eq!(fatal("[]"), "not a json object");
    assert_eq!(
        fatal(r#"[{"jsonrpc":"2.0","method":"ping","params":{},"id":"a"}]"#),
        "not a json object"
    );
    assert_eq!(fatal("42"), "not a json object");
    assert_eq!(fatal(r#""str""#), "not a json object");
}

#[test]
fn c10_invalid_json_is_decode_failure() {
    for bad in ["", "{broken json", "this is not json", "{\"a\":1", "{}}"] {
        let reason = fatal(bad);
        assert!(
            reason.starts_with("json decode failed: "),
            "{bad}: {reason}"
        );
    }
    let reason = match classify(b"{\"x\":\"\xff\"}") {
        Err(Fatal(r)) => r,
        Ok(o) => panic!("{o:?}"),
    };
    assert!(reason.starts_with("json decode failed: "));
    // Invalid UTF-8 is caught in members that are otherwise skipped, too.
    let reason = match classify(b"{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":1,\"zz\":\"\xfe\"}")
    {
        Err(Fatal(r)) => r,
        Ok(o) => panic!("{o:?}"),
    };
    assert!(reason.starts_with("json decode failed: "), "{reason}");
    // Skipped members are still syntax-checked, and duplicate members: the last one wins.
    assert!(fatal(r#"{"jsonrpc":"2.0","id":"a","result":1,"zz":[1,}"#)
        .starts_with("json decode failed: "));
    assert_eq!(
        classify(br#"{"jsonrpc":"1.0","id":"a","result":1,"jsonrpc":"2.0"}"#).expect("ok"),
        Incoming::Response {
            id: json!("a"),
            outcome: Ok(json!(1))
        }
    );
    // classify_value agrees with classify.
    let v = json!({"jsonrpc":"2.0","id":7,"method":"m","params":{"a":1},"extra":true});
    assert_eq!(
        jobcenter_wire::classify_value(v.clone()).expect("ok"),
        classify(v.to_string().as_bytes()).expect("ok")
    );
    // The wire form of a fatal error.
    let e = Fatal("json decode failed: x".into()).to_rpc_error();
    assert_eq!(e.code, -32600);
    assert_eq!(e.message, "Invalid Request: json decode failed: x");
}

#[test]
fn c11_wrong_jsonrpc_version() {
    for p in [
        r#"{"jsonrpc":"1.0","id":"p","method":"ping","params":{}}"#,
        r#"{"id":"p","method":"ping","params":{}}"#,
        r#"{"jsonrpc":2.0,"id":"p","method":"ping","params":{}}"#,
        r#"{"jsonrpc":null,"id":"p","method":"ping","params":{}}"#,
    ] {
        assert_eq!(fatal(p), "expected jsonrpc version 2.0", "{p}");
    }
}

#[test]
fn c12_bad_id_types() {
    for id in ["true", "false", "[1]", "{\"a\":1}"] {
        let p = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping","params":{{}}}}"#);
        assert_eq!(fatal(&p), "id is not a string or number", "{p}");
        let p = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":1}}"#);
        assert_eq!(fatal(&p), "id is not a string or number", "{p}");
    }
}

#[test]
fn c13_neither_request_nor_response() {
    for p in [
        r#"{"jsonrpc":"2.0","foo":"bar"}"#,
        r#"{"jsonrpc":"2.0","method":null,"id":"x"}"#,
        r#"{"jsonrpc":"2.0","result":1}"#,
        r#"{"jsonrpc":"2.0","id":"x","error":null}"#,
        r#"{"jsonrpc":"2.0","id":"x"}"#,
    ] {
        assert_eq!(fatal(p), "invalid jsonnrpc object", "{p}");
    }
}

#[test]
fn requests_keep_raw_id_and_params() {
    let got = classify(br#"{"jsonrpc":"2.0","id":42,"method":"ping","params":{}}"#).expect("ok");
    assert_eq!(
        got,
        Incoming::Request {
            method: json!("ping"),
            id: Some(json!(42)),
            id_text: None,
            params: Some(json!({}))
        }
    );
    assert_eq!(got.method_name(), Some("ping"));
    let got = classify(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).expect("ok");
    assert_eq!(
        got,
        Incoming::Request {
            method: json!("ping"),
            id: Some(Value::Null),
            id_text: None,
            params: None
        }
    );
    let got = classify(br#"{"jsonrpc":"2.0","method":7,"params":[]}"#).expect("ok");
    assert_eq!(
        got,
        Incoming::Request {
            method: json!(7),
            id: None,
            id_text: None,
            params: Some(json!([]))
        }
    );
    assert_eq!(got.method_name(), None);
}

#[test]
fn numeric_ids_that_do_not_fit_keep_their_exact_text() {
    for (text, exact) in [
        ("123456789012345678901234567890", true),
        ("1e3", true),
        ("1.50", true),
        ("18446744073709551615", false),
        ("-9223372036854775808", false),
        ("42", false),
        ("\"123456789012345678901234567890\"", false),
    ] {
        let payload = format!(r#"{{"jsonrpc":"2.0","id":{text},"method":"ping"}}"#);
        let Incoming::Request { id_text, .. } = classify(payload.as_bytes()).expect("ok") else {
            panic!("not a request: {payload}");
        };
        assert_eq!(id_text.as_deref(), exact.then_some(text), "{text}");
    }
    let answer =
        encode_result_id_text("123456789012345678901234567890", &json!("pong")).expect("encode");
    assert_eq!(
        &answer[..],
        br#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":"pong"}"#
    );
}

#[test]
fn responses_classify_with_outcome() {
    let got = classify(br#"{"jsonrpc":"2.0","id":"a","result":null}"#).expect("ok");
    assert_eq!(
        got,
        Incoming::Response {
            id: json!("a"),
            outcome: Ok(Value::Null)
        }
    );
    let got = classify(
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"Method not found."}}"#,
    )
    .expect("ok");
    assert_eq!(
        got,
        Incoming::Response {
            id: Value::Null,
            outcome: Err(RpcError::method_not_found())
        }
    );
    // error wins over result; a null error means success.
    let got =
        classify(br#"{"jsonrpc":"2.0","id":"a","result":1,"error":{"code":1,"message":"m"}}"#)
            .expect("ok");
    assert_eq!(
        got,
        Incoming::Response {
            id: json!("a"),
            outcome: Err(RpcError::new(1, "m"))
        }
    );
    let got = classify(br#"{"jsonrpc":"2.0","id":"a","result":1,"error":null}"#).expect("ok");
    assert_eq!(
        got,
        Incoming::Response {
            id: json!("a"),
            outcome: Ok(json!(1))
        }
    );
}

#[test]
fn error_object_validation_5_6() {
    let bad = |v: Value| validate_error(v).expect_err("invalid");
    assert_eq!(bad(json!("x")), "error is not an object");
    assert_eq!(bad(json!([1])), "error is not an object");
    assert_eq!(bad(json!({"message":"m"})), "error code is not a integer");
    assert_eq!(
        bad(json!({"code":1.5,"message":"m"})),
        "error code is not a integer"
    );
    assert_eq!(
        bad(json!({"code":"x1","message":"m"})),
        "error code is not a integer"
    );
    assert_eq!(
        bad(json!({"code":1,"message":{}})),
        "error message is not a string"
    );
    assert_eq!(
        bad(json!({"code":1,"message":[]})),
        "error message is not a string"
    );
    assert_eq!(
        bad(json!({"code":1,"message":"m","extra":1})),
        "extra members in error object"
    );
    assert_eq!(
        bad(json!({"code":1,"message":"m","data":1,"extra":2})),
        "extra members in error object"
    );
    // Lenient: `data` is accepted (and dropped), string codes matching ^-?[0-9]+$ pass.
    assert_eq!(
        validate_error(json!({"code":-5,"message":"m","data":{"x":1}})),
        Ok(RpcError::new(-5, "m"))
    );
    assert_eq!(
        validate_error(json!({"code":"-32001","message":"m"})),
        Ok(RpcError::new(-32001, "m"))
    );
    assert_eq!(validate_error(json!({"code":3})), Ok(RpcError::new(3, "")));
    // Via classify: an invalid error object is reported with its id, not as fatal.
    let got =
        classify(br#"{"jsonrpc":"2.0","id":"q","error":{"code":1,"message":"m","data":1,"x":2}}"#)
            .expect("ok");
    assert_eq!(
        got,
        Incoming::InvalidResponse {
            id: json!("q"),
            reason: "extra members in error object".into()
        }
    );
}

#[test]
fn falsy_ids_5_2() {
    for v in [
        json!(null),
        json!(false),
        json!(0),
        json!(0.0),
        json!(""),
        json!("0"),
    ] {
        assert!(is_falsy_id(&v), "{v}");
    }
    for v in [
        json!(1),
        json!(-1),
        json!("0.0"),
        json!("false"),
        json!("a"),
        json!({}),
        json!([]),
        json!(0.5),
    ] {
        assert!(!is_falsy_id(&v), "{v}");
    }
    assert!(Id::Num(0.into()).is_falsy());
    assert!(!Id::Str("x".into()).is_falsy());
    assert_eq!(
        Id::from_value(&json!(42)).map(|i| i.to_value()),
        Some(json!(42))
    );
    assert_eq!(Id::from_value(&json!(null)), None);
}

#[test]
fn c22_result_packing() {
    assert_eq!(pack_result(vec![]), json!([]));
    assert_eq!(pack_result(vec![json!(true)]), json!(true));
    assert_eq!(pack_result(vec![json!([1, 2])]), json!([1, 2]));
    assert_eq!(pack_result(vec![json!(7), Value::Null]), json!([7, null]));
    assert_eq!(
        pack_result(vec![json!(true), json!("welcome")]),
        json!([true, "welcome"])
    );
}

#[test]
fn error_texts_5_7_exact() {
    let cases = [
        (
            RpcError::not_a_notification(),
            -32000,
            "Method is not a notification.",
        ),
        (
            RpcError::method_threw("no who?"),
            -32001,
            "Method threw error: no who?",
        ),
        (
            RpcError::requires_state("auth"),
            -32002,
            "This method requires connection state auth",
        ),
        (
            RpcError::params_not_array_or_object(),
            -32600,
            "Invalid Request: params should be array or object.",
        ),
        (
            RpcError::invalid_request("not a json object"),
            -32600,
            "Invalid Request: not a json object",
        ),
        (RpcError::method_not_found(), -32601, "Method not found."),
        (
            RpcError::expects_named_params(),
            -32602,
            "This method expects named params.",
        ),
        (
            RpcError::expects_positional_params(),
            -32602,
            "This method expects positional params.",
        ),
    ];
    for (e, code, msg) in cases {
        assert_eq!((e.code, e.message.as_str()), (code, msg));
    }
}

fn framed(p: bytes::Bytes) -> String {
    String::from_utf8(frame(&p).to_vec()).expect("utf8")
}

#[test]
fn encoders_match_the_annotated_transcript_13_2() {
    // #2: request
    let p = encode_request(
        &json!("Ab3dE5gH7jK9mN1pQ3sT5v"),
        "create_job",
        &json!({"inargs":{"counter":1},"wfname":"calladd"}),
    )
    .expect("encodes");
    assert_eq!(
        framed(p),
        r#"122:{"jsonrpc":"2.0","method":"create_job","params":{"inargs":{"counter":1},"wfname":"calladd"},"id":"Ab3dE5gH7jK9mN1pQ3sT5v"},"#
    );
    // #3: error response
    let p = encode_error(
        &json!("Ab3dE5gH7jK9mN1pQ3sT5v"),
        &RpcError::requires_state("auth"),
    )
    .expect("encodes");
    assert_eq!(
        framed(p),
        r#"126:{"jsonrpc":"2.0","id":"Ab3dE5gH7jK9mN1pQ3sT5v","error":{"code":-32002,"message":"This method requires connection state auth"}},"#
    );
    // #7: result
    let p = encode_result(&json!("Zm9vYmFyYmF6cXV4MTIzNA"), &json!([4711, null])).expect("encodes");
    assert_eq!(
        framed(p),
        r#"68:{"jsonrpc":"2.0","id":"Zm9vYmFyYmF6cXV4MTIzNA","result":[4711,null]},"#
    );
    // #8: notification
    let p = encode_notification("job_done", &json!({"job_id":4711,"outargs":{"counter":2}}))
        .expect("encodes");
    assert_eq!(
        framed(p),
        r#"86:{"jsonrpc":"2.0","method":"job_done","params":{"job_id":4711,"outargs":{"counter":2}}},"#
    );
    // #14: fatal error with id null
    let p = encode_error(
        &Value::Null,
        &RpcError::invalid_request("not a json object"),
    )
    .expect("encodes");
    assert_eq!(
        framed(p),
        r#"98:{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: not a json object"}},"#
    );
    // Numeric ids are echoed as numbers.
    let p = encode_result(&json!(42), &json!("pong?")).expect("encodes");
    assert_eq!(&p[..], br#"{"jsonrpc":"2.0","id":42,"result":"pong?"}"#);
}

#[test]
fn c21_error_encoding_has_no_data_member() {
    let p = encode_error(
        &json!("x"),
        &RpcError::method_threw("boom \"quoted\" ünïcode"),
    )
    .expect("encodes");
    let v: Value = serde_json::from_slice(&p).expect("valid json");
    let err = v["error"].as_object().expect("object");
    assert_eq!(err.len(), 2);
    assert!(!err.contains_key("data"));
    assert_eq!(
        err["message"],
        "Method threw error: boom \"quoted\" ünïcode"
    );
    // And it classifies back to the same error.
    assert_eq!(
        classify(&p).expect("ok"),
        Incoming::Response {
            id: json!("x"),
            outcome: Err(RpcError::method_threw("boom \"quoted\" ünïcode"))
        }
    );
}

mod equivalence {
    use super::*;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            Just(json!(0)),
            Just(json!(1.5)),
            prop_oneof![
                Just("2.0"),
                Just("1.0"),
                Just(""),
                Just("0"),
                Just("x"),
                Just("ping")
            ]
            .prop_map(Value::from),
            Just(json!({"code": -32601, "message": "Method not found."})),
            Just(json!({"code": 1, "message": "m", "data": 2})),
            Just(json!({"code": "x"})),
            Just(json!([1, 2])),
            Just(json!({})),
        ]
    }

    fn envelope() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("jsonrpc"),
            Just("id"),
            Just("method"),
            Just("params"),
            Just("result"),
            Just("error"),
            Just("other"),
        ];
        prop_oneof![
            4 => proptest::collection::vec((key, leaf()), 0..7).prop_map(|kvs| {
                let mut m = serde_json::Map::new();
                m.insert("jsonrpc".into(), json!("2.0"));
                for (k, v) in kvs {
                    m.insert(k.to_string(), v);
                }
                Value::Object(m)
            }),
            1 => leaf(),
        ]
    }

    proptest! {
        /// The streaming classifier agrees with classification of a fully decoded value.
        #[test]
        fn classify_matches_classify_value(v in envelope()) {
            let text = v.to_string();
            prop_assert_eq!(
                classify(text.as_bytes()),
                jobcenter_wire::classify_value(v)
            );
        }
    }
}

/// Found by fuzzing (fuzz/fuzz_targets/jsonrpc.rs): a long decimal was parsed 1 ULP off
/// (serde_json's default fast float parser is not correctly rounded), so relaying a result
/// (decode → encode → decode) changed the number. The workspace enables `float_roundtrip`.
#[test]
fn relayed_floats_survive_a_round_trip() {
    let payload =
        br#"{"jsonrpc":"2.0","id":"x","result":[3.34444444444444444444444444484888,null]}"#;
    let Incoming::Response { id, outcome } = classify(payload).expect("classifies") else {
        panic!("not a response");
    };
    let result = outcome.expect("a result");
    assert_eq!(result[0].as_f64(), Some(3.344_444_444_444_444_6));
    let again = classify(&encode_result(&id, &result).expect("encodes")).expect("classifies");
    assert_eq!(
        again,
        Incoming::Response {
            id,
            outcome: Ok(result)
        }
    );
}
