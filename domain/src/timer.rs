//! `Timer`: a durable timer. Scheduled once (its id derives from its
//! purpose), fired once, at or after its due time, or cancelled first.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use event_schemas::timer::*;
use event_schemas::values::Note;

use crate::clock::Clock;
use crate::error::{DomainError, ErrorKind};

pub struct TimerServices {
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TimerCommand {
    /// Idempotent: scheduling the same timer again does nothing.
    Schedule {
        timer: TimerKind,
        due_at: DateTime<Utc>,
    },
    /// Idempotent: firing a fired timer does nothing; refused before due.
    Fire,
    /// Idempotent; a fired timer cannot be cancelled.
    Cancel { reason: Note },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", content = "details", rename_all = "snake_case")]
pub enum TimerError {
    #[error("timer was never scheduled")]
    NotScheduled,
    #[error("timer is due at {due_at}, not yet")]
    NotDue { due_at: DateTime<Utc> },
    #[error("timer already fired")]
    AlreadyFired,
    #[error("a timer is scheduled for one purpose only")]
    Rescheduled,
}

impl DomainError for TimerError {
    const CODES: &'static [(&'static str, ErrorKind)] = &[
        ("timer_not_found", ErrorKind::NotFound),
        ("timer_not_due", ErrorKind::Conflict),
        ("timer_already_fired", ErrorKind::Conflict),
        ("timer_rescheduled", ErrorKind::Conflict),
    ];
    fn code(&self) -> &'static str {
        match self {
            TimerError::NotScheduled => "timer_not_found",
            TimerError::NotDue { .. } => "timer_not_due",
            TimerError::AlreadyFired => "timer_already_fired",
            TimerError::Rescheduled => "timer_rescheduled",
        }
    }
    fn kind(&self) -> ErrorKind {
        match self {
            TimerError::NotScheduled => ErrorKind::NotFound,
            _ => ErrorKind::Conflict,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimerStatus {
    Scheduled,
    Fired,
    Cancelled,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    scheduled: Option<TimerScheduled>,
    status: Option<TimerStatus>,
}

impl Timer {
    pub fn status(&self) -> Option<TimerStatus> {
        self.status
    }
    pub fn kind(&self) -> Option<&TimerKind> {
        self.scheduled.as_ref().map(|s| &s.timer)
    }
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        self.scheduled.as_ref().map(|s| s.due_at)
    }
}

impl Aggregate for Timer {
    const TYPE: &'static str = "Timer";
    type Command = TimerCommand;
    type Event = TimerEvent;
    type Error = TimerError;
    type Services = TimerServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            TimerCommand::Schedule { timer, due_at } => match &self.scheduled {
                Some(s) if s.timer == timer => Ok(()),
                Some(_) => Err(TimerError::Rescheduled),
                None => {
                    let e = TimerScheduled {
                        timer_id: timer.timer_id(),
                        timer,
                        due_at,
                    };
                    sink.write(e.into(), self).await;
                    Ok(())
                }
            },
            TimerCommand::Fire => {
                let s = self.scheduled.as_ref().ok_or(TimerError::NotScheduled)?;
                if self.status != Some(TimerStatus::Scheduled) {
                    return Ok(());
                }
                let now = services.clock.now();
                if now < s.due_at {
                    return Err(TimerError::NotDue { due_at: s.due_at });
                }
                sink.write(TimerFired { fired_at: now }.into(), self).await;
                Ok(())
            }
            TimerCommand::Cancel { reason } => {
                match self.status {
                    None => return Err(TimerError::NotScheduled),
                    Some(TimerStatus::Fired) => return Err(TimerError::AlreadyFired),
                    Some(TimerStatus::Cancelled) => return Ok(()),
                    Some(TimerStatus::Scheduled) => {}
                }
                sink.write(TimerCancelled { reason }.into(), self).await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            TimerEvent::TimerScheduled(s) => {
                self.scheduled = Some(s);
                self.status = Some(TimerStatus::Scheduled);
            }
            TimerEvent::TimerFired(_) => self.status = Some(TimerStatus::Fired),
            TimerEvent::TimerCancelled(_) => self.status = Some(TimerStatus::Cancelled),
        }
    }
}
