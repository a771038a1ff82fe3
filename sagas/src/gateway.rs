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
pub struct Void {
    pub reference: String,
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
    /// Releases an authorization (of `amount`) from which nothing was
    /// captured.
    async fn void(
        &self,
        key: &str,
        authorization: &str,
        amount: Money,
    ) -> Result<Void, GatewayError>;
}

/// A gateway whose calls are counted by operation and outcome
/// (`freshledger_gateway_calls_total`, `approved`, `declined`, `timeout`,
/// `invalid`) and timed (`freshledger_gateway_call_duration_seconds`).
pub struct Metered<G>(pub G);

fn metered<T>(
    gateway: &str,
    operation: &'static str,
    started: std::time::Instant,
    r: Result<T, GatewayError>,
) -> Result<T, GatewayError> {
    let outcome = match &r {
        Ok(_) => "approved",
        Err(GatewayError::Declined { .. }) => "declined",
        Err(GatewayError::Timeout) => "timeout",
        Err(GatewayError::Invalid(_)) => "invalid",
    };
    metrics::counter!("freshledger_gateway_calls_total", "gateway" => gateway.to_string(), "operation" => operation, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("freshledger_gateway_call_duration_seconds", "gateway" => gateway.to_string(), "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    r
}

#[async_trait]
impl<G: PaymentGateway> PaymentGateway for Metered<G> {
    fn name(&self) -> &str {
        self.0.name()
    }
    async fn authorize(&self, key: &str, amount: Money) -> Result<Authorization, GatewayError> {
        let t = std::time::Instant::now();
        metered(
            self.name(),
            "authorize",
            t,
            self.0.authorize(key, amount).await,
        )
    }
    async fn capture(
        &self,
        key: &str,
        authorization: &str,
        amount: Money,
    ) -> Result<Capture, GatewayError> {
        let t = std::time::Instant::now();
        let r = self.0.capture(key, authorization, amount).await;
        metered(self.name(), "capture", t, r)
    }
    async fn refund(
        &self,
        key: &str,
        capture: &str,
        amount: Money,
    ) -> Result<Refund, GatewayError> {
        let t = std::time::Instant::now();
        metered(
            self.name(),
            "refund",
            t,
            self.0.refund(key, capture, amount).await,
        )
    }
    async fn void(
        &self,
        key: &str,
        authorization: &str,
        amount: Money,
    ) -> Result<Void, GatewayError> {
        let t = std::time::Instant::now();
        let r = self.0.void(key, authorization, amount).await;
        metered(self.name(), "void", t, r)
    }
}

/// How the simulated gateway answers authorizations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approve,
    Decline,
    /// Never answers within the caller's patience.
    Timeout,
    /// Sandbox test amounts (as Braintree's sandbox does): an amount whose
    /// minor units end in `51` is declined, in `52` times out, any other is
    /// approved. Lets one server show every outcome.
    ByAmount,
}

impl Outcome {
    fn for_amount(self, amount: Money) -> Outcome {
        match (self, amount.amount_minor() % 100) {
            (Outcome::ByAmount, 51) => Outcome::Decline,
            (Outcome::ByAmount, 52) => Outcome::Timeout,
            (Outcome::ByAmount, _) => Outcome::Approve,
            (o, _) => o,
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "approve" => Outcome::Approve,
            "decline" => Outcome::Decline,
            "timeout" => Outcome::Timeout,
            "by-amount" => Outcome::ByAmount,
            _ => return Err(format!("{s:?}: approve, decline, timeout or by-amount")),
        })
    }
}

/// A gateway in memory, for demos and tests: its outcome and latency are
/// configured, its bookkeeping is real (captures within the hold, refunds
/// within captures, idempotent keys).
///
/// Its memory lasts as long as the process. After a restart it honours
/// references it did not issue (as if its state lived elsewhere, as a real
/// gateway's does), so sagas in flight across a restart can finish.
pub struct SimulatedGateway {
    outcome: Outcome,
    latency: Duration,
    state: Mutex<State>,
    /// Distinguishes this process's references from an earlier one's.
    epoch: String,
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
            epoch: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
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

impl SimulatedGateway {
    fn reference(&self, s: &mut State, prefix: &str) -> String {
        s.next += 1;
        format!("{prefix}_{}_{:08}", self.epoch, s.next)
    }

