//! The JobCenter API server: listeners, sessions, authentication and the worker dispatcher.
