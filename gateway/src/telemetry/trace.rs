//! Traces: W3C trace context carried from the produce request into the Kafka record's headers,
//! and from there into each webhook request, so one trace spans producer → Kafka → subscriber;
//! with `[telemetry] otlp_endpoint`, Sluice's own spans (one per produce request, one per
//! delivery attempt) are exported over OTLP/HTTP.
//!
//! Without an endpoint, no spans are made and the caller's context passes through unchanged
//! (the subscriber sees the producer's `traceparent`). With one, each span is a child of the
//! context it received, and what Sluice passes on names its own span.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::config::TelemetryConfig;

/// The headers W3C trace context travels in.
pub const HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// Makes spans, or passes context through when tracing is off.
#[derive(Debug, Clone, Default)]
pub struct Tracing {
    tracer: Option<SdkTracer>,
    provider: Option<SdkTracerProvider>,
}

impl Tracing {
    /// From `[telemetry]`; the exporter sends batches from a thread of its own.
    pub fn new(config: &TelemetryConfig) -> Result<Self, String> {
        let Some(endpoint) = &config.otlp_endpoint else { return Ok(Self::default()) };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint.clone())
            .with_headers(config.otlp_headers.clone().into_iter().collect::<HashMap<_, _>>())
            .build()
            .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(config.service_name.clone()).build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio))))
            .build();
        let tracer = provider.tracer("sluice");
        Ok(Self { tracer: Some(tracer), provider: Some(provider) })
    }

    /// A span named `name` under `parent`, as a context to pass on; `parent` itself when off.
    pub fn start(
        &self,
        kind: SpanKind,
        parent: &Context,
        describe: impl FnOnce() -> (String, Vec<KeyValue>),
    ) -> Context {
        match &self.tracer {
            // The span's name and attributes are only built when there is an exporter: they
            // cost allocations on every request and delivery attempt.
            None => parent.clone(),
            Some(tracer) => {
                let (name, attributes) = describe();
                let span = tracer
                    .span_builder(name)
                    .with_kind(kind)
                    .with_attributes(attributes)
                    .start_with_context(tracer, parent);
                parent.with_span(span)
            }
        }
    }

    /// Sends the spans still buffered (at shutdown).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(error = %error, "cannot export the last spans");
        }
    }
}

/// The context in a set of headers (HTTP or Kafka), or an empty one.
pub fn extract<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Context {
    let found: Vec<(&str, &str)> = headers
        .into_iter()
        .filter(|(name, _)| HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)))
        .filter_map(|(name, value)| Some((name, std::str::from_utf8(value).ok()?)))
        .collect();
    if found.is_empty() {
        return Context::new();
    }
    TraceContextPropagator::new().extract(&Found(found))
}

/// A log span that puts the context's trace id on every log line written inside it, so logs can
/// be joined with traces; `None` when there is no trace (nothing to join, and no span's cost).
pub fn log_span(path: LogPath, context: &Context) -> Option<tracing::Span> {
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    let trace_id = span_context.trace_id();
    Some(match path {
        LogPath::Produce => tracing::info_span!("produce", trace_id = %trace_id),
        LogPath::Deliver => tracing::info_span!("deliver", trace_id = %trace_id),
    })
}

/// Which path a [`log_span`] is for (its name in the logs).
#[derive(Debug, Clone, Copy)]
pub enum LogPath {
    Produce,
    Deliver,
}

/// The headers that carry a context on (none for an empty context).
pub fn inject(context: &Context) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(context, &mut Carried(&mut headers));
    }
    headers
}

struct Found<'a>(Vec<(&'a str, &'a str)>);

impl Extractor for Found<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(name, _)| name.eq_ignore_ascii_case(key)).map(|(_, value)| *value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| *name).collect()
    }
}

struct Carried<'a>(&'a mut Vec<(&'static str, String)>);

impl Injector for Carried<'_> {
    /// An empty `tracestate` is not sent (W3C: omit rather than send it empty).
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        if let Some(name) = HEADERS.iter().find(|h| h.eq_ignore_ascii_case(key)) {
            self.0.push((name, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn without_an_exporter_the_callers_context_passes_through() {
        let parent = extract([("traceparent", PARENT.as_bytes()), ("other", b"x".as_slice())]);
        let passed = Tracing::default().start(SpanKind::Producer, &parent, || unreachable!("no exporter, no span"));
        assert_eq!(inject(&passed), [("traceparent", PARENT.to_owned())]);
        assert!(inject(&extract([("traceparent", b"garbage".as_slice())])).is_empty());
        assert!(inject(&Context::new()).is_empty());
    }

    #[test]
    fn log_spans_only_for_requests_with_a_trace() {
        assert!(log_span(LogPath::Produce, &extract([("traceparent", PARENT.as_bytes())])).is_some());
        assert!(log_span(LogPath::Deliver, &Context::new()).is_none());
    }
}
