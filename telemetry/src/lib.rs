//! The W3C trace context (`traceparent`) across Freshledger's asynchronous
//! hops. A request's span follows the caller's `traceparent` header; every
//! append writes the current span's context into its events' metadata
//! (`store`); a reaction to an event (the order saga, spoilage) runs in a
//! span whose parent is the event's context. So one order's placement,
//! allocation, payment and delivery are one trace, however many processes
//! and reactions they pass through.
//!
//! These functions need the `tracing-opentelemetry` layer (installed by the
//! binary); without it they find no context and do nothing.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The metadata key and header name of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The current span's context as a W3C `traceparent`, when it has one.
pub fn traceparent() -> Option<String> {
    traceparent_of(&Span::current())
}

/// `span`'s context as a W3C `traceparent`, when it has one.
pub fn traceparent_of(span: &Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes the context in `traceparent` (an event's metadata, a request's
/// header) the parent of `span`, which must not have been entered yet; a
/// missing or malformed one leaves `span` the root of a new trace. Then
/// records the span's trace id in its `trace_id` field (for the logs),
/// when it has that field.
pub fn follow(span: &Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent {
        let carrier = HashMap::from([(TRACEPARENT.to_string(), tp.to_string())]);
        let cx = TraceContextPropagator::new().extract(&carrier);
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
    if let Some(id) = trace_id(span) {
        span.record("trace_id", id.as_str());
    }
}

/// `span`'s trace id (32 hex digits), when it has a context.
pub fn trace_id(span: &Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    /// A context written by one span is followed by another: same trace,
    /// the first span its parent; garbage starts a new trace.
    #[test]
    fn a_followed_context_continues_the_trace() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let first = tracing::info_span!("command", trace_id = tracing::field::Empty);
            follow(&first, None);
            let written = first.in_scope(traceparent).expect("a context");
            assert!(written.starts_with("00-"), "{written}");
            let then = tracing::info_span!("reaction", trace_id = tracing::field::Empty);
            follow(&then, Some(&written));
            assert_eq!(trace_id(&then), trace_id(&first));
            let fresh = tracing::info_span!("other");
            follow(&fresh, Some("00-not-a-context"));
            assert_ne!(trace_id(&fresh), trace_id(&first));
            drop((first, then, fresh));
        });
        let spans = exporter.get_finished_spans().unwrap();
        let command = spans.iter().find(|s| s.name == "command").unwrap();
        let reaction = spans.iter().find(|s| s.name == "reaction").unwrap();
        assert_eq!(reaction.parent_span_id, command.span_context.span_id());
    }
}
