//! Request and response bodies. Every body refuses unknown fields, and every
//! value inside is a parsed value object: a body that deserialises is valid.

use chrono::{DateTime, Utc};
use domain::order::{LineRequest, PackRequest};
use domain::registry::Zone;
use domain::values::*;
use domain::{Category, Nutrition};
use event_schemas::delivery::ProofOfDelivery;
use event_schemas::inventory::{ColdChain, ReleaseReason, WriteOffReason};
use event_schemas::order::{Allocation, CancellationReason, PaymentMethod, RefundReason};
use event_schemas::payment::{GatewayName, GatewayReference};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What every successful command returns.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CommandResponse {
    pub stream_type: String,
    pub stream_id: String,
    /// The stream's version after the command.
    pub stream_version: u64,
    /// Events the command appended (0: it changed nothing).
    pub events_appended: usize,
    /// Global position of the last event appended: pass it to queries to
    /// read your own writes. Absent when nothing was appended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
}

/// A body with no fields (commands that need no input).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveBatch {
    /// Chosen by the server when absent.
    #[serde(default)]
    pub batch_id: Option<BatchId>,
    pub sku: Sku,
    pub warehouse_id: WarehouseId,
    pub supplier_id: SupplierId,
    pub quantity: Quantity,
    pub expires_at: DateTime<Utc>,
    pub procurement_cost: Money,
    pub cold_chain: ColdChain,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustStock {
    /// On hand as counted, in the batch's unit of measure.
    pub counted_on_hand: u64,
    #[serde(default)]
    pub note: Option<Note>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteOff {
    pub quantity: Quantity,
    pub reason: WriteOffReason,
    #[serde(default)]
    pub note: Option<Note>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reserve {
    pub order_id: OrderId,
    /// What the order is to hold on this batch in all: the same again is a
    /// no-op, more reserves the difference, less is refused
    /// (`reservation_mismatch`; release instead).
    pub quantity: Quantity,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub order_id: OrderId,
    pub reason: ReleaseReason,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pick {
    pub order_id: OrderId,
    pub quantity: Quantity,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub sku: Sku,
    pub quantity: Quantity,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// Chosen by the server when absent.
    #[serde(default)]
    pub order_id: Option<OrderId>,
    pub customer_id: CustomerId,
    pub warehouse_id: WarehouseId,
    pub lines: Vec<Line>,
    pub delivery_slot: DeliverySlot,
    pub delivery_address: Address,
    pub payment_method: PaymentMethod,
}

impl PlaceOrder {
    pub fn line_requests(&self) -> Vec<LineRequest> {
        self.lines
            .iter()
            .map(|l| LineRequest {
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmAllocation {
    pub allocations: Vec<Allocation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkPaid {
    pub payment_id: PaymentId,
    pub amount: Money,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackedLine {
    pub sku: Sku,
    pub packed_quantity: Quantity,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pack {
    pub lines: Vec<PackedLine>,
}

impl Pack {
    pub fn requests(&self) -> Vec<PackRequest> {
        self.lines
            .iter()
            .map(|l| PackRequest {
                sku: l.sku.clone(),
                packed_quantity: l.packed_quantity,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WithDelivery {
    pub delivery_id: DeliveryId,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelOrder {
    pub reason: CancellationReason,
    #[serde(default)]
    pub note: Option<Note>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestRefund {
    pub amount: Money,
    pub reason: RefundReason,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InitiatePayment {
    #[serde(default)]
    pub payment_id: Option<PaymentId>,
    pub order_id: OrderId,
    pub method: PaymentMethod,
    /// Required for card payments, absent for cash on delivery.
    #[serde(default)]
    pub gateway: Option<GatewayName>,
    pub amount_due: Money,
}

/// A payment gateway's callback (shaped like Stripe's charge events).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum GatewayEvent {
    Authorized {
        amount: Money,
        gateway_reference: GatewayReference,
    },
    Captured {
        amount: Money,
        gateway_reference: GatewayReference,
    },
    Failed {
        code: Text<64>,
        message: Note,
    },
    /// The hold was released without taking money.
    Voided {
        gateway_reference: GatewayReference,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundPayment {
    pub amount: Money,
    #[serde(default)]
    pub gateway_reference: Option<GatewayReference>,
    #[serde(default)]
    pub note: Option<Note>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectCash {
    pub amount: Money,
    pub rider_id: RiderId,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDelivery {
    #[serde(default)]
    pub delivery_id: Option<DeliveryId>,
    pub order_id: OrderId,
    pub slot: DeliverySlot,
    pub address: Address,
    pub cold_chain: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WithRider {
    pub rider_id: RiderId,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportLocation {
    pub location: GeoPoint,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteDelivery {
    pub proof: ProofOfDelivery,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailAttempt {
    pub reason: Note,
}

/// A catalogue entry as the back-office writes it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    pub name: Text<120>,
    pub categories: Vec<Category>,
    pub price: Money,
    pub per: PricingUnit,
    /// ISO 3166-1 alpha-2.
    pub origin: String,
    #[serde(default)]
    pub nutrition: Nutrition,
}

/// A warehouse as the back-office registers it (the id is in the path).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarehouseBody {
    pub name: Text<120>,
    pub address: Address,
    /// Its storage zones, 1 to 64, codes unique: a batch is received only
    /// where a zone keeps the storage it needs.
    #[schemars(length(min = 1, max = 64))]
    pub zones: Vec<Zone>,
}

/// A supplier as the back-office registers it (the id is in the path).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SupplierBody {
    pub name: Text<120>,
    pub contact: ContactBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    pub name: Text<120>,
    #[schemars(email, length(max = 254))]
    pub email: String,
    /// E.164: `+` and 7 to 15 digits.
    #[serde(default)]
    #[schemars(regex(pattern = domain::registry::E164_PATTERN))]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LogStatus {
    /// Highest global position safe to read up to.
    pub head_position: u64,
    pub event_count: u64,
    /// Every subscriber of the log (read models, process managers) and how
    /// far it has got.
    pub subscriptions: Vec<SubscriptionInfo>,
    /// Present while readers of the log wait for appends that have not
    /// finished (an open transaction that inserted events): then
    /// `head_position` is the last head proven safe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall: Option<LogStall>,
    /// Optional integrations fed from the log (the Kafka relay), with their
    /// checkpoints, lag and dead letters; absent when none is configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integrations: Vec<crate::integrations::IntegrationStatus>,
}

/// Readers of the log are held back by open transactions that inserted
/// events; commit or roll them back (`pg_terminate_backend(pid)`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LogStall {
    pub since: chrono::DateTime<chrono::Utc>,
    pub blockers: Vec<LogBlocker>,
}

/// A database session holding the log back.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LogBlocker {
    pub pid: i32,
    pub application: Option<String>,
    pub database: Option<String>,
    pub state: Option<String>,
    pub transaction_age_seconds: Option<i64>,
}

impl From<store::Stall> for LogStall {
    fn from(s: store::Stall) -> Self {
        LogStall {
            since: s.since,
            blockers: s
                .blockers
                .into_iter()
                .map(|b| LogBlocker {
                    pid: b.pid,
                    application: b.application,
                    database: b.database,
                    state: b.state,
                    transaction_age_seconds: b.transaction_age_seconds,
                })
                .collect(),
        }
    }
}

/// `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Readiness {
    /// `ready`: the database answered within the probe's bound.
    pub status: String,
    /// Present while the log is stalled. The process still serves
    /// commands and queries, so it stays ready: taking replicas out of
    /// service would not help, since every replica waits on the same
    /// database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_stall: Option<LogStall>,
    /// The log's head (the highest position safe to read up to).
    pub head_position: u64,
    /// Every subscriber of the log: its checkpoint, how far behind the head
    /// it is, and whether it is parked. A lagging or parked subscriber is
    /// reported, not made a reason to be unready (commands are served).
    pub subscriptions: Vec<SubscriptionHealth>,
    /// The leased work (every subscriber, the timer scheduler, the relay,
    /// the projector, the audit chain) as this process shares it with the
    /// others on the database.
    pub leases: LeaseInfo,
    /// Optional integrations (Kafka, ...) and their state. One that is
    /// unhealthy is reported here, not by making the process unready:
    /// commands are still served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integrations: Vec<crate::integrations::IntegrationStatus>,
}

/// A subscriber of the log, in `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionHealth {
    pub name: String,
    pub position: u64,
    /// Events appended that it has not yet applied.
    pub lag: u64,
    /// `ok`, `lagging` (more than 1,000 events behind) or `parked` (stopped
    /// at an event that keeps failing: see `last_error`, then resume it).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// How this process shares the leased work.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LeaseInfo {
    /// Serving processes on this database, this one included.
    pub members: usize,
    /// The most leases this process takes while all of them live.
    pub fair_share: usize,
    /// Leases this process holds.
    pub held: usize,
    /// Each leased work this process runs: `active` (it holds the lease),
    /// `standby` (another process does, or this one holds its share),
    /// `starting`, `retrying` (with the problem) or `stopped`.
    pub works: Vec<LeasedWorkInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LeasedWorkInfo {
    pub name: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub since: DateTime<Utc>,
}

impl From<store::LeaseReport> for LeaseInfo {
    fn from(r: store::LeaseReport) -> Self {
        LeaseInfo {
            members: r.members,
            fair_share: r.fair_share,
            held: r.held,
            works: r
                .works
                .into_iter()
                .map(|w| LeasedWorkInfo {
                    name: w.name,
                    state: w.state.as_str().into(),
                    problem: w.problem,
                    since: w.since,
                })
                .collect(),
        }
    }
}

/// Behind by more than this many events, a subscriber is `lagging`.
pub const LAGGING: u64 = 1_000;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionInfo {
    pub name: String,
    pub position: u64,
    pub parked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Return events after this global position (default 0).
    #[serde(default)]
    pub after: u64,
    /// At most this many (default 100, at most 1,000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Moves the manual clock: forward by `advance_seconds`, or to `set`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockChange {
    #[serde(default)]
    pub advance_seconds: Option<u32>,
    #[serde(default)]
    pub set: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ClockNow {
    pub now: DateTime<Utc>,
}
