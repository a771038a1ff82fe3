//! `Delivery`: getting one packed order to the customer's door.
//!
//! CREATED → RIDER_ASSIGNED → IN_TRANSIT → DELIVERED, with a failed attempt
//! taking an in-transit delivery to ATTEMPT_FAILED, from where it is
//! assigned (or picked up) again.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use event_schemas::delivery::*;
use event_schemas::values::*;

use crate::error::{DomainError, ErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    Created,
    RiderAssigned,
    InTransit,
    Delivered,
    AttemptFailed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DeliveryCommand {
    CreateDelivery {
        delivery_id: DeliveryId,
        order_id: OrderId,
        slot: DeliverySlot,
        address: Address,
        cold_chain: bool,
    },
    AssignRider {
        rider_id: RiderId,
    },
    PickUp {
        rider_id: RiderId,
    },
    ReportLocation {
        location: GeoPoint,
    },
    CompleteDelivery {
        proof: ProofOfDelivery,
    },
    FailAttempt {
        reason: Note,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", content = "details", rename_all = "snake_case")]
pub enum DeliveryError {
    #[error("delivery has not been created")]
    NotCreated,
    #[error("delivery was already created")]
    AlreadyCreated,
    #[error(
        "cannot {action} a delivery in state {}",
        crate::error::spelled(.state, false)
    )]
    IllegalTransition {
        state: DeliveryStatus,
        action: &'static str,
    },
    #[error("rider {given} is not the assigned rider")]
    WrongRider { given: RiderId },
}

impl DomainError for DeliveryError {
    const CODES: &'static [(&'static str, ErrorKind)] = &[
        ("delivery_not_found", ErrorKind::NotFound),
        ("delivery_already_created", ErrorKind::Conflict),
        ("illegal_transition", ErrorKind::Conflict),
        ("wrong_rider", ErrorKind::Conflict),
    ];
    fn code(&self) -> &'static str {
        match self {
            DeliveryError::NotCreated => "delivery_not_found",
            DeliveryError::AlreadyCreated => "delivery_already_created",
            DeliveryError::IllegalTransition { .. } => "illegal_transition",
            DeliveryError::WrongRider { .. } => "wrong_rider",
        }
    }
    fn kind(&self) -> ErrorKind {
        match self {
            DeliveryError::NotCreated => ErrorKind::NotFound,
            _ => ErrorKind::Conflict,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    status: Option<DeliveryStatus>,
    order_id: Option<OrderId>,
    rider: Option<RiderId>,
    last_location: Option<GeoPoint>,
    attempts_failed: u32,
}

impl Delivery {
    pub fn status(&self) -> Option<DeliveryStatus> {
        self.status
    }
    pub fn order_id(&self) -> Option<OrderId> {
        self.order_id
    }
    pub fn rider(&self) -> Option<RiderId> {
        self.rider
    }
    pub fn last_location(&self) -> Option<GeoPoint> {
        self.last_location
    }
    pub fn attempts_failed(&self) -> u32 {
        self.attempts_failed
    }
}

impl Aggregate for Delivery {
    const TYPE: &'static str = "Delivery";
    type Command = DeliveryCommand;
    type Event = DeliveryEvent;
    type Error = DeliveryError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        use DeliveryCommand as C;
        use DeliveryError as E;
        use DeliveryStatus as S;

        if let C::CreateDelivery {
            delivery_id,
            order_id,
            slot,
            address,
            cold_chain,
        } = command
        {
            if self.status.is_some() {
                return Err(E::AlreadyCreated);
            }
            let e = DeliveryCreated {
                delivery_id,
                order_id,
                slot,
                address,
                cold_chain,
            };
            sink.write(e.into(), self).await;
            return Ok(());
        }

        let state = self.status.ok_or(E::NotCreated)?;
        let illegal = |action| Err(E::IllegalTransition { state, action });
        match command {
            C::CreateDelivery { .. } => unreachable!("handled above"),
            C::AssignRider { rider_id } => match state {
                S::Created | S::RiderAssigned | S::AttemptFailed => {
                    sink.write(RiderAssigned { rider_id }.into(), self).await
                }
                _ => return illegal("assign a rider to"),
            },
            C::PickUp { rider_id } => match state {
                S::RiderAssigned | S::AttemptFailed => {
                    if self.rider != Some(rider_id) {
                        return Err(E::WrongRider { given: rider_id });
                    }
                    sink.write(DeliveryPickedUp { rider_id }.into(), self).await
                }
                _ => return illegal("pick up"),
            },
            C::ReportLocation { location } => match state {
                S::InTransit => sink.write(LocationReported { location }.into(), self).await,
                _ => return illegal("report the location of"),
            },
            C::CompleteDelivery { proof } => match state {
                S::InTransit => sink.write(DeliveryCompleted { proof }.into(), self).await,
                _ => return illegal("complete"),
            },
            C::FailAttempt { reason } => match state {
                S::InTransit => {
                    sink.write(DeliveryAttemptFailed { reason }.into(), self)
                        .await
                }
                _ => return illegal("fail an attempt of"),
            },
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use DeliveryEvent as Ev;
        use DeliveryStatus as S;
        match event {
            Ev::DeliveryCreated(e) => {
                self.status = Some(S::Created);
                self.order_id = Some(e.order_id);
            }
            Ev::RiderAssigned(e) => {
                self.status = Some(S::RiderAssigned);
                self.rider = Some(e.rider_id);
            }
            Ev::DeliveryPickedUp(_) => self.status = Some(S::InTransit),
            Ev::LocationReported(e) => self.last_location = Some(e.location),
            Ev::DeliveryCompleted(_) => self.status = Some(S::Delivered),
            Ev::DeliveryAttemptFailed(_) => {
                self.status = Some(S::AttemptFailed);
                self.attempts_failed += 1;
            }
        }
    }
}
