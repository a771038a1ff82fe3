//! Freshledger's process managers and durable timers.
//!
//! - [`timers`]: the scheduler that fires due timers (timers are events of
//!   the `Timer` stream; the `timers` read model says what is due).
//! - [`spoilage`]: schedules each batch's expiry warning and expiry, and
//!   acts when they fire (warn; expire and write off what is not reserved).
//! - [`gateway`]: the payment gateway adapter for the order saga.
//! - [`order`]: the order fulfilment saga (allocation, payment, picking,
//!   delivery, capture, and the compensations).

pub mod gateway;
pub mod order;
pub mod spoilage;
pub mod timers;
