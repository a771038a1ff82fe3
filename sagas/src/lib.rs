//! Freshledger's process managers.
//!
//! So far: the payment gateway adapter the order saga will drive
//! ([`gateway`]). The saga itself and the durable timers are the rest of
//! their issue (see ARCHITECTURE.md, "Planned").

pub mod gateway;
