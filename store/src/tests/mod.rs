//! The event log's own tests: the conformance suite run against SQLite and
//! Postgres alike, and SIGKILL in the middle of appends. They live inside
//! the crate (one test binary) because they reach below the public API: raw
//! transactions held open on either backend.
#![allow(dead_code)]

mod common;
mod conformance;
mod crash;
