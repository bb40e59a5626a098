//! Shared set-up for the end-to-end conformance tests: a real server with the JCL engine on a
//! loopback port, and connected clients and workers of our library.
