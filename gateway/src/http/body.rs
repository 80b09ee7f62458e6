//! Reading a produce request body: content type, size limit, JSON, event count.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::value::RawValue;

use super::cloudevents;
use super::problem::Problem;
use crate::produce::Incoming;

/// What a produce request's body holds, by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `application/json`: events (their values only).
    Events,
    /// `application/vnd.sluice.envelope+json`: whole records (see `http::envelope`).
    Envelope,
    /// `application/cloudevents+json`: one CloudEvent in structured mode.
    CloudEvent,
    /// `application/cloudevents-batch+json`: an array of them.
    CloudEventBatch,
    /// `application/json` with `ce-*` headers: one CloudEvent in binary mode, the body its data.
    CloudEventBinary,
    /// Any body to a `bytes` route: one record, the body as it is.
    Bytes,
    /// `application/x-ndjson` to a `bytes` route: one record per line.
    Lines,
}

/// The media type of newline-delimited records on a `bytes` route.
pub const NDJSON: &str = "application/x-ndjson";

/// A `bytes` route takes any body: newline-delimited records ([`NDJSON`]), or one record.
pub fn bytes_form(headers: &HeaderMap) -> Form {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if essence.eq_ignore_ascii_case(NDJSON) { Form::Lines } else { Form::Bytes }
}

/// The records of a `bytes` route's body: the body (with the request's `Content-Type` as the
/// record's `content-type` header), or each non-blank line of it (without its `\n` or `\r\n`).
fn byte_records<'b>(
    bytes: &'b [u8],
    max_events: usize,
    form: Form,
    headers: &HeaderMap,
) -> Result<Vec<Incoming<'b>>, Problem> {
    if form == Form::Bytes {
        let mut record = Incoming::bytes(bytes);
        if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
            let value = content_type.as_bytes().to_vec();
            record.headers.push(crate::plugin::bindings::Header { key: "content-type".into(), value });
        }
        return Ok(vec![record]);
    }
    let lines: Vec<Incoming<'b>> = bytes
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .take(max_events + 1)
        .map(Incoming::bytes)
        .collect();
    if lines.is_empty() {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "empty-batch", "Empty batch", "the body holds no lines"));
    }
    if lines.len() > max_events {
        return Err(too_many(
            max_events,
            format!("more than {max_events} lines in one request; the limit is {max_events}"),
        ));
    }
    Ok(lines)
}

fn too_many(max_events: usize, detail: String) -> Problem {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-many-events", "Too many events", detail)
        .with("limit_events", max_events)
}

/// `application/json` (events, or a binary-mode CloudEvent with `ce-*` headers), the envelope
/// form and structured CloudEvents are accepted, with an optional `charset=utf-8`.
pub fn check_content_type(headers: &HeaderMap) -> Result<Form, Problem> {
    let unsupported = |got: &str| {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!(
                "send events as application/json (records as {}, CloudEvents as {}), not {got}",
                super::envelope::MEDIA_TYPE,
                cloudevents::STRUCTURED
            ),
        )
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported("a body without Content-Type"));
    };
    let text = value.to_str().map_err(|_| unsupported("an unreadable Content-Type"))?;
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let form = if essence.eq_ignore_ascii_case("application/json") {
        if headers.contains_key(cloudevents::BINARY_MARKER) { Form::CloudEventBinary } else { Form::Events }
    } else if essence.eq_ignore_ascii_case(super::envelope::MEDIA_TYPE) {
        Form::Envelope
    } else if essence.eq_ignore_ascii_case(cloudevents::STRUCTURED) {
        Form::CloudEvent
    } else if essence.eq_ignore_ascii_case(cloudevents::BATCH) {
        Form::CloudEventBatch
    } else {
        return Err(unsupported(text));
    };
    for parameter in parts {
        if let Some((name, value)) = parameter.split_once('=') {
            let value = value.trim().trim_matches('"');
            if name.trim().eq_ignore_ascii_case("charset") && !value.eq_ignore_ascii_case("utf-8") {
                return Err(unsupported(text));
            }
        }
    }
    Ok(form)
}

fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Body too large",
        format!("the body exceeds the limit of {limit} bytes"),
    )
    .with("limit_bytes", limit)
}

