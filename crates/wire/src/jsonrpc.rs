//! The JSON-RPC 2.0 message model of the protocol: classification, error objects, encoders.

use bytes::Bytes;
use serde_json::{Map, Number, Value};
use std::fmt;

/// Error code: request without a truthy id for a normal method.
pub const CODE_NOT_A_NOTIFICATION: i64 = -32000;
/// Error code: the handler failed.
pub const CODE_METHOD_THREW: i64 = -32001;
/// Error code: the method needs a connection state the connection is not in.
pub const CODE_WRONG_STATE: i64 = -32002;
/// Error code: invalid request (bad `params`, or a fatal envelope error).
pub const CODE_INVALID_REQUEST: i64 = -32600;
/// Error code: unknown method.
pub const CODE_METHOD_NOT_FOUND: i64 = -32601;
/// Error code: wrong kind of params (array versus object).
pub const CODE_INVALID_PARAMS: i64 = -32602;

/// A JSON-RPC error object as sent on the wire: only `code` and `message` (never `data`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// The error message.
    pub message: String,
}

impl RpcError {
    /// An error with an arbitrary code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// -32601 `Method not found.`
    pub fn method_not_found() -> Self {
        Self::new(CODE_METHOD_NOT_FOUND, "Method not found.")
    }

    /// -32000 `Method is not a notification.`
    pub fn not_a_notification() -> Self {
        Self::new(CODE_NOT_A_NOTIFICATION, "Method is not a notification.")
    }

    /// -32600 `Invalid Request: params should be array or object.` (non-fatal)
    pub fn params_not_array_or_object() -> Self {
        Self::new(
            CODE_INVALID_REQUEST,
            "Invalid Request: params should be array or object.",
        )
    }

    /// -32602 `This method expects named params.`
    pub fn expects_named_params() -> Self {
        Self::new(CODE_INVALID_PARAMS, "This method expects named params.")
    }

    /// -32602 `This method expects positional params.`
    pub fn expects_positional_params() -> Self {
        Self::new(
            CODE_INVALID_PARAMS,
            "This method expects positional params.",
        )
    }

    /// -32002 `This method requires connection state <state>` (no final period).
    pub fn requires_state(state: &str) -> Self {
        Self::new(
            CODE_WRONG_STATE,
            format!("This method requires connection state {state}"),
        )
    }

    /// -32001 `Method threw error: <text>`
    pub fn method_threw(text: &str) -> Self {
        Self::new(CODE_METHOD_THREW, format!("Method threw error: {text}"))
    }

    /// -32600 `Invalid Request: <reason>` (the fatal envelope error; sent with id null).
    pub fn invalid_request(reason: &str) -> Self {
        Self::new(CODE_INVALID_REQUEST, format!("Invalid Request: {reason}"))
    }
}

/// A fatal envelope error (§5.3/§5.6). The payload is the bare reason, e.g. `not a json object`;
/// the wire message is `Invalid Request: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid Request: {0}")]
pub struct Fatal(pub String);

impl Fatal {
    /// The -32600 error object to send (with `"id":null`) before closing.
    pub fn to_rpc_error(&self) -> RpcError {
        RpcError::invalid_request(&self.0)
    }
}

/// A request id as it may appear on the wire: a string or a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// A string id.
    Str(String),
    /// A numeric id. Integers round-trip exactly; fractional ids are re-serialised by
    /// `serde_json`'s float formatting.
    Num(Number),
}

impl Id {
    /// The id held by a JSON value, if it is a string or a number.
    pub fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::String(s) => Some(Id::Str(s.clone())),
            Value::Number(n) => Some(Id::Num(n.clone())),
            _ => None,
        }
    }

    /// The id as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Id::Str(s) => Value::String(s.clone()),
            Id::Num(n) => Value::Number(n.clone()),
        }
    }

    /// Whether the id is falsy in the Perl sense (§5.2) and thus marks a notification.
    pub fn is_falsy(&self) -> bool {
        is_falsy_id(&self.to_value())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Str(s) => f.write_str(s),
            Id::Num(n) => write!(f, "{n}"),
        }
    }
}

