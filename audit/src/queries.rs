//! What auditors ask of the log: events by actor, by either timeline, by
//! type, by correlation; a stream's state as of a position or a moment;
//! and lot recall (where did this batch go?).
//!
//! Searches run on the chain's index (`audit_events`), then read the
//! events themselves from the log: an answer covers the log up to the
//! chain's position, which it reports.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use event_schemas::events::delivery::{DeliveryEvent, ProofOfDelivery};
use event_schemas::events::inventory::InventoryBatchEvent;
use event_schemas::events::order::OrderEvent;
use event_schemas::{AnyEvent, RecordedEvent};
use serde::Serialize;
use serde_json::Value;
use store::sql::{self, Arg};
use store::{Store, StoreError, StoredEvent};
use uuid::Uuid;

use crate::canonical::stamp;
use crate::chain;

/// Which events: every condition given must hold. Time ranges include
/// their start and exclude their end.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// `role:id`, as events record it (`admin:alice`).
    pub actor: Option<String>,
    pub event_type: Option<String>,
    pub stream_type: Option<String>,
    pub stream_id: Option<String>,
    pub correlation_id: Option<Uuid>,
    /// When it happened in the world.
    pub occurred_from: Option<DateTime<Utc>>,
    pub occurred_to: Option<DateTime<Utc>>,
    /// When the log recorded it.
    pub recorded_from: Option<DateTime<Utc>>,
    pub recorded_to: Option<DateTime<Utc>>,
}

/// One page of events, in position order.
#[derive(Debug, Clone, Serialize)]
pub struct EventPage {
    pub events: Vec<RecordedEvent>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<u64>,
    /// The answer covers the log up to here (the chain's position).
    pub indexed_to: u64,
}

/// Events matching `filter` after position `after`, at most `limit`.
pub async fn events(
    store: &Store,
    filter: &EventFilter,
    after: u64,
    limit: usize,
) -> Result<EventPage, StoreError> {
    let mut clauses = vec!["position > ?".to_string()];
    let mut args: Vec<Arg> = vec![after.into()];
    let mut eq = |column: &str, value: &Option<String>| {
        if let Some(v) = value {
            clauses.push(format!("{column} = ?"));
            args.push(v.as_str().into());
        }
    };
    eq("actor", &filter.actor);
    eq("event_type", &filter.event_type);
    eq("stream_type", &filter.stream_type);
    eq("stream_id", &filter.stream_id);
    eq(
        "correlation_id",
        &filter.correlation_id.map(|c| c.to_string()),
    );
    let mut range = |column: &str, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| {
        if let Some(t) = from {
            clauses.push(format!("{column} >= ?"));
            args.push(stamp(t).into());
        }
        if let Some(t) = to {
            clauses.push(format!("{column} < ?"));
            args.push(stamp(t).into());
        }
    };
    range("occurred_at", filter.occurred_from, filter.occurred_to);
    range("recorded_at", filter.recorded_from, filter.recorded_to);
    let limit = limit.min(i64::MAX as usize - 1);
    args.push(((limit + 1) as u64).into());
    let rows = sql::fetch(
        store,
        &format!(
            "SELECT position FROM audit_events WHERE {} ORDER BY position LIMIT ?",
            clauses.join(" AND ")
        ),
        &args,
    )
    .await?;
    let mut positions: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["position"].as_i64())
        .map(|p| p as u64)
        .collect();
    let more = positions.len() > limit;
    positions.truncate(limit);
    let events = store
        .read_stored_at(&positions)
        .await?
        .into_iter()
        .map(StoredEvent::into_recorded)
        .collect::<Result<Vec<_>, _>>()?;
    let (indexed_to, _) = chain::last_link(store).await?;
    Ok(EventPage {
        next_after: more.then(|| positions.last().copied()).flatten(),
        events,
        indexed_to,
    })
}

/// A point in the log's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Position(u64),
    /// The log as it stood at this moment (its recording timeline).
    Time(DateTime<Utc>),
}

/// A stream's state as of a point, replayed from the log.
#[derive(Debug, Clone, Serialize)]
pub struct StreamState {
    pub stream_type: String,
    pub stream_id: String,
    /// The log position the state is as of.
    pub as_of_position: u64,
    /// The stream's version then (0: it did not exist yet).
    pub version: u64,
    /// The position of the last event applied.
    pub last_event_position: Option<u64>,
    /// The aggregate's state, as its type serialises.
    pub state: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown stream type {0:?}")]
    UnknownStreamType(String),
    #[error("the event at {position} cannot be replayed: {why}")]
    Replay { position: u64, why: String },
    /// A recall of a batch the log never received (a mistyped id must not
    /// read as "it reached nobody").
    #[error("no batch {0} was ever received")]
    UnknownBatch(String),
}