/// How much of a body over the limit is read and thrown away before it is refused: an answer
/// sent while the client is still writing, followed by closing the connection with its bytes
/// unread, makes the client's TCP stack see a reset instead of the 413. Larger bodies are cut
/// off after this much (their clients may see a reset; nothing more is read).
const DRAIN_BYTES: usize = 1 << 20;
/// How long draining may take.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads at most `limit` bytes; a declared or actual larger body is refused (after reading a
/// bounded amount more, see [`DRAIN_BYTES`]).
pub async fn read_limited(body: Body, headers: &HeaderMap, limit: usize) -> Result<axum::body::Bytes, Problem> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        drain(body, DRAIN_BYTES).await;
        return Err(too_large(limit));
    }
    let mut body = body;
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "unreadable-body",
                "Unreadable body",
                format!("the request body could not be read: {error}"),
            )
        })?;
        let Ok(data) = frame.into_data() else { continue };
        if collected.len() + data.len() > limit {
            drain(body, DRAIN_BYTES.saturating_sub(collected.len() + data.len())).await;
            return Err(too_large(limit));
        }
        collected.extend_from_slice(&data);
    }
    Ok(collected.into())
}

/// Reads and discards up to `bytes` more of a body, for at most [`DRAIN_TIME`].
async fn drain(mut body: Body, bytes: usize) {
    let mut left = bytes;
    let reading = async {
        while left > 0 {
            match body.frame().await {
                Some(Ok(frame)) => left = left.saturating_sub(frame.data_ref().map_or(0, |d| d.len())),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, reading).await;
}

fn malformed(e: serde_json::Error) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "malformed-json",
        "Malformed JSON",
        format!("the body is not valid JSON: {e}"),
    )
    .with("line", e.line())
    .with("column", e.column())
}

/// Splits a body into its events: one event (an object) or a batch (an array of events).
///
/// Events stay as raw JSON borrowed from the body: schemaless routes produce them byte for byte
/// as sent, and schema routes parse each one once, when they encode it.
pub fn parse_events(bytes: &[u8], max_events: usize) -> Result<Vec<&RawValue>, Problem> {
    let invalid = |detail: String| Problem::new(StatusCode::BAD_REQUEST, "invalid-body", "Invalid body", detail);
    let events: Vec<&RawValue> = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(bytes).map_err(malformed)?,
        Some(b'{') => vec![serde_json::from_slice(bytes).map_err(malformed)?],
        _ => {
            // Malformed JSON is reported as such, with its position, before its shape.
            serde_json::from_slice::<&RawValue>(bytes).map_err(malformed)?;
            return Err(invalid("the body must be one event (a JSON object) or an array of events".into()));
        }
    };
    if let Some(index) = events.iter().position(|e| !e.get().starts_with('{')) {
        return Err(invalid(format!("event {index} is not a JSON object")).with("index", index));
    }
    if events.is_empty() {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "empty-batch", "Empty batch", "the array holds no events"));
    }
    if events.len() > max_events {
        return Err(too_many(max_events, format!("{} events in one request; the limit is {max_events}", events.len())));
    }
    Ok(events)
}

/// One event of `POST /v1/events`: its topic and the event.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicEvent<'a> {
    pub topic: String,
    #[serde(borrow)]
    pub value: &'a RawValue,
}

/// Splits a `POST /v1/events` body: one `{"topic", "value"}` object or an array of them.
pub fn parse_topic_events(bytes: &[u8], max_events: usize) -> Result<Vec<TopicEvent<'_>>, Problem> {
    let entries = parse_events(bytes, max_events)?;
    entries
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let entry: TopicEvent<'_> = serde_json::from_str(raw.get()).map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-body",
                    "Invalid body",
                    format!("event {index} must be {{\"topic\": \"...\", \"value\": {{...}}}}: {e}"),
                )
                .with("index", index)
            })?;
            if !entry.value.get().starts_with('{') {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-body",
                    "Invalid body",
                    format!("the value of event {index} is not a JSON object"),
                )
                .with("index", index)
                .with("pointer", format!("/{index}/value")));
            }
            Ok(entry)
        })
        .collect()
}

