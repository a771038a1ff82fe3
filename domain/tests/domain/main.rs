//! The write model's rules: given/when/then for every command and rejection,
//! and properties over random command sequences. One test binary.
#![allow(dead_code)]

mod allocation;
mod common;
mod delivery;
mod inventory;
mod order;
mod payment;
mod properties;
mod timer;
