//! The trace context through the order saga, in a test binary of its own:
//! it installs a thread-local subscriber, and `tracing`'s cached interest
//! in a callsite can miss a subscriber set while other tests' threads
//! register the same callsites (seen once in a full run).

#[path = "../support/world.rs"]
mod world;

use chrono::Duration;
use domain::order::OrderStatus;
use event_schemas::order::PaymentMethod;
use world::world;

/// One order's flow is one trace: the command that places it runs in a
/// span, its events carry that span's W3C context, the saga's reactions
/// continue it (their spans are children of it), and the commands they send
/// carry it on, through payment. Seen through the SDK's in-memory exporter.
#[tokio::test]
async fn the_saga_continues_the_trace_of_the_command_it_reacts_to() {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _installed = tracing::subscriber::set_default(subscriber);

    let db = testkit::TestDb::new(testkit::Kind::Sqlite, "order_saga").await;
    let w = world(&db).await;
    // Outside any span: no context to carry.
    w.receive(5, Duration::days(3)).await;
    let command = tracing::info_span!("command", trace_id = tracing::field::Empty);
    telemetry::follow(&command, None);
    let trace = telemetry::trace_id(&command).expect("a trace");
    let order = w
        .place(1, PaymentMethod::Card)
        .instrument(command.clone())
        .await;
    drop(command);
    w.settle().await;
    assert_eq!(w.status(order).await, Some(OrderStatus::Paid));

    let log = w.store.read_all(0, 1_000).await.unwrap();
    let placed = log
        .iter()
        .find(|e| e.event_type == "OrderPlaced")
        .expect("placed");
    let flow: Vec<_> = w
        .store
        .read_correlation(placed.correlation_id)
        .await
        .unwrap();
    let types: Vec<&str> = flow.iter().map(|e| e.event_type.as_str()).collect();
    for t in [
        "OrderPlaced",
        "StockReserved",
        "PaymentAuthorized",
        "OrderPaid",
    ] {
        assert!(types.contains(&t), "{types:?}");
    }
    for e in &flow {
        let tp = e.trace_parent.as_deref().unwrap_or_else(|| {
            panic!("{} carries no trace context", e.event_type);
        });
        assert_eq!(
            tp.split('-').nth(1),
            Some(trace.as_str()),
            "{}",
            e.event_type
        );
    }
    assert!(log
        .iter()
        .filter(|e| e.event_type == "BatchReceived")
        .all(|e| e.trace_parent.is_none()));

    let spans = exporter.get_finished_spans().unwrap();
    let reactions: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "react" && s.span_context.trace_id().to_string() == trace)
        .collect();
    // At least the placement (allocation, payment) and the payment (the
    // hold timer cancelled) were reacted to within the trace.
    assert!(
        reactions.len() >= 2,
        "{} reactions in the trace",
        reactions.len()
    );
    let command_span = spans.iter().find(|s| s.name == "command").unwrap();
    assert!(reactions
        .iter()
        .any(|s| s.parent_span_id == command_span.span_context.span_id()));
    db.remove().await;
}
