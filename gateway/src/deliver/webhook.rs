//! The webhook request of one delivery attempt (Standard Webhooks: `webhook-id`,
//! `webhook-timestamp`, `webhook-signature`, plus where the record is in Kafka) and how the
//! subscriber's answer is classified.

use std::time::Duration;

use axum::body::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use rdkafka::Message;
use rdkafka::message::{Headers as _, OwnedMessage};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use super::deps::Deps;
use super::sign::{Secret, signature};
use crate::config::subscription::SubscriptionSpec;
use crate::telemetry::trace;

/// How much of a subscriber's 2xx answer is read (and discarded) before its connection is
/// dropped instead.
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// Where a subscription's events go and what signs them, parsed once: per request, parsing the
/// URL cost more than signing the body.
#[derive(Debug)]
pub struct Target {
    pub url: reqwest::Url,
    pub secrets: Vec<Secret>,
}

impl Target {
    pub fn new(spec: &SubscriptionSpec) -> Result<Self, String> {
        let url = reqwest::Url::parse(&spec.url).map_err(|_| format!("'{}' is not a URL", spec.url))?;
        Ok(Self { url, secrets: Secret::parse_all(&spec.secrets) })
    }
}

/// Why an attempt did not deliver.
#[derive(Debug)]
pub enum Failed {
    /// 410 Gone: the subscriber wants no more.
    Gone,
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer (connection refused, timeout, TLS, …).
    Request(String),
}

impl Failed {
    /// The label of the attempt's outcome in the metrics.
    pub fn status_label(result: &Result<u16, Failed>) -> String {
        match result {
            Ok(status) => status.to_string(),
            Err(Failed::Gone) => "410".to_owned(),
            Err(Failed::Status { status, .. }) => status.to_string(),
            Err(Failed::Request(_)) => "error".to_owned(),
        }
    }
}

// Parsed once: a name given as a string is parsed (and a custom one allocated) per request.
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
const SLUICE_TOPIC: HeaderName = HeaderName::from_static("sluice-topic");
const SLUICE_PARTITION: HeaderName = HeaderName::from_static("sluice-partition");
const SLUICE_OFFSET: HeaderName = HeaderName::from_static("sluice-offset");
const EVENT_ID: HeaderName = HeaderName::from_static("event-id");
const SLUICE_KEY: HeaderName = HeaderName::from_static("sluice-key");
const SLUICE_KEY_BASE64: HeaderName = HeaderName::from_static("sluice-key-base64");

/// A record as a CloudEvent in the HTTP binding's binary mode: the `ce_*` headers it was produced
/// with (the Kafka binding's), or else attributes made from the record: `id` its `event-id` (or
/// the `webhook-id`), `source` `/topics/{topic}`, `type` the topic, `time` its timestamp.
fn cloudevent_headers(record: &OwnedMessage, webhook_id: &str) -> Vec<(String, HeaderValue)> {
    let mut attributes: Vec<(String, String)> = Vec::new();
    let mut event_id = None;
    for header in record.headers().into_iter().flat_map(|h| h.iter()) {
        let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) else { continue };
        if let Some(name) = header.key.strip_prefix("ce_") {
            attributes.push((name.to_owned(), value.to_owned()));
        } else if header.key == crate::produce::EVENT_ID {
            event_id = Some(value.to_owned());
        }
    }
    let has = |attributes: &[(String, String)], name: &str| attributes.iter().any(|(n, _)| n == name);
    let topic = record.topic();
    let defaults = [
        ("specversion", Some("1.0".to_owned())),
        ("id", Some(event_id.unwrap_or_else(|| webhook_id.to_owned()))),
        ("source", Some(format!("/topics/{topic}"))),
        ("type", Some(topic.to_owned())),
        (
            "time",
            record.timestamp().to_millis().and_then(|ms| {
                let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
                at.format(&time::format_description::well_known::Rfc3339).ok()
            }),
        ),
    ];
    for (name, value) in defaults {
        if let Some(value) = value
            && !has(&attributes, name)
        {
            attributes.push((name.to_owned(), value));
        }
    }
    attributes
        .into_iter()
        .filter_map(|(name, value)| Some((format!("ce-{name}"), HeaderValue::from_str(&percent_encode(&value)).ok()?)))
        .collect()
}

