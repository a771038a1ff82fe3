//! `Payment`: money for one order, by card through a gateway or in cash at
//! the door. What is due, authorized, captured, collected and refunded is
//! only ever the fold of the events; nothing is stored beside them.
//!
//! Invariants: captured <= authorized; refunded <= captured + collected.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use event_schemas::order::PaymentMethod;
use event_schemas::payment::*;
use event_schemas::values::*;

use crate::error::{DomainError, ErrorKind};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PaymentCommand {
    InitiatePayment {
        payment_id: PaymentId,
        order_id: OrderId,
        method: PaymentMethod,
        gateway: Option<GatewayName>,
        amount_due: Money,
    },
    /// Gateway callback: a hold was placed (at least the amount due).
    AuthorizePayment {
        amount: Money,
        gateway_reference: GatewayReference,
    },
    /// Takes authorized money; several partial captures are allowed.
    CapturePayment {
        amount: Money,
        gateway_reference: GatewayReference,
    },
    FailPayment {
        code: Text<64>,
        message: Note,
    },
    RefundPayment {
        amount: Money,
        gateway_reference: Option<GatewayReference>,
        note: Option<Note>,
    },
    CollectCash {
        amount: Money,
        rider_id: RiderId,
    },
    /// Releases an authorization from which nothing was captured.
    VoidPayment {
        gateway_reference: GatewayReference,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", content = "details", rename_all = "snake_case")]
pub enum PaymentError {
    #[error("payment has not been initiated")]
    NotInitiated,
    #[error("payment was already initiated")]
    AlreadyInitiated,
    #[error("a card payment needs a gateway; cash on delivery has none")]
    GatewayMismatch,
    #[error("an amount of money must not be zero")]
    ZeroAmount,
    #[error("amount is in {given}, payment is in {expected}")]
    CurrencyMismatch { expected: Currency, given: Currency },
    #[error(
        "this operation is for {} payments",
        crate::error::spelled(.expected, true)
    )]
    WrongMethod { expected: PaymentMethod },
    #[error("payment has failed")]
    Failed,
    #[error("payment is already authorized")]
    AlreadyAuthorized,
    #[error("authorized {authorized} is less than the {due} due")]
    AuthorizationBelowDue { authorized: Money, due: Money },
    #[error("payment is not authorized")]
    NotAuthorized,
    #[error("capturing {requested} would exceed the {remaining} still authorized")]
    CaptureExceedsAuthorized { requested: Money, remaining: Money },
    #[error("money was already taken; refund instead of failing")]
    AlreadyCaptured,
    #[error("refunding {requested} would exceed the {refundable} refundable")]
    RefundExceedsCaptured { requested: Money, refundable: Money },
    #[error("cash was already collected")]
    AlreadyCollected,
    #[error("the authorization was voided")]
    Voided,
}

