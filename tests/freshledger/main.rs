//! Black-box tests of the real `freshledger` binary, one test binary (each
//! module a surface: the command API, GraphQL, the CLI, the saga, …).
#![allow(dead_code)]

mod analytics;
mod api;
mod audit;
mod cli;
mod common;
mod contention;
mod graphql;
mod idempotency;
mod identity;
mod kafka;
mod operability;
mod projections;
mod replicas;
mod saga;
mod stalls;
mod timers;
