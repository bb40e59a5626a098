//! The two-way JSON-RPC peer: one task owns the socket, either side calls, notifies and answers.
