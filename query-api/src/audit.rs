//! The auditors' root fields: events by actor, timeline, type and
//! correlation; a stream's state as of a position or a moment; lot
//! recall. Answers come from the `audit` crate; these are their GraphQL
//! shapes.

use async_graphql::{Context, Error, InputObject, Json, Object, Result, SimpleObject};
use audit::queries::{self, AsOf, EventFilter, QueryError, RecallFrom};
use chrono::{DateTime, Utc};
use event_schemas::RecordedEvent;
use store::Store;

use crate::access::{access, coded, guard, roles_of};
use crate::MAX_PAGE;

/// Which events: every condition given must hold; time ranges include
/// their start and exclude their end.
#[derive(Debug, Clone, Default, InputObject)]
pub struct AuditEventFilter {
    /// `role:id`, as events record it (`admin:alice@example.com`).
    pub actor: Option<String>,
    pub event_type: Option<String>,
    pub stream_type: Option<String>,
    pub stream_id: Option<String>,
    pub correlation_id: Option<String>,
    /// When it happened in the world.
    pub occurred_from: Option<DateTime<Utc>>,
    pub occurred_to: Option<DateTime<Utc>>,
    /// When the log recorded it.
    pub recorded_from: Option<DateTime<Utc>>,
    pub recorded_to: Option<DateTime<Utc>>,
}

/// An event of the log, as auditors read it.
#[derive(Debug, Clone, SimpleObject)]
pub struct AuditEvent {
    pub position: i64,
    pub event_id: String,
    pub stream_type: String,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub event_version: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub actor: String,
    pub payload: Json<serde_json::Value>,
}

