//! Payment gateways, shaped like Stripe's: authorize a hold, capture (part
//! of) it, refund (part of) a capture. Every call carries an idempotency
//! key: the same key returns the first answer and moves no money twice, so
//! a saga that retries after a crash never double-charges.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use domain::values::Money;

/// What a gateway answers to an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The gateway's reference for the hold (`auth_…`).
    pub reference: String,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub reference: String,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub reference: String,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The card was declined: final, do not retry.
    #[error("declined: {code}")]
    Declined { code: String },
    /// No answer in time: the outcome is unknown; retry with the same key.
    #[error("the gateway timed out")]
    Timeout,
    /// The request itself was wrong (unknown reference, amount too large).
    #[error("invalid request: {0}")]
    Invalid(String),
}

#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// The gateway's name, recorded on the payment (`simulated`, `stripe`).
    fn name(&self) -> &str;
    async fn authorize(&self, key: &str, amount: Money) -> Result<Authorization, GatewayError>;
    async fn capture(
        &self,
        key: &str,
        authorization: &str,
        amount: Money,
    ) -> Result<Capture, GatewayError>;
    async fn refund(&self, key: &str, capture: &str, amount: Money)
        -> Result<Refund, GatewayError>;
}

/// How the simulated gateway answers authorizations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approve,
    Decline,
    /// Never answers within the caller's patience.
    Timeout,
}

/// A gateway in memory, for demos and tests: its outcome and latency are
/// configured, its bookkeeping is real (captures within the hold, refunds
/// within captures, idempotent keys).
pub struct SimulatedGateway {
    outcome: Outcome,
    latency: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Answers already given, by idempotency key.
    answers: HashMap<String, Result<(String, Money), GatewayError>>,
    /// authorization → (held, captured so far)
    holds: HashMap<String, (Money, i64)>,
    /// capture → (captured, refunded so far)
    captures: HashMap<String, (Money, i64)>,
    next: u64,
}

impl SimulatedGateway {
    pub fn new(outcome: Outcome, latency: Duration) -> Self {
        SimulatedGateway {
            outcome,
            latency,
            state: Mutex::new(State::default()),
        }
    }

    async fn answer(
        &self,
        key: &str,
        decide: impl FnOnce(&mut State) -> Result<(String, Money), GatewayError>,
    ) -> Result<(String, Money), GatewayError> {
        tokio::time::sleep(self.latency).await;
        let mut s = self.state.lock().expect("gateway lock");
        if let Some(a) = s.answers.get(key) {
            return a.clone();
        }
        let a = decide(&mut s);
        // A timeout is not an answer: the same key may be retried.
        if a != Err(GatewayError::Timeout) {
            s.answers.insert(key.to_string(), a.clone());
        }
        a
    }
}

fn reference(s: &mut State, prefix: &str) -> String {
    s.next += 1;
    format!("{prefix}_{:08}", s.next)
}

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    fn name(&self) -> &str {
        "simulated"
    }

    async fn authorize(&self, key: &str, amount: Money) -> Result<Authorization, GatewayError> {
        let outcome = self.outcome;
        self.answer(key, |s| match outcome {
            Outcome::Decline => Err(GatewayError::Declined {
                code: "card_declined".into(),
            }),
            Outcome::Timeout => Err(GatewayError::Timeout),
            Outcome::Approve => {
                let r = reference(s, "auth");
                s.holds.insert(r.clone(), (amount, 0));
                Ok((r, amount))
            }
        })
        .await
        .map(|(reference, amount)| Authorization { reference, amount })
    }

    async fn capture(
        &self,
        key: &str,
        authorization: &str,
        amount: Money,
    ) -> Result<Capture, GatewayError> {
        self.answer(key, |s| {
            let (held, taken) = *s.holds.get(authorization).ok_or_else(|| {
                GatewayError::Invalid(format!("no authorization {authorization}"))
            })?;
            if amount.currency() != held.currency()
                || taken + amount.amount_minor() > held.amount_minor()
            {
                return Err(GatewayError::Invalid(
                    "capture exceeds the authorization".into(),
                ));
            }
            s.holds.insert(
                authorization.to_string(),
                (held, taken + amount.amount_minor()),
            );
            let r = reference(s, "ch");
            s.captures.insert(r.clone(), (amount, 0));
            Ok((r, amount))
        })
        .await
        .map(|(reference, amount)| Capture { reference, amount })
    }

    async fn refund(
        &self,
        key: &str,
        capture: &str,
        amount: Money,
    ) -> Result<Refund, GatewayError> {
        self.answer(key, |s| {
            let (captured, refunded) = *s
                .captures
                .get(capture)
                .ok_or_else(|| GatewayError::Invalid(format!("no capture {capture}")))?;
            if amount.currency() != captured.currency()
                || refunded + amount.amount_minor() > captured.amount_minor()
            {
                return Err(GatewayError::Invalid("refund exceeds the capture".into()));
            }
            s.captures.insert(
                capture.to_string(),
                (captured, refunded + amount.amount_minor()),
            );
            Ok((reference(s, "re"), amount))
        })
        .await
        .map(|(reference, amount)| Refund { reference, amount })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::values::Currency;

    fn eur(m: i64) -> Money {
        Money::new(m, Currency::EUR).unwrap()
    }

    #[tokio::test]
    async fn authorize_capture_refund_within_bounds() {
        let g = SimulatedGateway::new(Outcome::Approve, Duration::ZERO);
        let a = g.authorize("order-1:auth", eur(1_000)).await.unwrap();
        let c = g
            .capture("order-1:cap", &a.reference, eur(900))
            .await
            .unwrap();
        assert_eq!(c.amount, eur(900));
        assert!(
            g.capture("order-1:cap2", &a.reference, eur(101))
                .await
                .is_err(),
            "beyond the hold"
        );
        g.refund("order-1:re1", &c.reference, eur(500))
            .await
            .unwrap();
        assert!(
            g.refund("order-1:re2", &c.reference, eur(401))
                .await
                .is_err(),
            "beyond the capture"
        );
        // A refused request is remembered under its key too (as Stripe
        // does); a corrected request takes a new key.
        assert!(g
            .refund("order-1:re2", &c.reference, eur(400))
            .await
            .is_err());
        g.refund("order-1:re3", &c.reference, eur(400))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_same_key_never_moves_money_twice() {
        let g = SimulatedGateway::new(Outcome::Approve, Duration::ZERO);
        let a1 = g.authorize("k-auth", eur(1_000)).await.unwrap();
        let a2 = g.authorize("k-auth", eur(1_000)).await.unwrap();
        assert_eq!(a1, a2, "a retried authorization is the same hold");
        let c1 = g.capture("k-cap", &a1.reference, eur(1_000)).await.unwrap();
        let c2 = g.capture("k-cap", &a1.reference, eur(1_000)).await.unwrap();
        assert_eq!(c1, c2, "a retried capture takes nothing more");
    }

    #[tokio::test]
    async fn declines_are_final_and_timeouts_can_be_retried() {
        let d = SimulatedGateway::new(Outcome::Decline, Duration::ZERO);
        assert_eq!(
            d.authorize("k", eur(1)).await,
            Err(GatewayError::Declined {
                code: "card_declined".into()
            })
        );
        let t = SimulatedGateway::new(Outcome::Timeout, Duration::from_millis(5));
        assert_eq!(t.authorize("k", eur(1)).await, Err(GatewayError::Timeout));
        assert!(
            t.state.lock().unwrap().answers.is_empty(),
            "a timeout is not remembered"
        );
    }
}
