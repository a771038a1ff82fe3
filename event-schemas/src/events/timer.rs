//! Events of the `Timer` stream: durable timers, recorded as events so the
//! history shows them and a replay never fires one again.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event_enum;
use crate::values::*;

/// What a timer is for, and what it acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TimerKind {
    /// Warn that a batch is nearing its expiry.
    ExpiryWarning { batch_id: BatchId },
    /// Expire a batch.
    BatchExpiry { batch_id: BatchId },
    /// Release an unpaid order's stock and cancel it.
    ReservationHold { order_id: OrderId },
}

impl TimerKind {
    /// The timer's id: the same purpose and target always give the same id,
    /// so scheduling twice schedules once.
    pub fn timer_id(&self) -> Uuid {
        const NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_9c2e_53b4_4f0e_9d7a_0c11_f2e8_a5d3);
        let name = match self {
            TimerKind::ExpiryWarning { batch_id } => format!("expiry-warning:{batch_id}"),
            TimerKind::BatchExpiry { batch_id } => format!("batch-expiry:{batch_id}"),
            TimerKind::ReservationHold { order_id } => format!("reservation-hold:{order_id}"),
        };
        Uuid::new_v5(&NAMESPACE, name.as_bytes())
    }
}

/// A timer was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerScheduled {
    pub timer_id: Uuid,
    pub timer: TimerKind,
    pub due_at: DateTime<Utc>,
}

/// A timer went off (at or after its due time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerFired {
    pub fired_at: DateTime<Utc>,
}

/// A timer was called off before it went off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerCancelled {
    pub reason: Note,
}

event_enum! {
    /// Every event of a `Timer` stream.
    TimerEvent, stream = "Timer" {
        TimerScheduled = "1.0",
        TimerFired = "1.0",
        TimerCancelled = "1.0",
    }
}
