//! The published contract: committed JSON Schemas match the code, and old
//! event versions upcast. One test binary.

mod integration;
mod schemas;
mod upcasting;