impl From<RecordedEvent> for AuditEvent {
    fn from(e: RecordedEvent) -> Self {
        AuditEvent {
            position: e.global_position as i64,
            event_id: e.event_id.to_string(),
            stream_type: e.stream_type,
            stream_id: e.stream_id,
            stream_version: e.stream_version as i64,
            event_type: e.event_type,
            event_version: e.event_version,
            occurred_at: e.occurred_at,
            recorded_at: e.recorded_at,
            correlation_id: e.correlation_id.to_string(),
            causation_id: e.causation_id.map(|c| c.to_string()),
            actor: e.actor.to_string(),
            payload: Json(e.payload),
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct AuditEventPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<i64>,
    /// The search covers the log up to this position.
    pub indexed_to: i64,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct StreamStateAsOf {
    pub stream_type: String,
    pub stream_id: String,
    pub as_of_position: i64,
    /// The stream's version then (0: it did not exist yet).
    pub version: i64,
    pub last_event_position: Option<i64>,
    /// The aggregate's state, as its type serialises.
    pub state: Json<serde_json::Value>,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct RecalledBatch {
    pub batch_id: String,
    pub sku: String,
    pub supplier_id: String,
    pub warehouse_id: String,
    pub received_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub unit: String,
    pub received: i64,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct RecallStep {
    pub position: i64,
    pub event_id: String,
    pub stream_type: String,
    pub stream_id: String,
    pub event_type: String,
    pub causation_id: Option<String>,
    pub actor: String,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct RecallLine {
    pub batch_id: String,
    pub sku: String,
    pub order_id: String,
    pub customer_id: String,
    pub unit: String,
    pub reserved: i64,
    pub released: i64,
    pub picked: i64,
    pub order_status: String,
    pub delivery_id: Option<String>,
    pub rider_id: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub delivery_area: String,
    /// The events linking the batch to the customer, in log order.
    pub chain: Vec<RecallStep>,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct LotRecall {
    pub batches: Vec<RecalledBatch>,
    pub lines: Vec<RecallLine>,
    pub customers: i64,
    pub as_of_position: i64,
}

fn failed(e: QueryError) -> Error {
    match e {
        QueryError::UnknownStreamType(t) => coded(
            "BAD_USER_INPUT",
            format!(
                "unknown stream type {t:?}: one of {:?}",
                event_schemas::STREAM_TYPES
            ),
        ),
        QueryError::UnknownBatch(id) => {
            coded("NOT_FOUND", format!("no batch {id} was ever received"))
        }
        other => {
            tracing::error!(error = %other, "audit query failed");
            coded("INTERNAL", "the log could not be read")
        }
    }
}

fn store<'a>(ctx: &Context<'a>) -> &'a Store {
    ctx.data_unchecked::<Store>()
}

fn position(name: &str, v: Option<i64>) -> Result<Option<u64>> {
    match v {
        Some(p) if p < 0 => Err(coded("BAD_USER_INPUT", format!("{name} is not negative"))),
        other => Ok(other.map(|p| p as u64)),
    }
}

#[derive(Default)]
pub struct AuditQuery;

#[Object(name = "AuditQuery")]
impl AuditQuery {
    /// Events by actor, either timeline, type, stream or correlation, in
    /// log order, a page at a time.
    #[graphql(directive = access::apply(roles_of("auditEvents")))]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
        after: Option<i64>,
        first: Option<i32>,
    ) -> Result<AuditEventPage> {
        guard(ctx, "auditEvents")?;
        let f = filter.unwrap_or_default();
        let first = first.unwrap_or(100);
        if !(1..=MAX_PAGE as i32).contains(&first) {
            return Err(coded("BAD_USER_INPUT", format!("first is 1 to {MAX_PAGE}")));
        }
        let correlation_id = match f.correlation_id {
            Some(c) => Some(
                c.parse()
                    .map_err(|_| coded("BAD_USER_INPUT", "correlationId is not a UUID"))?,
            ),
            None => None,
        };
        let filter = EventFilter {
            actor: f.actor,
            event_type: f.event_type,
            stream_type: f.stream_type,
            stream_id: f.stream_id,
            correlation_id,
            occurred_from: f.occurred_from,
            occurred_to: f.occurred_to,
            recorded_from: f.recorded_from,
            recorded_to: f.recorded_to,
        };
        let after = position("after", after)?.unwrap_or(0);
        let page = queries::events(store(ctx), &filter, after, first as usize)
            .await
            .map_err(|e| failed(QueryError::Store(e)))?;
        Ok(AuditEventPage {
            events: page.events.into_iter().map(AuditEvent::from).collect(),
            next_after: page.next_after.map(|p| p as i64),
            indexed_to: page.indexed_to as i64,
        })
    }

    /// A stream's state as of a log position or a moment (the log as it
    /// stood then), replayed from the log; null when the stream has no
    /// events.
    #[graphql(directive = access::apply(roles_of("streamStateAsOf")))]
    async fn stream_state_as_of(
        &self,
        ctx: &Context<'_>,
        stream_type: String,
        stream_id: String,
        position: Option<i64>,
        at: Option<DateTime<Utc>>,
    ) -> Result<Option<StreamStateAsOf>> {
        guard(ctx, "streamStateAsOf")?;
        let as_of = match (self::position("position", position)?, at) {
            (Some(p), None) => AsOf::Position(p),
            (None, Some(t)) => AsOf::Time(t),
            (None, None) => AsOf::Position(i64::MAX as u64),
            (Some(_), Some(_)) => {
                return Err(coded("BAD_USER_INPUT", "give position or at, not both"))
            }
        };
        let state = queries::state_as_of(store(ctx), &stream_type, &stream_id, as_of)
            .await
            .map_err(failed)?;
        Ok(state.map(|s| StreamStateAsOf {
            stream_type: s.stream_type,
            stream_id: s.stream_id,
            as_of_position: s.as_of_position.min(i64::MAX as u64) as i64,
            version: s.version as i64,
            last_event_position: s.last_event_position.map(|p| p as i64),
            state: Json(s.state),
        }))
    }

    /// Lot recall: every order line a batch (or a supplier's batches
    /// received in `[from, to)`) fed, and the delivery and customer each
    /// reached, with the events that link them.
    #[graphql(directive = access::apply(roles_of("lotRecall")))]
    async fn lot_recall(
        &self,
        ctx: &Context<'_>,
        batch_id: Option<String>,
        supplier_id: Option<String>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<LotRecall> {
        guard(ctx, "lotRecall")?;
        let start = match (batch_id, supplier_id, from, to) {
            (Some(b), None, None, None) => RecallFrom::Batch(b),
            (None, Some(supplier_id), Some(from), Some(to)) if from <= to => RecallFrom::Supplier {
                supplier_id,
                from,
                to,
            },
            _ => {
                return Err(coded(
                    "BAD_USER_INPUT",
                    "give batchId, or supplierId with from and to (from not after to)",
                ))
            }
        };
        let r = queries::recall(store(ctx), &start).await.map_err(failed)?;
        Ok(LotRecall {
            customers: r.customers as i64,
            as_of_position: r.as_of_position as i64,
            batches: r
                .batches
                .into_iter()
                .map(|b| RecalledBatch {
                    batch_id: b.batch_id,
                    sku: b.sku,
                    supplier_id: b.supplier_id,
                    warehouse_id: b.warehouse_id,
                    received_at: b.received_at,
                    expires_at: b.expires_at,
                    unit: b.unit,
                    received: b.received as i64,
                })
                .collect(),
            lines: r
                .lines
                .into_iter()
                .map(|l| RecallLine {
                    batch_id: l.batch_id,
                    sku: l.sku,
                    order_id: l.order_id,
                    customer_id: l.customer_id,
                    unit: l.unit,
                    reserved: l.reserved as i64,
                    released: l.released as i64,
                    picked: l.picked as i64,
                    order_status: l.order_status,
                    delivery_id: l.delivery_id,
                    rider_id: l.rider_id,
                    delivered_at: l.delivered_at,
                    delivery_area: l.delivery_area,
                    chain: l
                        .chain
                        .into_iter()
                        .map(|s| RecallStep {
                            position: s.position as i64,
                            event_id: s.event_id.to_string(),
                            stream_type: s.stream_type,
                            stream_id: s.stream_id,
                            event_type: s.event_type,
                            causation_id: s.causation_id.map(|c| c.to_string()),
                            actor: s.actor,
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}
