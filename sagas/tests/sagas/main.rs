//! The process managers against a real store, on SQLite and Postgres. One
//! test binary.

mod order_saga;
mod spoilage;
#[path = "../support/world.rs"]
mod world;
