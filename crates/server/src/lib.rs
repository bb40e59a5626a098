//! The JobCenter API server (jcapi compatible): listeners, sessions, auth and dispatcher.

pub mod auth;
pub mod config;
pub mod dispatch;
pub mod jobs;