impl From<Id> for Value {
    fn from(id: Id) -> Value {
        match id {
            Id::Str(s) => Value::String(s),
            Id::Num(n) => Value::Number(n),
        }
    }
}

/// Perl truthiness of an id value (§5.2): `null`, `false`, `0`, `0.0`, `""` and `"0"` are falsy.
/// (An absent id is falsy too; callers handle that case before calling.)
pub fn is_falsy_id(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f == 0.0),
        Value::String(s) => s.is_empty() || s == "0",
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// A classified incoming payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request or notification (§5.4 decides which, from `id` and the method table).
    Request {
        /// The `method` member (not null). A non-string never matches a registered method.
        method: Value,
        /// The raw `id` member: `None` if absent, `Some(Value::Null)` if `null`.
        id: Option<Value>,
        /// The `id` exactly as sent, when it is a number that `id` does not render the same
        /// way (e.g. an integer beyond 64 bits, `1e3`): answers must echo this text.
        id_text: Option<String>,
        /// The raw `params` member, if present.
        params: Option<Value>,
    },
    /// A response with a valid envelope and, if it is an error, a valid error object.
    Response {
        /// The raw `id` member (may be null or falsy: such responses are to be ignored).
        id: Value,
        /// `Ok(result)` or `Err(error object)`.
        outcome: Result<Value, RpcError>,
    },
    /// A response whose error object is invalid (§5.6). Fatal only if `id` matches an
    /// outstanding request; otherwise the response is ignored like any unmatched one.
    InvalidResponse {
        /// The raw `id` member.
        id: Value,
        /// The reason, e.g. `extra members in error object`.
        reason: String,
    },
}

impl Incoming {
    /// The method name of a request, if it is a string.
    pub fn method_name(&self) -> Option<&str> {
        match self {
            Incoming::Request { method, .. } => method.as_str(),
            _ => None,
        }
    }
}

/// Classify a payload exactly per §5.3 (steps 1–7). Error objects of responses are validated
/// per §5.6; an invalid one yields [`Incoming::InvalidResponse`] (the caller decides, by id,
/// whether that is fatal). Never panics.
///
/// Only the members the protocol uses are materialised; other members are skipped while
/// parsing (they are still syntax-checked).
pub fn classify(payload: &[u8]) -> Result<Incoming, Fatal> {
    // Validate UTF-8 up front: skipped members are not otherwise checked.
    let text = std::str::from_utf8(payload).map_err(|e| {
        Fatal(format!(
            "json decode failed: malformed UTF-8 character in JSON string at byte offset {}",
            e.valid_up_to()
        ))
    })?;
    match serde_json::from_str::<Parsed>(text) {
        Err(e) => Err(Fatal(format!("json decode failed: {e}"))),
        Ok(Parsed::NotObject) => Err(Fatal("not a json object".into())),
        Ok(Parsed::Object(env)) => classify_envelope(env),
    }
}

/// Like [`classify`], for an already decoded JSON value (steps 2–7).
pub fn classify_value(value: Value) -> Result<Incoming, Fatal> {
    let Value::Object(mut obj) = value else {
        return Err(Fatal("not a json object".into()));
    };
    classify_envelope(Envelope {
        jsonrpc: obj.remove("jsonrpc"),
        id: obj.remove("id"),
        id_text: None,
        method: obj.remove("method"),
        params: obj.remove("params"),
        result: obj.remove("result"),
        error: obj.remove("error"),
    })
}

/// The members of a top-level object that classification looks at.
#[derive(Default)]
struct Envelope {
    jsonrpc: Option<Value>,
    id: Option<Value>,
    id_text: Option<String>,
    method: Option<Value>,
    params: Option<Value>,
    result: Option<Value>,
    error: Option<Value>,
}

/// A syntactically valid payload: an object's envelope, or some other JSON value.
// Only ever a short-lived value on the stack: boxing would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Object(Envelope),
    NotObject,
}

