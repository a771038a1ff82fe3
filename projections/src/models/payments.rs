//! `payments`: every payment's method, status and money (`rm_payments`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_schemas::order::PaymentMethod;
use event_schemas::payment::PaymentEvent;
use event_schemas::values::{Currency, OrderId, PaymentId};
use event_schemas::{AnyEvent, RecordedEvent};
use serde::Deserialize;
use store::sql::{exec, fetch, Arg};
use store::{Store, StoreError, StoreTx};

use super::{all_typed, decode, ts, word, ReadModel, Table};

const PAYMENTS: &str = "rm_payments";

pub(super) struct Payments;

/// One payment.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentRow {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub method: PaymentMethod,
    pub gateway: Option<String>,
    /// INITIATED, AUTHORIZED, CAPTURED, FAILED, VOIDED or COLLECTED.
    pub status: String,
    pub currency: Currency,
    pub due_minor: i64,
    pub authorized_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub collected_minor: i64,
    pub failure_code: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub position: u64,
}

/// The payments of one order, oldest first.
pub async fn payments_of_order(
    store: &Store,
    order_id: &str,
) -> Result<Vec<PaymentRow>, StoreError> {
    let rows = fetch(
        store,
        &format!("SELECT * FROM {PAYMENTS} WHERE order_id = ? ORDER BY position"),
        &[order_id.into()],
    )
    .await?;
    all_typed(PAYMENTS, rows)
}

#[async_trait]
impl ReadModel for Payments {
    fn name(&self) -> &'static str {
        "payments"
    }

    fn tables(&self) -> &'static [Table] {
        &[Table {
            name: PAYMENTS,
            order_by: "payment_id",
        }]
    }

    fn ddl(&self, suffix: &str, tag: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE {PAYMENTS}{suffix} (payment_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, method TEXT NOT NULL, gateway TEXT, \
                 status TEXT NOT NULL, currency TEXT NOT NULL, due_minor BIGINT NOT NULL, authorized_minor BIGINT NOT NULL, \
                 captured_minor BIGINT NOT NULL, refunded_minor BIGINT NOT NULL, collected_minor BIGINT NOT NULL, \
                 failure_code TEXT, updated_at TEXT NOT NULL, position BIGINT NOT NULL)"
            ),
            format!("CREATE INDEX ix_payments_order_{tag} ON {PAYMENTS}{suffix} (order_id)"),
        ]
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_type == PaymentEvent::STREAM_TYPE
    }

    async fn apply(&self, tx: &mut StoreTx, s: &str, e: &RecordedEvent) -> Result<(), StoreError> {
        let AnyEvent::Payment(ev) = decode(e)? else {
            return Ok(());
        };
        let at = ts(&e.occurred_at);
        let pos = e.global_position as i64;
        let id = e.stream_id.as_str();
        let t = format!("{PAYMENTS}{s}");
        use PaymentEvent as E;
        let (set, mut args): (&str, Vec<Arg>) = match ev {
            E::PaymentInitiated(p) => {
                exec(tx, &format!(
                    "INSERT INTO {t} (payment_id, order_id, method, gateway, status, currency, due_minor, authorized_minor, \
                     captured_minor, refunded_minor, collected_minor, updated_at, position) \
                     VALUES (?, ?, ?, ?, 'INITIATED', ?, ?, 0, 0, 0, 0, ?, ?)"),
                    &[id.into(), p.order_id.to_string().into(), word::<PaymentMethod>(&p.method).into(),
                      p.gateway.map(|g| g.to_string()).into(), p.amount_due.currency().to_string().into(),
                      p.amount_due.amount_minor().into(), at.as_str().into(), pos.into()]).await?;
                return Ok(());
            }
            E::PaymentAuthorized(a) => (
                "status = 'AUTHORIZED', authorized_minor = ?",
                vec![a.amount.amount_minor().into()],
            ),
            E::PaymentCaptured(c) => (
                "status = 'CAPTURED', captured_minor = captured_minor + ?",
                vec![c.amount.amount_minor().into()],
            ),
            E::PaymentFailed(f) => (
                "status = 'FAILED', failure_code = ?",
                vec![f.code.to_string().into()],
            ),
            E::PaymentRefunded(r) => (
                "refunded_minor = refunded_minor + ?",
                vec![r.amount.amount_minor().into()],
            ),
            E::PaymentVoided(_) => ("status = 'VOIDED'", vec![]),
            E::CashCollected(c) => (
                "status = 'COLLECTED', collected_minor = ?",
                vec![c.amount.amount_minor().into()],
            ),
        };
        args.extend([at.as_str().into(), pos.into(), id.into()]);
        exec(
            tx,
            &format!("UPDATE {t} SET {set}, updated_at = ?, position = ? WHERE payment_id = ?"),
            &args,
        )
        .await?;
        Ok(())
    }
}