/// Splits a body of either form into its events; on `POST /v1/events` (`named`) each names its
/// topic.
pub fn parse_incoming<'b>(
    bytes: &'b [u8],
    max_events: usize,
    form: Form,
    named: bool,
    headers: &HeaderMap,
) -> Result<Vec<(Option<String>, Incoming<'b>)>, Problem> {
    match (form, named) {
        (Form::Bytes | Form::Lines, false) => {
            Ok(byte_records(bytes, max_events, form, headers)?.into_iter().map(|e| (None, e)).collect())
        }
        (Form::Bytes | Form::Lines, true) => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "POST /v1/events takes JSON; send a bytes route's records to /v1/topics/{topic}/events",
        )),
        (Form::CloudEvent | Form::CloudEventBatch | Form::CloudEventBinary, true) => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "CloudEvents name no Kafka topic: send them to /v1/topics/{topic}/events",
        )),
        (Form::CloudEvent | Form::CloudEventBinary, false) => {
            let events = parse_events(bytes, 1)?;
            let raw = events[0];
            let event = if form == Form::CloudEvent {
                cloudevents::structured(None, raw)?
            } else {
                cloudevents::binary(headers, raw)?
            };
            Ok(vec![(None, event)])
        }
        (Form::CloudEventBatch, false) => {
            // A batch is an array even of one event.
            if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
                serde_json::from_slice::<&RawValue>(bytes).map_err(malformed)?;
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-body",
                    "Invalid body",
                    "a CloudEvents batch is a JSON array of events",
                ));
            }
            parse_events(bytes, max_events)?
                .into_iter()
                .enumerate()
                .map(|(index, raw)| {
                    let event = cloudevents::structured(Some(index), raw).map_err(|p| p.with("index", index))?;
                    Ok((None, event))
                })
                .collect()
        }
        (Form::Events, false) => {
            Ok(parse_events(bytes, max_events)?.into_iter().map(|e| (None, Incoming::value(e))).collect())
        }
        (Form::Events, true) => Ok(parse_topic_events(bytes, max_events)?
            .into_iter()
            .map(|e| (Some(e.topic), Incoming::value(e.value)))
            .collect()),
        (Form::Envelope, _) => parse_events(bytes, max_events)?
            .into_iter()
            .enumerate()
            .map(|(index, raw)| {
                let (topic, incoming) = super::envelope::parse(index, raw)?;
                let invalid = |detail: &str| {
                    Problem::new(StatusCode::BAD_REQUEST, "invalid-body", "Invalid body", detail.to_owned())
                        .with("index", index)
                        .with("pointer", format!("/{index}/topic"))
                };
                match (named, &topic) {
                    (true, None) => Err(invalid("on POST /v1/events each envelope names its topic")),
                    (false, Some(_)) => Err(invalid("the topic is in the URL; leave \"topic\" out")),
                    _ => Ok((topic, incoming)),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_type(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn accepts_json_with_or_without_utf8_charset() {
        assert_eq!(check_content_type(&with_type("application/json")).unwrap(), Form::Events);
        assert_eq!(check_content_type(&with_type("Application/JSON; charset=UTF-8")).unwrap(), Form::Events);
        let envelope = check_content_type(&with_type("application/vnd.sluice.envelope+json")).unwrap();
        assert_eq!(envelope, Form::Envelope);
        for refused in ["text/plain", "application/json; charset=latin1", "application/jsonl"] {
            assert_eq!(check_content_type(&with_type(refused)).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let problem = parse_events(b"[\n  {\"a\": 1},\n  {\"a\": }\n]", 10).unwrap_err();
        assert_eq!(problem.status, StatusCode::BAD_REQUEST);
        assert_eq!((problem.extra["line"].as_u64(), problem.extra["column"].as_u64()), (Some(3), Some(9)));
    }

    #[test]
    fn bodies_are_one_event_or_a_bounded_batch() {
        assert_eq!(parse_events(br#"{"a":1}"#, 1).unwrap().len(), 1);
        assert_eq!(parse_events(br#"[{"a":1},{"a":2}]"#, 2).unwrap().len(), 2);
        assert_eq!(parse_events(br#"[{"a":1},{"a":2}]"#, 1).unwrap_err().status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(parse_events(b"[]", 1).unwrap_err().slug, "empty-batch");
        assert_eq!(parse_events(b"42", 1).unwrap_err().slug, "invalid-body");
        assert_eq!(parse_events(br#"[{"a":1}, 2]"#, 5).unwrap_err().extra["index"], 1);
        assert_eq!(parse_events(b" {\"a\" : [1, 2]} ", 1).unwrap()[0].get(), "{\"a\" : [1, 2]}", "raw, as sent");
    }

    #[test]
    fn multi_topic_bodies_name_a_topic_and_an_object_value_per_event() {
        let events = parse_topic_events(br#"[{"topic":"a","value":{"x":1}},{"value":{},"topic":"b"}]"#, 5).unwrap();
        assert_eq!((events[0].topic.as_str(), events[0].value.get()), ("a", r#"{"x":1}"#));
        assert_eq!(events[1].topic, "b");
        for (body, index) in [
            (&br#"[{"topic":"a","value":{}},{"topic":"a"}]"#[..], 1),
            (br#"[{"topic":"a","value":{},"key":"k"}]"#, 0),
            (br#"[{"topic":"a","value":[1]}]"#, 0),
            (br#"{"topic":7,"value":{}}"#, 0),
        ] {
            let problem = parse_topic_events(body, 5).unwrap_err();
            assert_eq!((problem.slug, problem.extra["index"].as_u64()), ("invalid-body", Some(index)), "{problem:?}");
        }
    }
}
