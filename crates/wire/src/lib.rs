//! Netstring framing and the JSON-RPC 2.0 message model of the JobCenter protocol, without I/O.
//!
//! * [`codec`]: the netstring codec ([`NetstringCodec`]) with strict, typed framing errors.
//! * [`jsonrpc`]: payload classification (§5.3), error objects (§5.6/§5.7), result packing
//!   (§5.5) and encoders for the four message kinds.

#![warn(missing_docs)]

pub mod codec;
pub mod jsonrpc;

pub use codec::{
    encode_frame, frame, FrameError, NetstringCodec, CLIENT_MAX_FRAME, MAX_LENGTH_DIGITS,
    RESERVE_STEP, SERVER_MAX_FRAME,
};
pub use jsonrpc::{
    classify, classify_value, encode_error, encode_error_id_text, encode_notification,
    encode_request, encode_result, encode_result_id_text, error_object, is_falsy_id, pack_result,
    validate_error, EncodeError, Fatal, Id, Incoming, RpcError,
};
