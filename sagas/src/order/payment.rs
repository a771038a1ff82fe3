//! Payment: open the order's payment, ask the gateway for a hold, mark the
//! order paid, time out unpaid holds, capture on delivery, and give the
//! money back when an order is cancelled.

use std::time::Duration;

use domain::order::{Order, OrderCommand as OC, OrderError, OrderStatus};
use domain::payment::{PaymentCommand as PC, PaymentError};
use event_schemas::order::{Allocation, CancellationReason, PaymentMethod, RefundReason};
use event_schemas::values::{Money, OrderId};
use event_schemas::{EventMetadata, RecordedEvent};
use store::HandlerError;

use super::steps::{compensated, done, text};
use super::{payment_id, OrderSaga, Phase};
use crate::fail;
use crate::gateway::GatewayError;

impl OrderSaga {
    pub(super) async fn initiate_payment(
        &self,
        order_id: OrderId,
        method: PaymentMethod,
        amount_due: Money,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        let pid = payment_id(order_id);
        let gateway = match method {
            PaymentMethod::Card => Some(text(self.gateway.name())),
            PaymentMethod::CashOnDelivery => None,
        };
        let r = self
            .write
            .payments
            .execute(
                &pid.to_string(),
                PC::InitiatePayment {
                    payment_id: pid,
                    order_id,
                    method,
                    gateway,
                    amount_due,
                },
                meta,
            )
            .await;
        done(r, |e| matches!(e, PaymentError::AlreadyInitiated))?;
        Ok(())
    }

    /// Asks the gateway for a hold; on approval the order is paid.
    pub(super) async fn authorize(
        &self,
        order_id: OrderId,
        total: Money,
        meta: &EventMetadata,
    ) -> Result<Phase, HandlerError> {
        let pid = payment_id(order_id);
        let key = format!("{pid}:authorize");
        let mut attempt = 0;
        let answer = loop {
            attempt += 1;
            match self.gateway.authorize(&key, total).await {
                Err(GatewayError::Timeout) if attempt < self.config.gateway_attempts => {
                    tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
                }
                other => break other,
            }
        };
        match answer {
            Ok(auth) => {
                let r = self
                    .write
                    .payments
                    .execute(
                        &pid.to_string(),
                        PC::AuthorizePayment {
                            amount: auth.amount,
                            gateway_reference: text(&auth.reference),
                        },
                        meta,
                    )
                    .await;
                done(r, |e| matches!(e, PaymentError::AlreadyAuthorized))?;
                let r = self
                    .write
                    .orders
                    .execute(
                        &order_id.to_string(),
                        OC::MarkPaid {
                            payment_id: pid,
                            amount: total,
                        },
                        meta,
                    )
                    .await;
                // Cancelled meanwhile: its compensation voids the hold.
                Ok(
                    match done(r, |e| matches!(e, OrderError::IllegalTransition { .. }))? {
                        true => Phase::ReadyToPack,
                        false => Phase::Cancelled,
                    },
                )
            }
            Err(GatewayError::Declined { code }) => {
                let r = self
                    .write
                    .payments
                    .execute(
                        &pid.to_string(),
                        PC::FailPayment {
                            code: text(&code),
                            message: text("the card was declined"),
                        },
                        meta,
                    )
                    .await;
                done(r, |e| matches!(e, PaymentError::Failed))?;
                self.cancel(
                    order_id,
                    CancellationReason::PaymentFailed,
                    &format!("payment declined: {code}"),
                    meta,
                )
                .await?;
                Ok(Phase::Cancelled)
            }
            // No answer: the payment stays pending; the reservation hold
            // decides.
            Err(GatewayError::Timeout) => Ok(Phase::AwaitingPayment),
            Err(e @ GatewayError::Invalid(_)) => Err(Box::new(e)),
        }
    }

    pub(super) async fn on_paid(
        &self,
        order_id: OrderId,
        _event: &RecordedEvent,
        meta: EventMetadata,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        self.cancel_hold(order_id, &meta).await?;
        Ok(Some((Phase::ReadyToPack, None)))
    }

    pub(super) async fn on_hold_expired(
        &self,
        order_id: OrderId,
        event: &RecordedEvent,
        meta: EventMetadata,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        let (order, _) = self.order(order_id, event).await?;
        if order.status() != Some(OrderStatus::Created)
            || order.placed().map(|p| p.payment_method) != Some(PaymentMethod::Card)
        {
            return Ok(None);
        }
        let pid = payment_id(order_id);
        let (payment, _) = self.write.payments.load_cached(&pid.to_string(), 0).await?;
        if payment.amount_authorized().is_some() && !payment.is_voided() {
            // Authorized but the order not yet marked: finish instead.
            let total = order.total().ok_or("order total overflows")?;
            let r = self
                .write
                .orders
                .execute(
                    &order_id.to_string(),
                    OC::MarkPaid {
                        payment_id: pid,
                        amount: total,
                    },
                    &meta,
                )
                .await;
            done(r, |e| matches!(e, OrderError::IllegalTransition { .. }))?;
            return Ok(Some((Phase::ReadyToPack, None)));
        }
        if payment.amount_due().is_some() && !payment.is_failed() {
            self.close_payment(
                order_id,
                "timeout",
                "not paid within the reservation hold",
                &meta,
            )
            .await?;
        }
        self.cancel(
            order_id,
            CancellationReason::PaymentTimeout,
            "not paid within the reservation hold",
            &meta,
        )
        .await?;
        Ok(Some((Phase::Cancelled, None)))
    }