fn fold<A: Aggregate>(
    events: &[RecordedEvent],
    decode: impl Fn(&RecordedEvent) -> Result<A::Event, String>,
) -> Result<Value, QueryError> {
    let mut a = A::default();
    for e in events {
        let ev = decode(e).map_err(|why| QueryError::Replay {
            position: e.global_position,
            why,
        })?;
        a.apply(ev);
    }
    serde_json::to_value(&a).map_err(|e| QueryError::Replay {
        position: events.last().map_or(0, |e| e.global_position),
        why: e.to_string(),
    })
}

/// The state of one stream as of `at`; `None` when the stream has no event
/// at all.
pub async fn state_as_of(
    store: &Store,
    stream_type: &str,
    stream_id: &str,
    at: AsOf,
) -> Result<Option<StreamState>, QueryError> {
    if !event_schemas::STREAM_TYPES.contains(&stream_type) {
        return Err(QueryError::UnknownStreamType(stream_type.to_string()));
    }
    let all = store.read_stream(stream_type, stream_id).await?;
    if all.is_empty() {
        return Ok(None);
    }
    let position = match at {
        AsOf::Position(p) => p,
        AsOf::Time(t) => store.position_at(t).await?,
    };
    let events: Vec<RecordedEvent> = all
        .into_iter()
        .filter(|e| e.global_position <= position)
        .collect();
    let body = |e: &RecordedEvent| e.payload.clone();
    let state = match stream_type {
        OrderEvent::STREAM_TYPE => fold::<domain::order::Order>(&events, |e| {
            OrderEvent::from_body(&e.event_type, body(e)).map_err(|x| x.to_string())
        })?,
        InventoryBatchEvent::STREAM_TYPE => {
            fold::<domain::inventory::InventoryBatch>(&events, |e| {
                InventoryBatchEvent::from_body(&e.event_type, body(e)).map_err(|x| x.to_string())
            })?
        }
        event_schemas::PaymentEvent::STREAM_TYPE => {
            fold::<domain::payment::Payment>(&events, |e| {
                event_schemas::PaymentEvent::from_body(&e.event_type, body(e))
                    .map_err(|x| x.to_string())
            })?
        }
        DeliveryEvent::STREAM_TYPE => fold::<domain::delivery::Delivery>(&events, |e| {
            DeliveryEvent::from_body(&e.event_type, body(e)).map_err(|x| x.to_string())
        })?,
        _ => fold::<domain::timer::Timer>(&events, |e| {
            event_schemas::TimerEvent::from_body(&e.event_type, body(e)).map_err(|x| x.to_string())
        })?,
    };
    Ok(Some(StreamState {
        stream_type: stream_type.to_string(),
        stream_id: stream_id.to_string(),
        as_of_position: position,
        version: events.last().map_or(0, |e| e.stream_version),
        last_event_position: events.last().map(|e| e.global_position),
        state,
    }))
}

/// The most batches a supplier's recall looks through.
const MAX_BATCHES: usize = 1_000_000;

/// Where a recall starts.
#[derive(Debug, Clone)]
pub enum RecallFrom {
    Batch(String),
    /// Every batch of a supplier received in `[from, to)`.
    Supplier {
        supplier_id: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
}

/// A recalled batch.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RecalledBatch {
    pub batch_id: String,
    pub sku: String,
    pub supplier_id: String,
    pub warehouse_id: String,
    pub received_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// `g` or `unit`.
    pub unit: String,
    pub received: u64,
}

/// One event of the chain that links a batch to a customer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ChainStep {
    pub position: u64,
    pub event_id: Uuid,
    pub stream_type: String,
    pub stream_id: String,
    pub event_type: String,
    pub causation_id: Option<Uuid>,
    pub actor: String,
}

/// An order line a batch fed, and where it went.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RecallLine {
    pub batch_id: String,
    pub sku: String,
    pub order_id: String,
    pub customer_id: String,
    pub unit: String,
    /// Reserved from the batch for the order, and given back.
    pub reserved: u64,
    pub released: u64,
    /// Picked from the batch: what left the shelf for this order.
    pub picked: u64,
    /// The order's last event (`OrderDelivered`, `OrderCancelled`, ...).
    pub order_status: String,
    pub delivery_id: Option<String>,
    pub rider_id: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// City and postal code of the delivery address.
    pub delivery_area: String,
    /// The events that link the batch to the customer, in log order, each
    /// with what caused it.
    pub chain: Vec<ChainStep>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Recall {
    pub batches: Vec<RecalledBatch>,
    pub lines: Vec<RecallLine>,
    /// Distinct customers reached (delivered or not).
    pub customers: usize,
    pub as_of_position: u64,
}

