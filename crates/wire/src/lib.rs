//! Netstring framing and the JSON-RPC 2.0 message model of the JobCenter protocol, without I/O.
