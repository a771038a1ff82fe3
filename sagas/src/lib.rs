//! Freshledger's process managers and durable timers.
//!
//! - [`timers`]: the scheduler that fires due timers (timers are events of
//!   the `Timer` stream; the `timers` read model says what is due).
//! - [`spoilage`]: schedules each batch's expiry warning and expiry, and
//!   acts when they fire (warn; expire and write off what is not reserved).
//! - [`gateway`]: the payment gateway adapter for the order saga.
//!
//! The order fulfilment saga is the rest of its issue (ARCHITECTURE.md).

pub mod gateway;
pub mod spoilage;
pub mod timers;