    pub(super) async fn on_delivered(
        &self,
        order_id: OrderId,
        event: &RecordedEvent,
        meta: EventMetadata,
    ) -> Result<Option<(Phase, Option<Vec<Allocation>>)>, HandlerError> {
        let (order, _) = self.order(order_id, event).await?;
        if order.placed().map(|p| p.payment_method) != Some(PaymentMethod::Card) {
            // Cash is collected by the rider (CashCollected completes it).
            return Ok(Some((Phase::Delivered, None)));
        }
        let pid = payment_id(order_id);
        let (payment, _) = self.write.payments.load_cached(&pid.to_string(), 0).await?;
        let (Some(held), Some(reference)) = (
            payment.amount_authorized(),
            payment.authorization_reference().cloned(),
        ) else {
            return Ok(Some((Phase::Delivered, None)));
        };
        if payment.amount_captured().is_some_and(|m| !m.is_zero()) {
            return Ok(Some((Phase::Completed, None)));
        }
        // The packed total (weighed goods may come out lighter); the rest of
        // the hold lapses.
        let total = order.total().ok_or("order total overflows")?;
        let amount = if total.amount_minor() <= held.amount_minor() {
            total
        } else {
            held
        };
        let capture = self
            .gateway
            .capture(&format!("{pid}:capture"), reference.as_str(), amount)
            .await
            .map_err(|e| Box::new(e) as HandlerError)?;
        self.write
            .payments
            .execute(
                &pid.to_string(),
                PC::CapturePayment {
                    amount: capture.amount,
                    gateway_reference: text(&capture.reference),
                },
                &meta,
            )
            .await
            .map_err(fail)?;
        Ok(Some((Phase::Completed, None)))
    }

    /// The money of a cancelled order: an authorized hold is voided (that
    /// is the customer's refund: nothing is captured before delivery), a
    /// pending payment is closed, and what was paid is asked back.
    pub(super) async fn compensate_payment(
        &self,
        order_id: OrderId,
        order: &Order,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        let pid = payment_id(order_id);
        let (payment, _) = self.write.payments.load_cached(&pid.to_string(), 0).await?;
        let captured = payment.amount_captured().is_some_and(|m| !m.is_zero());
        if let (Some(held), Some(reference), false, false, false) = (
            payment.amount_authorized(),
            payment.authorization_reference().cloned(),
            payment.is_voided(),
            payment.is_failed(),
            captured,
        ) {
            self.gateway
                .void(&format!("{pid}:void"), reference.as_str(), held)
                .await
                .map_err(|e| Box::new(e) as HandlerError)?;
            let r = self
                .write
                .payments
                .execute(
                    &pid.to_string(),
                    PC::VoidPayment {
                        gateway_reference: reference,
                    },
                    meta,
                )
                .await;
            if done(r, |e| matches!(e, PaymentError::Voided))? {
                compensated("void_payment");
            }
        } else if payment.amount_due().is_some()
            && payment.method() == Some(PaymentMethod::Card)
            && !payment.is_failed()
            && !payment.is_voided()
            && !captured
        {
            self.close_payment(
                order_id,
                "order_cancelled",
                "the order was cancelled before payment",
                meta,
            )
            .await?;
        }
        if let Some(refundable) = order.refundable().filter(|m| !m.is_zero()) {
            let r = self
                .write
                .orders
                .execute(
                    &order_id.to_string(),
                    OC::RequestRefund {
                        amount: refundable,
                        reason: RefundReason::OrderCancelled,
                    },
                    meta,
                )
                .await;
            if done(r, |e| matches!(e, OrderError::RefundExceedsPaid { .. }))? {
                compensated("request_refund");
            }
        }
        Ok(())
    }

    /// Closes the order's payment as failed, unless it already failed or
    /// was voided.
    async fn close_payment(
        &self,
        order_id: OrderId,
        code: &str,
        message: &str,
        meta: &EventMetadata,
    ) -> Result<(), HandlerError> {
        let r = self
            .write
            .payments
            .execute(
                &payment_id(order_id).to_string(),
                PC::FailPayment {
                    code: text(code),
                    message: text(message),
                },
                meta,
            )
            .await;
        done(r, |e| {
            matches!(e, PaymentError::Failed | PaymentError::Voided)
        })?;
        Ok(())
    }
}