/// The HTTP binding's encoding of header values: space, `%`, `"` and anything outside printable ASCII
/// percent-encoded as UTF-8.
fn percent_encode(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x21..=0x7e).contains(&byte) && byte != b'%' && byte != b'"' {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The stable id of a record's message: the same on every retry and redelivery, new on a
/// replay (a new generation).
pub fn webhook_id(subscription: &str, generation: u64, topic: &str, partition: i32, offset: i64) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(format!("{subscription}\n{generation}\n{topic}\n{partition}\n{offset}"));
    let mut id = String::with_capacity(28);
    id.push_str("msg_");
    for byte in &digest[..12] {
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// Sends one attempt; `Ok` carries the subscriber's 2xx status.
pub async fn post(
    spec: &SubscriptionSpec,
    deps: &Deps,
    target: &Target,
    id: &str,
    record: &OwnedMessage,
    parent: &opentelemetry::Context,
    body: &Bytes,
) -> Result<u16, Failed> {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut request = deps
        .http
        .post(target.url.clone())
        .timeout(Duration::from_millis(spec.timeout_ms))
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(WEBHOOK_ID, id)
        .header(WEBHOOK_TIMESTAMP, timestamp.to_string())
        .header(WEBHOOK_SIGNATURE, signature(&target.secrets, id, timestamp, body))
        .header(SLUICE_TOPIC, record.topic())
        .header(SLUICE_PARTITION, record.partition().to_string())
        .header(SLUICE_OFFSET, record.offset().to_string());
    // The record's trace context (from the produce request), through this attempt's span.
    let context = deps.tracing.start(SpanKind::Client, parent, || {
        let attributes = vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("sluice.subscription", spec.name.clone()),
            KeyValue::new("messaging.destination.name", record.topic().to_owned()),
            KeyValue::new("messaging.kafka.offset", record.offset()),
        ];
        (format!("deliver {}", spec.name), attributes)
    });
    for (name, value) in trace::inject(&context) {
        request = request.header(name, value);
    }
    // The producer's event id, for subscribers that deduplicate on it rather than `webhook-id`.
    if let Some(id) = record
        .headers()
        .and_then(|headers| headers.iter().find(|h| h.key == crate::produce::EVENT_ID))
        .and_then(|h| h.value)
        .and_then(|value| HeaderValue::from_bytes(value).ok())
    {
        request = request.header(EVENT_ID, id);
    }
    if spec.format == crate::config::subscription::DeliveryFormat::Cloudevents {
        for (name, value) in cloudevent_headers(record, id) {
            request = request.header(name, value);
        }
    }
    if let Some(key) = record.key() {
        match std::str::from_utf8(key) {
            Ok(text) if text.chars().all(|c| !c.is_control()) => request = request.header(SLUICE_KEY, text),
            _ => {
                use base64::Engine as _;
                request = request.header(SLUICE_KEY_BASE64, base64::engine::general_purpose::STANDARD.encode(key));
            }
        }
    }
    let sent = request.body(body.clone()).send().await;
    let span = context.span();
    let mut response = match sent {
        Ok(response) => response,
        Err(error) => {
            span.set_status(opentelemetry::trace::Status::error(error.to_string()));
            return Err(Failed::Request(format!("{error:#}")));
        }
    };
    let status = response.status();
    span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
    if status.is_success() {
        // Read (and discard) a short body so the connection can be reused; a longer one is not
        // waited for: the connection is dropped instead.
        let mut read = 0;
        while read <= MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        return Ok(status.as_u16());
    }
    span.set_status(opentelemetry::trace::Status::error(status.to_string()));
    if status == reqwest::StatusCode::GONE {
        return Err(Failed::Gone);
    }
    let retry_after = if matches!(status.as_u16(), 429 | 503) {
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    } else {
        None
    };
    Err(Failed::Status { status: status.as_u16(), retry_after })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_ids_are_stable_per_record_and_new_per_replay() {
        let id = webhook_id("billing", 0, "orders", 2, 41);
        assert!(id.starts_with("msg_") && id.len() == 28, "{id}");
        assert_eq!(id, webhook_id("billing", 0, "orders", 2, 41));
        assert_ne!(id, webhook_id("billing", 1, "orders", 2, 41), "a replay is a new message");
        assert_ne!(id, webhook_id("billing", 0, "orders", 2, 42));
    }

    #[test]
    fn attempt_labels_are_the_status_or_error() {
        assert_eq!(Failed::status_label(&Ok(204)), "204");
        assert_eq!(Failed::status_label(&Err(Failed::Gone)), "410");
        assert_eq!(Failed::status_label(&Err(Failed::Request("refused".into()))), "error");
    }
}