/// A member name of the envelope.
enum Key {
    Jsonrpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "jsonrpc" => Key::Jsonrpc,
                    "id" => Key::Id,
                    "method" => Key::Method,
                    "params" => Key::Params,
                    "result" => Key::Result,
                    "error" => Key::Error,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for Parsed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess};
        struct ParsedVisitor;
        impl<'de> serde::de::Visitor<'de> for ParsedVisitor {
            type Value = Parsed;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
                // Duplicate members: the last one wins, as with the reference decoder.
                let mut env = Envelope::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let slot = match key {
                        Key::Jsonrpc => &mut env.jsonrpc,
                        Key::Id => {
                            // Kept as text too: a number must be echoed exactly as sent.
                            let raw = map.next_value::<Box<serde_json::value::RawValue>>()?;
                            let id: Value = serde_json::from_str(raw.get())
                                .map_err(serde::de::Error::custom)?;
                            env.id_text = match &id {
                                Value::Number(n) if n.to_string() != raw.get() => {
                                    Some(raw.get().to_string())
                                }
                                _ => None,
                            };
                            env.id = Some(id);
                            continue;
                        }
                        Key::Method => &mut env.method,
                        Key::Params => &mut env.params,
                        Key::Result => &mut env.result,
                        Key::Error => &mut env.error,
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<Value>()?);
                }
                Ok(Parsed::Object(env))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Parsed::NotObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Parsed, E> {
                Ok(Parsed::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Parsed, E> {
                Ok(Parsed::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Parsed, E> {
                Ok(Parsed::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Parsed, E> {
                Ok(Parsed::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<Parsed, E> {
                Ok(Parsed::NotObject)
            }
            fn visit_unit<E>(self) -> Result<Parsed, E> {
                Ok(Parsed::NotObject)
            }
        }
        d.deserialize_any(ParsedVisitor)
    }
}

/// Steps 3–7 of §5.3 on the envelope members.
fn classify_envelope(env: Envelope) -> Result<Incoming, Fatal> {
    match &env.jsonrpc {
        Some(Value::String(s)) if s == "2.0" => {}
        _ => return Err(Fatal("expected jsonrpc version 2.0".into())),
    }
    let id = env.id;
    if matches!(
        id,
        Some(Value::Array(_) | Value::Object(_) | Value::Bool(_))
    ) {
        return Err(Fatal("id is not a string or number".into()));
    }
    match env.method {
        Some(Value::Null) | None => {}
        Some(method) => {
            return Ok(Incoming::Request {
                method,
                id,
                id_text: env.id_text,
                params: env.params,
            })
        }
    }
    let error = match env.error {
        Some(Value::Null) | None => None,
        Some(e) => Some(e),
    };
    match (id, env.result, error) {
        (Some(id), _, Some(error)) => Ok(match validate_error(error) {
            Ok(e) => Incoming::Response {
                id,
                outcome: Err(e),
            },
            Err(reason) => Incoming::InvalidResponse { id, reason },
        }),
        (Some(id), Some(result), None) => Ok(Incoming::Response {
            id,
            outcome: Ok(result),
        }),
        _ => Err(Fatal("invalid jsonnrpc object".into())),
    }
}

fn is_integer_text(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Validate a received (non-null) error object per §5.6 and turn it into an [`RpcError`].
/// Lenient where the spec allows: a `data` member is accepted (and dropped). On failure the
/// exact reason text is returned.
pub fn validate_error(error: Value) -> Result<RpcError, String> {
    let Value::Object(mut e) = error else {
        return Err("error is not an object".into());
    };
    let not_int = || "error code is not a integer".to_string();
    let code = match e.get("code") {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(c) => c,
            None => return Err(not_int()),
        },
        Some(Value::String(s)) if is_integer_text(s) => s.parse::<i64>().map_err(|_| not_int())?,
        _ => return Err(not_int()),
    };
    let message = match e.remove("message") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err("error message is not a string".into()),
    };
    // `message` was removed above, so count it back in.
    let members = e.len() + 1;
    if members > 3 || (members == 3 && !e.contains_key("data")) {
        return Err("extra members in error object".into());
    }
    Ok(RpcError { code, message })
}

/// Pack handler output values into a `result` (§5.5): none → `[]`, one → the bare value,
/// several → an array.
pub fn pack_result(mut values: Vec<Value>) -> Value {
    match values.len() {
        0 => Value::Array(Vec::new()),
        1 => values.pop().unwrap_or(Value::Null),
        _ => Value::Array(values),
    }
}

/// Failure to serialise an outgoing message.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode json: {0}")]
pub struct EncodeError(#[from] pub serde_json::Error);

fn push_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> Result<(), EncodeError> {
    serde_json::to_writer(&mut *out, v)?;
    Ok(())
}

/// Payload of a request: `{"jsonrpc":"2.0","method":M,"params":P,"id":I}`.
pub fn encode_request(id: &Value, method: &str, params: &Value) -> Result<Bytes, EncodeError> {
    let mut out = Vec::with_capacity(64 + method.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"#);
    push_json(&mut out, method)?;
    out.extend_from_slice(br#","params":"#);
    push_json(&mut out, params)?;
    out.extend_from_slice(br#","id":"#);
    push_json(&mut out, id)?;
    out.push(b'}');
    Ok(out.into())
}

/// Payload of a notification: `{"jsonrpc":"2.0","method":M,"params":P}`.
pub fn encode_notification(method: &str, params: &Value) -> Result<Bytes, EncodeError> {
    let mut out = Vec::with_capacity(64 + method.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"#);
    push_json(&mut out, method)?;
    out.extend_from_slice(br#","params":"#);
    push_json(&mut out, params)?;
    out.push(b'}');
    Ok(out.into())
}

/// Payload of a success response: `{"jsonrpc":"2.0","id":I,"result":R}`.
pub fn encode_result(id: &Value, result: &Value) -> Result<Bytes, EncodeError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    push_json(&mut out, id)?;
    out.extend_from_slice(br#","result":"#);
    push_json(&mut out, result)?;
    out.push(b'}');
    Ok(out.into())
}

/// Like [`encode_result`], with the id given as its exact JSON text (see
/// [`Incoming::Request::id_text`]); the caller vouches that `id_json` is valid JSON.
pub fn encode_result_id_text(id_json: &str, result: &Value) -> Result<Bytes, EncodeError> {
    let mut out = Vec::with_capacity(64 + id_json.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id_json.as_bytes());
    out.extend_from_slice(br#","result":"#);
    push_json(&mut out, result)?;
    out.push(b'}');
    Ok(out.into())
}

/// Payload of an error response: `{"jsonrpc":"2.0","id":I,"error":{"code":C,"message":M}}`.
/// Never includes `data`.
pub fn encode_error(id: &Value, error: &RpcError) -> Result<Bytes, EncodeError> {
    let mut id_json = Vec::new();
    push_json(&mut id_json, id)?;
    encode_error_id_text(&String::from_utf8_lossy(&id_json), error)
}

/// Like [`encode_error`], with the id given as its exact JSON text.
pub fn encode_error_id_text(id_json: &str, error: &RpcError) -> Result<Bytes, EncodeError> {
    let mut out = Vec::with_capacity(80 + id_json.len() + error.message.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id_json.as_bytes());
    out.extend_from_slice(br#","error":{"code":"#);
    out.extend_from_slice(error.code.to_string().as_bytes());
    out.extend_from_slice(br#","message":"#);
    push_json(&mut out, &error.message)?;
    out.extend_from_slice(b"}}");
    Ok(out.into())
}

/// The error object of `error` as a JSON value (`code` and `message` only).
pub fn error_object(error: &RpcError) -> Value {
    let mut m = Map::new();
    m.insert("code".into(), Value::from(error.code));
    m.insert("message".into(), Value::from(error.message.clone()));
    Value::Object(m)
}
