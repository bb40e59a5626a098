//! JSON-RPC payload classification (PROTOCOL.md §5.3/§5.6) on arbitrary payloads.
//!
//! Invariants checked:
//! * `classify` never panics;
//! * it agrees with `classify_value` on every payload that is valid JSON (the streaming
//!   envelope parser and the `Value` path must classify alike);
//! * every classified request, notification and response re-encodes with the crate's
//!   encoders into a payload that classifies to the same message;
//! * a valid error object survives `error_object` → `validate_error`.
#![no_main]

use jobcenter_wire::{
    classify, classify_value, encode_error, encode_notification, encode_request, encode_result,
    error_object, validate_error, Incoming,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let classified = classify(data);
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let by_value = classify_value(value);
        match (&classified, &by_value) {
            // classify_value has no text to keep an id's exact form from.
            (Ok(a), Ok(b)) => {
                assert_eq!(plain(a), plain(b), "classify and classify_value disagree")
            }
            (Err(_), Err(_)) => {}
            _ => panic!("classify {classified:?} vs classify_value {by_value:?}"),
        }
    }
    let Ok(msg) = classified else {
        return;
    };
    match msg {
        Incoming::Request {
            method,
            id,
            id_text,
            params,
        } => {
            if let Some(text) = &id_text {
                // The exact text denotes the same number as the parsed id.
                let again: Value = serde_json::from_str(text).expect("id text is JSON");
                assert_eq!(Some(&again), id.as_ref());
            }
            let Some(name) = method.as_str() else {
                return;
            };
            let params = params.unwrap_or(Value::Null);
            let payload = match &id {
                Some(id) => encode_request(id, name, &params),
                None => encode_notification(name, &params),
            }
            .expect("encodes");
            let again = classify(&payload).expect("re-encoded request classifies");
            assert_eq!(
                plain(&again),
                Incoming::Request {
                    method: Value::String(name.to_string()),
                    id,
                    id_text: None,
                    params: Some(params),
                }
            );
        }
        Incoming::Response { id, outcome } => {
            let payload = match &outcome {
                Ok(result) => encode_result(&id, result),
                Err(e) => {
                    let back = validate_error(error_object(e)).expect("own error object is valid");
                    assert_eq!(&back, e);
                    encode_error(&id, e)
                }
            }
            .expect("encodes");
            let again = classify(&payload).expect("re-encoded response classifies");
            assert_eq!(again, Incoming::Response { id, outcome });
        }
        Incoming::InvalidResponse { .. } => {}
    }
});

/// The message without the exact id text (which only `classify` can keep).
fn plain(m: &Incoming) -> Incoming {
    match m.clone() {
        Incoming::Request {
            method, id, params, ..
        } => Incoming::Request {
            method,
            id,
            id_text: None,
            params,
        },
        other => other,
    }
}