    /// The bookkeeping of `reference` (a hold or a capture: amount, and
    /// what was taken from it). One an earlier process issued is taken on
    /// trust at `amount` (see the type's documentation).
    fn entry<'a>(
        &self,
        book: &'a mut HashMap<String, (Money, i64)>,
        reference: &str,
        amount: Money,
    ) -> Option<&'a (Money, i64)> {
        let foreign = !reference.contains(&format!("_{}_", self.epoch));
        if foreign && !book.contains_key(reference) {
            book.insert(reference.to_string(), (amount, 0));
        }
        book.get(reference)
    }
}

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    fn name(&self) -> &str {
        "simulated"
    }

    async fn authorize(&self, key: &str, amount: Money) -> Result<Authorization, GatewayError> {
        let outcome = self.outcome.for_amount(amount);
        self.answer(key, |s| match outcome {
            Outcome::Decline => Err(GatewayError::Declined {
                code: "card_declined".into(),
            }),
            Outcome::Timeout => Err(GatewayError::Timeout),
            Outcome::Approve | Outcome::ByAmount => {
                let r = self.reference(s, "auth");
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
            let (held, taken) =
                *self
                    .entry(&mut s.holds, authorization, amount)
                    .ok_or_else(|| {
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
            let r = self.reference(s, "ch");
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
            let (captured, refunded) = *self
                .entry(&mut s.captures, capture, amount)
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
            Ok((self.reference(s, "re"), amount))
        })
        .await
        .map(|(reference, amount)| Refund { reference, amount })
    }

    async fn void(
        &self,
        key: &str,
        authorization: &str,
        amount: Money,
    ) -> Result<Void, GatewayError> {
        self.answer(key, |s| {
            let (held, taken) =
                *self
                    .entry(&mut s.holds, authorization, amount)
                    .ok_or_else(|| {
                        GatewayError::Invalid(format!("no authorization {authorization}"))
                    })?;
            if taken > 0 {
                return Err(GatewayError::Invalid(
                    "money was captured; refund instead".into(),
                ));
            }
            // A voided hold can capture nothing more.
            s.holds
                .insert(authorization.to_string(), (held, held.amount_minor()));
            Ok((self.reference(s, "void"), held))
        })
        .await
        .map(|(reference, _)| Void { reference })
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

    #[tokio::test]
    async fn a_voided_hold_captures_nothing_and_a_captured_one_cannot_be_voided() {
        let g = SimulatedGateway::new(Outcome::Approve, Duration::ZERO);
        let a = g.authorize("v:auth", eur(700)).await.unwrap();
        g.void("v:void", &a.reference, eur(700)).await.unwrap();
        assert!(g.capture("v:cap", &a.reference, eur(1)).await.is_err());
        let b = g.authorize("w:auth", eur(700)).await.unwrap();
        g.capture("w:cap", &b.reference, eur(100)).await.unwrap();
        assert!(g.void("w:void", &b.reference, eur(700)).await.is_err());
    }

    #[tokio::test]
    async fn test_amounts_choose_the_outcome() {
        let g = SimulatedGateway::new(Outcome::ByAmount, Duration::ZERO);
        assert!(g.authorize("a", eur(1_000)).await.is_ok());
        assert_eq!(
            g.authorize("b", eur(1_051)).await,
            Err(GatewayError::Declined {
                code: "card_declined".into()
            })
        );
        assert_eq!(g.authorize("c", eur(252)).await, Err(GatewayError::Timeout));
        assert_eq!("by-amount".parse::<Outcome>(), Ok(Outcome::ByAmount));
        assert!("maybe".parse::<Outcome>().is_err());
    }

    #[tokio::test]
    async fn references_from_an_earlier_process_are_honoured() {
        let before = SimulatedGateway::new(Outcome::Approve, Duration::ZERO);
        let a = before.authorize("r:auth", eur(500)).await.unwrap();
        let after = SimulatedGateway::new(Outcome::Approve, Duration::ZERO);
        let c = after
            .capture("r:cap", &a.reference, eur(500))
            .await
            .unwrap();
        assert_eq!(c.amount, eur(500));
        // Its own references are still checked.
        let own = after.authorize("r2:auth", eur(100)).await.unwrap();
        assert!(after
            .capture("r2:cap", &own.reference, eur(101))
            .await
            .is_err());
    }
}
