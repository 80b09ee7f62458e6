//! The envelope form of a produce request (`Content-Type: application/vnd.sluice.envelope+json`):
//! whole records, each with its value and, optionally, key, headers, partition and event id.
//!
//! ```json
//! [{"key": "o-1", "value": {"order_id": "o-1"}, "headers": {"source": "shop",
//!   "trace-bytes": {"base64": "AAE="}}, "partition": 2, "event_id": "e-1"},
//!  {"key": "o-2", "value": null}]
//! ```
//! `value: null` is a tombstone. On `POST /v1/events` each envelope also names its `topic`.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::problem::Problem;
use crate::plugin::bindings::Header;
use crate::produce::{Incoming, Key};

/// The envelope form's media type.
pub const MEDIA_TYPE: &str = "application/vnd.sluice.envelope+json";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(default)]
    topic: Option<String>,
    #[serde(borrow)]
    value: &'a RawValue,
    #[serde(borrow, default)]
    key: Option<&'a RawValue>,
    #[serde(default)]
    headers: BTreeMap<String, HeaderValue>,
    /// A number, as JSON Schema's `integer` has it (`2` or `2.0`).
    #[serde(default)]
    partition: Option<serde_json::Number>,
    #[serde(default)]
    event_id: Option<String>,
}

/// A header's value: text, or bytes written as `{"base64": "..."}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum HeaderValue {
    Text(String),
    Bytes { base64: String },
}

/// Longest `event_id` accepted: ids are for deduplication, not payloads.
const MAX_EVENT_ID_CHARS: usize = 256;

/// A partition number: whole, from 0 to `i32::MAX`.
fn partition(number: &serde_json::Number) -> Option<i32> {
    if let Some(n) = number.as_u64() {
        return i32::try_from(n).ok();
    }
    let n = number.as_f64()?;
    // Within i32's range a float is exact, so the cast loses nothing.
    #[allow(clippy::cast_possible_truncation)]
    (n.fract() == 0.0 && (0.0..=f64::from(i32::MAX)).contains(&n)).then_some(n as i32)
}

/// One envelope of a body, as an incoming event (and the topic it names, if any).
pub fn parse(index: usize, raw: &RawValue) -> Result<(Option<String>, Incoming<'_>), Problem> {
    let invalid = |detail: String, pointer: String| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-body", "Invalid body", detail)
            .with("index", index)
            .with("pointer", pointer)
    };
    let envelope: Envelope<'_> = serde_json::from_str(raw.get()).map_err(|e| {
        invalid(
            format!("envelope {index} must be {{\"value\": {{...}} or null, \"key\", \"headers\", \"partition\", \"event_id\"}}: {e}"),
            format!("/{index}"),
        )
    })?;
    let value = match envelope.value.get() {
        "null" => None,
        text if text.starts_with('{') => Some(std::borrow::Cow::Borrowed(text.as_bytes())),
        _ => {
            return Err(invalid(
                format!("the value of envelope {index} is neither a JSON object nor null (a tombstone)"),
                format!("/{index}/value"),
            ));
        }
    };
    let mut headers = Vec::with_capacity(envelope.headers.len());
    for (name, value) in envelope.headers {
        let value = match value {
            HeaderValue::Text(text) => text.into_bytes(),
            HeaderValue::Bytes { base64 } => decode_base64(&base64).map_err(|e| {
                invalid(format!("header '{name}' is not base64: {e}"), format!("/{index}/headers/{}", escape(&name)))
            })?,
        };
        headers.push(Header { key: name, value });
    }
    if let Some(id) = &envelope.event_id
        && (id.is_empty() || id.chars().count() > MAX_EVENT_ID_CHARS)
    {
        return Err(invalid(
            format!("event_id must have 1 to {MAX_EVENT_ID_CHARS} characters"),
            format!("/{index}/event_id"),
        ));
    }
    let partition = match envelope.partition {
        None => None,
        Some(number) => Some(partition(&number).ok_or_else(|| {
            invalid(format!("partition must be a whole number from 0 to {}", i32::MAX), format!("/{index}/partition"))
        })?),
    };
    let incoming = Incoming {
        value,
        key: envelope.key.map(|k| Key::Json(std::borrow::Cow::Borrowed(k))),
        headers,
        partition,
        event_id: envelope.event_id,
        timestamp_ms: None,
    };
    Ok((envelope.topic, incoming))
}

/// Standard base64, lenient about the unused bits of the last symbol as most encoders' readers
/// are.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine as _;
    const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(text.as_bytes())
}

/// A JSON pointer token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<(Option<String>, Incoming<'_>), Problem> {
        let raw: &RawValue = serde_json::from_str(text).unwrap();
        parse(3, raw)
    }

    #[test]
    fn an_envelope_carries_a_whole_record() {
        let (topic, event) = one(
            r#"{"value":{"a":1},"key":{"id":7},"headers":{"h":"text","b":{"base64":"AAE="}},"partition":2,"event_id":"e-1"}"#,
        )
        .unwrap();
        assert_eq!(topic, None);
        assert_eq!(event.value.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert!(matches!(&event.key, Some(Key::Json(k)) if k.get() == r#"{"id":7}"#));
        let headers: Vec<(&str, &[u8])> = event.headers.iter().map(|h| (h.key.as_str(), &h.value[..])).collect();
        assert_eq!(headers, [("b", &[0u8, 1][..]), ("h", b"text")]);
        assert_eq!((event.partition, event.event_id.as_deref()), (Some(2), Some("e-1")));
        let (_, event) = one(r#"{"value":{},"partition":7.0}"#).unwrap();
        assert_eq!(event.partition, Some(7), "JSON Schema's integer includes 7.0");
        let (_, event) = one(r#"{"value":{},"headers":{"h":{"base64":"AB=="}}}"#).unwrap();
        assert_eq!(event.headers[0].value, [0], "unused trailing bits are ignored");
    }

    #[test]
    fn a_null_value_is_a_tombstone_and_a_null_key_no_key() {
        let (_, event) = one(r#"{"key":"k","value":null}"#).unwrap();
        assert!(event.value.is_none());
        let (_, event) = one(r#"{"key":null,"value":{}}"#).unwrap();
        assert!(event.key.is_none());
    }

    #[test]
    fn bad_envelopes_say_where() {
        for (body, pointer) in [
            (r#"{"value":[1]}"#, "/3/value"),
            (r#"{"key":"k"}"#, "/3"),
            (r#"{"value":{},"colour":1}"#, "/3"),
            (r#"{"value":{},"partition":-1}"#, "/3/partition"),
            (r#"{"value":{},"partition":1.5}"#, "/3/partition"),
            (r#"{"value":{},"partition":"2"}"#, "/3"),
            (r#"{"value":{},"headers":{"a/b":{"base64":"*"}}}"#, "/3/headers/a~1b"),
            (r#"{"value":{},"headers":{"h":{"base64":"AAE"}}}"#, "/3/headers/h"),
            (r#"{"value":{},"event_id":""}"#, "/3/event_id"),
        ] {
            let problem = one(body).unwrap_err();
            assert_eq!((problem.slug, problem.extra["pointer"].as_str()), ("invalid-body", Some(pointer)), "{body}");
        }
    }
}