impl DomainError for PaymentError {
    const CODES: &'static [(&'static str, ErrorKind)] = &[
        ("payment_not_found", ErrorKind::NotFound),
        ("payment_already_initiated", ErrorKind::Conflict),
        ("gateway_mismatch", ErrorKind::Invalid),
        ("zero_amount", ErrorKind::Invalid),
        ("currency_mismatch", ErrorKind::Invalid),
        ("wrong_payment_method", ErrorKind::Conflict),
        ("payment_failed", ErrorKind::Conflict),
        ("already_authorized", ErrorKind::Conflict),
        ("authorization_below_due", ErrorKind::Conflict),
        ("not_authorized", ErrorKind::Conflict),
        ("capture_exceeds_authorized", ErrorKind::Conflict),
        ("already_captured", ErrorKind::Conflict),
        ("refund_exceeds_captured", ErrorKind::Conflict),
        ("already_collected", ErrorKind::Conflict),
        ("payment_voided", ErrorKind::Conflict),
    ];
    fn code(&self) -> &'static str {
        use PaymentError::*;
        match self {
            NotInitiated => "payment_not_found",
            AlreadyInitiated => "payment_already_initiated",
            GatewayMismatch => "gateway_mismatch",
            ZeroAmount => "zero_amount",
            CurrencyMismatch { .. } => "currency_mismatch",
            WrongMethod { .. } => "wrong_payment_method",
            Failed => "payment_failed",
            AlreadyAuthorized => "already_authorized",
            AuthorizationBelowDue { .. } => "authorization_below_due",
            NotAuthorized => "not_authorized",
            CaptureExceedsAuthorized { .. } => "capture_exceeds_authorized",
            AlreadyCaptured => "already_captured",
            RefundExceedsCaptured { .. } => "refund_exceeds_captured",
            AlreadyCollected => "already_collected",
            Voided => "payment_voided",
        }
    }
    fn kind(&self) -> ErrorKind {
        use PaymentError::*;
        match self {
            NotInitiated => ErrorKind::NotFound,
            GatewayMismatch | ZeroAmount | CurrencyMismatch { .. } => ErrorKind::Invalid,
            _ => ErrorKind::Conflict,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Started {
    payment_id: PaymentId,
    order_id: OrderId,
    method: PaymentMethod,
    amount_due: Money,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    started: Option<Started>,
    authorized: Option<Money>,
    captured: Vec<Money>,
    refunded: Vec<Money>,
    collected: Option<Money>,
    failed: bool,
    #[serde(default)]
    voided: bool,
    /// The gateway's reference for the hold, to capture or void it.
    #[serde(default)]
    authorization: Option<GatewayReference>,
}

fn sum(currency: Currency, amounts: &[Money]) -> Money {
    let minor = amounts.iter().map(|m| m.amount_minor()).sum();
    Money::new(minor, currency).expect("sums of non-negative amounts")
}

impl Payment {
    fn currency(&self) -> Option<Currency> {
        self.started.as_ref().map(|s| s.amount_due.currency())
    }
    pub fn order_id(&self) -> Option<OrderId> {
        self.started.as_ref().map(|s| s.order_id)
    }
    pub fn amount_due(&self) -> Option<Money> {
        self.started.as_ref().map(|s| s.amount_due)
    }
    pub fn amount_authorized(&self) -> Option<Money> {
        self.authorized
    }
    pub fn amount_captured(&self) -> Option<Money> {
        Some(sum(self.currency()?, &self.captured))
    }
    pub fn amount_collected(&self) -> Option<Money> {
        self.collected
    }
    pub fn amount_refunded(&self) -> Option<Money> {
        Some(sum(self.currency()?, &self.refunded))
    }
    /// Captured plus collected, less refunded.
    pub fn refundable(&self) -> Option<Money> {
        let taken = self
            .amount_captured()?
            .checked_add(self.collected.unwrap_or(Money::zero(self.currency()?)))
            .ok()?;
        taken.checked_sub(self.amount_refunded()?).ok()
    }
    pub fn is_failed(&self) -> bool {
        self.failed
    }
    pub fn is_voided(&self) -> bool {
        self.voided
    }
    pub fn method(&self) -> Option<PaymentMethod> {
        self.started.as_ref().map(|s| s.method)
    }
    pub fn authorization_reference(&self) -> Option<&GatewayReference> {
        self.authorization.as_ref()
    }
}

impl Aggregate for Payment {
    const TYPE: &'static str = "Payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        use PaymentCommand as C;
        use PaymentError as E;

        if let C::InitiatePayment {
            payment_id,
            order_id,
            method,
            gateway,
            amount_due,
        } = command
        {
            if self.started.is_some() {
                return Err(E::AlreadyInitiated);
            }
            if (method == PaymentMethod::Card) != gateway.is_some() {
                return Err(E::GatewayMismatch);
            }
            if amount_due.is_zero() {
                return Err(E::ZeroAmount);
            }
            let e = PaymentInitiated {
                payment_id,
                order_id,
                method,
                gateway,
                amount_due,
            };
            sink.write(e.into(), self).await;
            return Ok(());
        }

        let started = self.started.clone().ok_or(E::NotInitiated)?;
        let currency = started.amount_due.currency();
        let check = |m: Money| -> Result<Money, PaymentError> {
            if m.currency() != currency {
                return Err(E::CurrencyMismatch {
                    expected: currency,
                    given: m.currency(),
                });
            }
            if m.is_zero() {
                return Err(E::ZeroAmount);
            }
            Ok(m)
        };
        let card_only = || {
            if started.method != PaymentMethod::Card {
                return Err(E::WrongMethod {
                    expected: PaymentMethod::Card,
                });
            }
            Ok(())
        };

        match command {
            C::InitiatePayment { .. } => unreachable!("handled above"),
            C::AuthorizePayment {
                amount,
                gateway_reference,
            } => {
                card_only()?;
                check(amount)?;
                if self.failed {
                    return Err(E::Failed);
                }
                if self.authorized.is_some() {
                    return Err(E::AlreadyAuthorized);
                }
                if amount.amount_minor() < started.amount_due.amount_minor() {
                    return Err(E::AuthorizationBelowDue {
                        authorized: amount,
                        due: started.amount_due,
                    });
                }
                let e = PaymentAuthorized {
                    amount,
                    gateway_reference,
                };
                sink.write(e.into(), self).await;
            }
            C::CapturePayment {
                amount,
                gateway_reference,
            } => {
                card_only()?;
                check(amount)?;
                if self.failed {
                    return Err(E::Failed);
                }
                if self.voided {
                    return Err(E::Voided);
                }
                let authorized = self.authorized.ok_or(E::NotAuthorized)?;
                let remaining = authorized
                    .checked_sub(self.amount_captured().expect("started"))
                    .expect("captured <= authorized");
                if amount.amount_minor() > remaining.amount_minor() {
                    return Err(E::CaptureExceedsAuthorized {
                        requested: amount,
                        remaining,
                    });
                }
                let e = PaymentCaptured {
                    amount,
                    gateway_reference,
                };
                sink.write(e.into(), self).await;
            }
            C::FailPayment { code, message } => {
                if self.failed {
                    return Err(E::Failed);
                }
                if self.voided {
                    return Err(E::Voided);
                }
                if !self.captured.is_empty() || self.collected.is_some() {
                    return Err(E::AlreadyCaptured);
                }
                sink.write(PaymentFailed { code, message }.into(), self)
                    .await;
            }
            C::RefundPayment {
                amount,
                gateway_reference,
                note,
            } => {
                check(amount)?;
                let refundable = self.refundable().expect("started");
                if amount.amount_minor() > refundable.amount_minor() {
                    return Err(E::RefundExceedsCaptured {
                        requested: amount,
                        refundable,
                    });
                }
                let e = PaymentRefunded {
                    amount,
                    gateway_reference,
                    note,
                };
                sink.write(e.into(), self).await;
            }
            C::VoidPayment { gateway_reference } => {
                card_only()?;
                if self.failed {
                    return Err(E::Failed);
                }
                if self.voided {
                    return Err(E::Voided);
                }
                let amount = self.authorized.ok_or(E::NotAuthorized)?;
                if !self.captured.is_empty() {
                    return Err(E::AlreadyCaptured);
                }
                let e = PaymentVoided {
                    amount,
                    gateway_reference,
                };
                sink.write(e.into(), self).await;
            }
            C::CollectCash { amount, rider_id } => {
                if started.method != PaymentMethod::CashOnDelivery {
                    return Err(E::WrongMethod {
                        expected: PaymentMethod::CashOnDelivery,
                    });
                }
                check(amount)?;
                if self.failed {
                    return Err(E::Failed);
                }
                if self.collected.is_some() {
                    return Err(E::AlreadyCollected);
                }
                sink.write(CashCollected { amount, rider_id }.into(), self)
                    .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use PaymentEvent as Ev;
        match event {
            Ev::PaymentInitiated(e) => {
                self.started = Some(Started {
                    payment_id: e.payment_id,
                    order_id: e.order_id,
                    method: e.method,
                    amount_due: e.amount_due,
                })
            }
            Ev::PaymentAuthorized(e) => {
                self.authorized = Some(e.amount);
                self.authorization = Some(e.gateway_reference);
            }
            Ev::PaymentCaptured(e) => self.captured.push(e.amount),
            Ev::PaymentFailed(_) => self.failed = true,
            Ev::PaymentRefunded(e) => self.refunded.push(e.amount),
            Ev::CashCollected(e) => self.collected = Some(e.amount),
            Ev::PaymentVoided(_) => self.voided = true,
        }
    }
}
