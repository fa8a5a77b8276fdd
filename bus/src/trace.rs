//! W3C trace context across the bus: one client action is one trace from
//! the gateway through the router and the persistence worker and back.
//!
//! Envelopes carry the sender's span as a `traceparent` string
//! (`chat_protocol::internal::Origin::trace`); the receiver makes its span a
//! child of it. When the process exports no traces (no OpenTelemetry layer
//! installed, see the binary's `telemetry` module) spans have no context:
//! [`current`] is `None`, nothing travels, and [`follow`] does nothing.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current span, if it is part of a trace.
pub fn current() -> Option<String> {
    of(&tracing::Span::current())
}

/// The `traceparent` of `span`, if it is part of a trace.
pub fn of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the remote span `traceparent` names (from an
/// envelope or an HTTP header), and records its trace id in the span's
/// `trace_id` field (when it has one) so that every log line in it names
/// the trace. An absent or malformed `traceparent` leaves `span` the root
/// of a new trace.
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(traceparent) = traceparent {
        let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            // Fails only when the span is already started, which a span
            // just made is not; it then stays a root, which is harmless.
            let _ = span.set_parent(parent);
        }
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;

    fn with_tracing<R>(test: impl FnOnce() -> R) -> R {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, test)
    }

    #[test]
    fn without_a_tracing_layer_nothing_travels() {
        let span = tracing::info_span!("hop", trace_id = tracing::field::Empty);
        follow(
            &span,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        assert_eq!(of(&span), None);
    }

    #[test]
    fn a_followed_span_continues_the_remote_trace() {
        with_tracing(|| {
            let span = tracing::info_span!("hop", trace_id = tracing::field::Empty);
            follow(
                &span,
                Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            );
            let traceparent = of(&span).expect("a traced span has a traceparent");
            assert!(
                traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
                "{traceparent}"
            );
            assert!(!traceparent.contains("b7ad6b7169203331"), "a new span id");
        });
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        with_tracing(|| {
            let span = tracing::info_span!("hop", trace_id = tracing::field::Empty);
            follow(&span, Some("00-zz-not-a-trace"));
            let traceparent = of(&span).expect("a traced span has a traceparent");
            assert_eq!(traceparent.len(), 55, "{traceparent}");
        });
    }
}