fn step(e: &RecordedEvent) -> ChainStep {
    ChainStep {
        position: e.global_position,
        event_id: e.event_id,
        stream_type: e.stream_type.clone(),
        stream_id: e.stream_id.clone(),
        event_type: e.event_type.clone(),
        causation_id: e.causation_id,
        actor: e.actor.to_string(),
    }
}

fn replay_err(e: &RecordedEvent, why: impl ToString) -> QueryError {
    QueryError::Replay {
        position: e.global_position,
        why: why.to_string(),
    }
}

/// Every order line the batches fed, every delivery and customer they
/// reached. Reads each batch's stream, then all their orders' and
/// deliveries' streams in one query each.
pub async fn recall(store: &Store, from: &RecallFrom) -> Result<Recall, QueryError> {
    let as_of_position = store.head().await?;
    let batch_ids: Vec<String> = match from {
        RecallFrom::Batch(id) => vec![id.clone()],
        RecallFrom::Supplier {
            supplier_id,
            from,
            to,
        } => {
            let page = events(
                store,
                &EventFilter {
                    event_type: Some("BatchReceived".into()),
                    stream_type: Some(InventoryBatchEvent::STREAM_TYPE.into()),
                    ..Default::default()
                },
                0,
                MAX_BATCHES,
            )
            .await?;
            let mut ids = Vec::new();
            for e in page.events {
                if let Ok(AnyEvent::InventoryBatch(InventoryBatchEvent::BatchReceived(b))) =
                    e.decode()
                {
                    if b.supplier_id.to_string() == *supplier_id
                        && b.received_at >= *from
                        && b.received_at < *to
                    {
                        ids.push(e.stream_id.clone());
                    }
                }
            }
            ids
        }
    };
    let batch_events = store
        .read_streams(InventoryBatchEvent::STREAM_TYPE, &batch_ids)
        .await?;
    let mut batches = Vec::new();
    // (batch, order) → line being built.
    let mut lines: BTreeMap<(String, String), RecallLine> = BTreeMap::new();
    let mut batch_steps: HashMap<(String, String), Vec<ChainStep>> = HashMap::new();
    let mut sku_of: HashMap<String, (String, String)> = HashMap::new();
    for e in &batch_events {
        let Ok(AnyEvent::InventoryBatch(ev)) = e.decode() else {
            return Err(replay_err(e, "not an inventory batch event"));
        };
        let (order, reserved, released, picked) = match ev {
            InventoryBatchEvent::BatchReceived(b) => {
                let unit = b.quantity.uom().to_string();
                sku_of.insert(e.stream_id.clone(), (b.sku.to_string(), unit.clone()));
                batches.push(RecalledBatch {
                    batch_id: e.stream_id.clone(),
                    sku: b.sku.to_string(),
                    supplier_id: b.supplier_id.to_string(),
                    warehouse_id: b.warehouse_id.to_string(),
                    received_at: b.received_at,
                    expires_at: b.expires_at,
                    unit,
                    received: b.quantity.amount(),
                });
                continue;
            }
            InventoryBatchEvent::StockReserved(r) => {
                (r.order_id.to_string(), r.quantity.amount(), 0, 0)
            }
            InventoryBatchEvent::ReservationReleased(r) => {
                (r.order_id.to_string(), 0, r.quantity.amount(), 0)
            }
            InventoryBatchEvent::StockPicked(p) => {
                (p.order_id.to_string(), 0, 0, p.quantity.amount())
            }
            _ => continue,
        };
        let key = (e.stream_id.clone(), order.clone());
        let (sku, unit) = sku_of.get(&e.stream_id).cloned().unwrap_or_default();
        let line = lines.entry(key.clone()).or_insert_with(|| RecallLine {
            batch_id: e.stream_id.clone(),
            sku,
            order_id: order,
            customer_id: String::new(),
            unit,
            reserved: 0,
            released: 0,
            picked: 0,
            order_status: String::new(),
            delivery_id: None,
            rider_id: None,
            delivered_at: None,
            delivery_area: String::new(),
            chain: Vec::new(),
        });
        line.reserved += reserved;
        line.released += released;
        line.picked += picked;
        batch_steps.entry(key).or_default().push(step(e));
    }
    if let (RecallFrom::Batch(id), true) = (from, batches.is_empty()) {
        return Err(QueryError::UnknownBatch(id.clone()));
    }
    let order_ids: Vec<String> = lines
        .keys()
        .map(|k| k.1.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let order_events = store
        .read_streams(OrderEvent::STREAM_TYPE, &order_ids)
        .await?;
    #[derive(Default)]
    struct OrderFacts {
        customer: String,
        area: String,
        status: String,
        delivery: Option<String>,
        steps: Vec<ChainStep>,
    }
    let mut orders: HashMap<String, OrderFacts> = HashMap::new();
    for e in &order_events {
        let Ok(AnyEvent::Order(ev)) = e.decode() else {
            return Err(replay_err(e, "not an order event"));
        };
        let o = orders.entry(e.stream_id.clone()).or_default();
        o.status = e.event_type.clone();
        match ev {
            OrderEvent::OrderPlaced(p) => {
                o.customer = p.customer_id.to_string();
                o.area = format!(
                    "{} {}",
                    p.delivery_address.postal_code(),
                    p.delivery_address.city()
                );
            }
            OrderEvent::OrderShipped(s) => o.delivery = Some(s.delivery_id.to_string()),
            OrderEvent::OrderDelivered(d) => o.delivery = Some(d.delivery_id.to_string()),
            _ => {}
        }
        if matches!(
            e.event_type.as_str(),
            "OrderPlaced"
                | "AllocationConfirmed"
                | "OrderPaid"
                | "OrderPacked"
                | "OrderShipped"
                | "OrderDelivered"
                | "OrderCancelled"
        ) {
            o.steps.push(step(e));
        }
    }
    let delivery_ids: Vec<String> = orders.values().filter_map(|o| o.delivery.clone()).collect();
    let delivery_events = store
        .read_streams(DeliveryEvent::STREAM_TYPE, &delivery_ids)
        .await?;
    #[derive(Default)]
    struct DeliveryFacts {
        rider: Option<String>,
        delivered_at: Option<DateTime<Utc>>,
        steps: Vec<ChainStep>,
    }
    let mut deliveries: HashMap<String, DeliveryFacts> = HashMap::new();
    for e in &delivery_events {
        let Ok(AnyEvent::Delivery(ev)) = e.decode() else {
            return Err(replay_err(e, "not a delivery event"));
        };
        let d = deliveries.entry(e.stream_id.clone()).or_default();
        match ev {
            DeliveryEvent::RiderAssigned(r) => d.rider = Some(r.rider_id.to_string()),
            DeliveryEvent::DeliveryCompleted(c) => {
                d.delivered_at = Some(e.occurred_at);
                let _: &ProofOfDelivery = &c.proof;
            }
            DeliveryEvent::LocationReported(_) => continue,
            _ => {}
        }
        d.steps.push(step(e));
    }
    let mut customers = HashSet::new();
    let mut out = Vec::with_capacity(lines.len());
    for (key, mut line) in lines {
        if let Some(o) = orders.get(&line.order_id) {
            line.customer_id = o.customer.clone();
            line.delivery_area = o.area.clone();
            line.order_status = o.status.clone();
            line.delivery_id = o.delivery.clone();
            line.chain.extend(o.steps.iter().cloned());
            if let Some(d) = o.delivery.as_ref().and_then(|d| deliveries.get(d)) {
                line.rider_id = d.rider.clone();
                line.delivered_at = d.delivered_at;
                line.chain.extend(d.steps.iter().cloned());
            }
        }
        line.chain
            .extend(batch_steps.remove(&key).unwrap_or_default());
        line.chain.sort_by_key(|s| s.position);
        if !line.customer_id.is_empty() {
            customers.insert(line.customer_id.clone());
        }
        out.push(line);
    }
    Ok(Recall {
        batches,
        customers: customers.len(),
        lines: out,
        as_of_position,
    })
}

/// The recall as CSV (RFC 4180): one row per line, the chain as
/// `position:Type` steps joined by ` > `.
pub fn recall_csv(recall: &Recall) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        batch_id: &'a str,
        sku: &'a str,
        order_id: &'a str,
        customer_id: &'a str,
        unit: &'a str,
        reserved: u64,
        released: u64,
        picked: u64,
        order_status: &'a str,
        delivery_id: &'a str,
        rider_id: &'a str,
        delivered_at: String,
        delivery_area: &'a str,
        chain: String,
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for l in &recall.lines {
        let chain: Vec<String> = l
            .chain
            .iter()
            .map(|s| format!("{}:{}", s.position, s.event_type))
            .collect();
        w.serialize(Row {
            batch_id: &l.batch_id,
            sku: &l.sku,
            order_id: &l.order_id,
            customer_id: &l.customer_id,
            unit: &l.unit,
            reserved: l.reserved,
            released: l.released,
            picked: l.picked,
            order_status: &l.order_status,
            delivery_id: l.delivery_id.as_deref().unwrap_or(""),
            rider_id: l.rider_id.as_deref().unwrap_or(""),
            delivered_at: l
                .delivered_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
            delivery_area: &l.delivery_area,
            chain: chain.join(" > "),
        })
        .expect("a row serialises into memory");
    }
    if recall.lines.is_empty() {
        // The header alone, so an empty recall is still a CSV file.
        return "batch_id,sku,order_id,customer_id,unit,reserved,released,picked,order_status,delivery_id,rider_id,delivered_at,delivery_area,chain\n".into();
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("UTF-8 fields")
}
