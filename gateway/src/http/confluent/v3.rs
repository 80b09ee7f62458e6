//! Confluent REST Proxy v3 records: `POST /v3/clusters/{cluster_id}/topics/{topic}/records`.
//!
//! The body is one record or a stream of concatenated records (a chunked request may go on for
//! as long as the client writes); the answer is one delivery report per record, in order, each
//! a JSON object followed by `\r\n`, written as soon as the record's outcome is known:
//!
//! ```text
//! {"value": {"type": "JSON", "data": {"order_id": "o-1"}}}
//! {"key": {"type": "STRING", "data": "o-2"}, "value": {"data": {"order_id": "o-2"}}}
//! → {"error_code":200,"cluster_id":"…","topic_name":"orders","partition_id":0,"offset":7,
//!    "timestamp":"2026-12-02T17:30:00.123Z","value":{"type":"JSON","size":19}}\r\n …
//! ```
//!
//! Records that are complete when a chunk arrives are produced together (one pipeline batch per
//! run of records choosing the same schemas), so a long stream is not one request per record.
//! As in Confluent's proxy the status is 200 once the stream has started, and each report
//! carries its record's `error_code`; problems found before that (auth, an unknown topic, the
//! content type) are answered with their own status.

use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::records::{self, Embedded, SchemaChoice};
use super::{ConfluentError, event_code};
use crate::auth::{Permission, Principal};
use crate::codec::SchemaType;
use crate::http::AppState;
use crate::http::produce::{Traced, batch_problem};
use crate::plugin::bindings::Header;
use crate::produce::{Chosen, EventResult, Incoming, Outcome, results::PartOutcome};
use crate::route::Route;

/// Delivery reports held for a client that is not reading them yet.
const REPORTS_BUFFERED: usize = 4096;

/// A record of the request, as v3 gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceRecord {
    partition_id: Option<i32>,
    #[serde(default)]
    headers: Vec<RecordHeader>,
    key: Option<Data>,
    value: Option<Data>,
    timestamp: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordHeader {
    name: String,
    value: Option<String>,
}

/// A key or value: its `type`, or the schema it is encoded with, and its `data`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Data {
    #[serde(rename = "type")]
    kind: Option<String>,
    subject: Option<String>,
    subject_name_strategy: Option<String>,
    schema_id: Option<u32>,
    schema_version: Option<u32>,
    schema: Option<String>,
    data: Option<Box<RawValue>>,
}

/// A record turned into what the pipeline takes, with the schemas it chose.
struct Converted {
    /// Taken by the pipeline when the record's run is produced.
    incoming: Incoming<'static>,
    /// The key's and the value's.
    chosen: (Option<Choice>, Option<Choice>),
    /// The `type` to report for the key and the value (when the record had them).
    types: (Option<Embedded>, Option<Embedded>),
}

/// A schema a record chose, and its language.
type Choice = (SchemaType, SchemaChoice);

/// `POST /v3/clusters/{cluster_id}/topics/{topic}/records`
pub async fn produce(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((cluster, topic)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match start(&app, &principal, &topic, &headers) {
        Ok(route) => {
            // Reports wait here while the client is still writing: a client that reads only once it
            // has sent everything (as Confluent's own example does) gets up to this many before
            // Sluice stops reading its records.
            let (sender, receiver) = mpsc::channel::<Bytes>(REPORTS_BUFFERED);
            let traced = Traced::start(&app, &headers, &topic);
            let span = traced.span.clone();
            let stream = Stream { app, principal, route, cluster, traced, reports: sender };
            tokio::spawn(stream.run(body).instrument(span));
            let reports = futures::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), receiver))
            });
            let mut response = Response::new(Body::from_stream(reports));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(error) => error.into_response(),
    }
}

/// What is checked before the stream starts.
fn start(
    app: &AppState,
    principal: &Principal,
    topic: &str,
    headers: &HeaderMap,
) -> Result<Arc<Route>, ConfluentError> {
    principal.require(Permission::Produce(topic))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut parts = content_type.split(';');
    let json = parts.next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    let charset_ok = parts.all(|p| match p.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    if !json || !charset_ok {
        return Err(ConfluentError::unsupported_media_type(format!(
            "send records as application/json, not '{content_type}'"
        )));
    }
    app.routes.get(topic).ok_or_else(|| ConfluentError::topic_not_found(topic))
}

/// One streaming request: reads records as they arrive and writes a report for each.
struct Stream {
    app: Arc<AppState>,
    principal: Arc<Principal>,
    route: Arc<Route>,
    cluster: String,
    traced: Traced,
    reports: mpsc::Sender<Bytes>,
}

impl Stream {
    async fn run(self, mut body: Body) {
        let limit = self.app.http.max_body_bytes;
        let mut buffer: Vec<u8> = Vec::new();
        let max = self.app.http.max_events_per_request;
        let mut status = StatusCode::OK;
        let mut ended = false;
        'stream: while !ended {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => {
                    tracing::debug!(error = %error, "a v3 produce stream broke off");
                    break;
                }
                None => ended = true,
            }
            loop {
                let (records, consumed, failure) = split(&buffer, ended, max);
                buffer.drain(..consumed);
                let more = records.len() == max;
                if !records.is_empty() && !self.produce(records).await {
                    return;
                }
                let failure = failure.or_else(|| {
                    (buffer.len() > limit).then(|| {
                        ConfluentError::status(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("a record is larger than the limit of {limit} bytes"),
                        )
                    })
                });
                if let Some(error) = failure {
                    status = error.status;
                    let _ = self.report(&serde_json::to_value(&error).unwrap_or_default()).await;
                    break 'stream;
                }
                if !more {
                    break;
                }
            }
        }
        Traced::end(&self.traced.context, status);
    }

    /// Produces records and reports each; false once the client has gone.
    async fn produce(&self, records: Vec<Result<ProduceRecord, ConfluentError>>) -> bool {
        let mut run: Vec<Converted> = Vec::new();
        for record in records {
            let converted = record.and_then(|r| convert(&self.route, r));
            match converted {
                Ok(converted) => {
                    if run.last().is_some_and(|last| last.chosen != converted.chosen) && !self.flush(&mut run).await {
                        return false;
                    }
                    run.push(converted);
                }
                Err(error) => {
                    if !self.flush(&mut run).await
                        || !self.report(&serde_json::to_value(&error).unwrap_or_default()).await
                    {
                        return false;
                    }
                }
            }
        }
        self.flush(&mut run).await
    }

    /// Produces a run of records choosing the same schemas, and reports each.
    async fn flush(&self, run: &mut Vec<Converted>) -> bool {
        if run.is_empty() {
            return true;
        }
        let mut batch = std::mem::take(run);
        let reports = match self.chosen(&batch[0].chosen).await {
            Err(error) => vec![serde_json::to_value(&error).unwrap_or_default(); batch.len()],
            Ok(chosen) => {
                let events: Vec<Incoming<'static>> =
                    batch.iter_mut().map(|c| std::mem::take(&mut c.incoming)).collect();
                let may_produce = |topic: &str| self.principal.allows(Permission::Produce(topic));
                let produced =
                    self.app.pipeline.produce(&self.route, &events, &self.traced.carried, &may_produce, &chosen).await;
                match produced {
                    Ok(results) => {
                        results.iter().zip(&batch).map(|(result, c)| self.delivery_report(result, c)).collect()
                    }
                    Err(error) => {
                        let error = ConfluentError::from(batch_problem(error));
                        vec![serde_json::to_value(&error).unwrap_or_default(); batch.len()]
                    }
                }
            }
        };
        for report in reports {
            if !self.report(&report).await {
                return false;
            }
        }
        true
    }

    async fn chosen(&self, (key, value): &(Option<Choice>, Option<Choice>)) -> Result<Chosen, ConfluentError> {
        let route = &self.route;
        let schemas = &self.app.pipeline.schemas;
        let value = match value {
            Some((schema_type, choice)) => Some(records::resolve(schemas, &route.subject, *schema_type, choice).await?),
            None => None,
        };
        let key = match key {
            Some((schema_type, choice)) => {
                Some(records::resolve(schemas, &super::v2::key_subject(route), *schema_type, choice).await?)
            }
            None => None,
        };
        Ok(Chosen { value, key })
    }

    fn delivery_report(&self, result: &EventResult, converted: &Converted) -> Value {
        let stored = |topic: &str, delivered: &crate::kafka::producer::Delivered| {
            let mut report = json!({
                "error_code": 200,
                "cluster_id": self.cluster,
                "topic_name": topic,
                "partition_id": delivered.partition,
                "offset": delivered.offset,
            });
            if let Some(ms) = delivered.timestamp_ms {
                report["timestamp"] = timestamp(ms).into();
            }
            let sizes = delivered.sizes.unwrap_or_default();
            for (name, kind, size) in [("key", converted.types.0, sizes.0), ("value", converted.types.1, sizes.1)] {
                if let Some(kind) = kind {
                    let size = size.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1);
                    report[name] = json!({"type": kind.v3_name(), "size": size});
                }
            }
            if let Some(id) = &result.event_id {
                report["event_id"] = id.as_str().into();
            }
            report
        };
        let failed = |error: &crate::produce::EventError| {
            let mut report = json!({"error_code": event_code(error).1, "message": error.message});
            if let Some(pointer) = &error.pointer {
                report["pointer"] = pointer.as_str().into();
            }
            report
        };
        match &result.outcome {
            Outcome::Stored(delivered) => stored(&self.route.topic, delivered),
            Outcome::Failed(error) => failed(error),
            Outcome::Enqueued => json!({"error_code": 202, "cluster_id": self.cluster, "topic_name": self.route.topic,
                "message": "queued, not yet acknowledged (the route's ack is fire-and-forget)"}),
            Outcome::Dropped { plugin, reason } => json!({"error_code": 200, "cluster_id": self.cluster,
                "topic_name": self.route.topic, "dropped": {"plugin": plugin, "reason": reason}}),
            Outcome::DeadLettered { topic, delivered, plugin, reason } => {
                let mut report = stored(topic, delivered);
                report["dead_lettered"] = json!({"plugin": plugin, "reason": reason});
                report
            }
            Outcome::Many(parts) => {
                if let Some(error) = result.failure() {
                    return failed(error);
                }
                let mut first = parts
                    .iter()
                    .find_map(|p| match &p.outcome {
                        PartOutcome::Stored(d) => Some(stored(&p.topic, d)),
                        _ => None,
                    })
                    .unwrap_or_else(
                        || json!({"error_code": 202, "cluster_id": self.cluster, "topic_name": self.route.topic}),
                    );
                first["records"] = parts.len().into();
                first
            }
        }
    }

    /// Writes one report; false once the client has gone.
    async fn report(&self, report: &Value) -> bool {
        let mut line = serde_json::to_vec(report).unwrap_or_default();
        line.extend_from_slice(b"\r\n");
        self.reports.send(Bytes::from(line)).await.is_ok()
    }
}

/// An ISO-8601 UTC time, as Confluent's reports write record timestamps.
fn timestamp(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The complete records at the start of `buffer` (at most `max` of them), how many bytes they
/// took, and the error that ends the stream if the rest cannot become a record.
#[allow(clippy::type_complexity)]
fn split(
    buffer: &[u8],
    ended: bool,
    max: usize,
) -> (Vec<Result<ProduceRecord, ConfluentError>>, usize, Option<ConfluentError>) {
    let mut records = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(buffer).into_iter::<&RawValue>();
    let mut consumed = 0;
    while records.len() < max {
        match stream.next() {
            None => {
                consumed = buffer.len();
                break;
            }
            Some(Ok(raw)) => {
                consumed = stream.byte_offset();
                records.push(
                    serde_json::from_str::<ProduceRecord>(raw.get())
                        .map_err(|e| ConfluentError::status(StatusCode::BAD_REQUEST, format!("Bad Request: {e}"))),
                );
            }
            Some(Err(error)) if error.is_eof() && !ended => break,
            Some(Err(error)) => {
                let error = ConfluentError::status(
                    StatusCode::BAD_REQUEST,
                    format!("Bad Request: Error processing JSON: {error}"),
                );
                return (records, consumed, Some(error));
            }
        }
    }
    (records, consumed, None)
}

/// A v3 record as the pipeline takes it. Refusals are Confluent's per-record 400s.
fn convert(route: &Route, record: ProduceRecord) -> Result<Converted, ConfluentError> {
    let bad = |why: String| ConfluentError::status(StatusCode::BAD_REQUEST, format!("Bad Request: {why}"));
    if record.partition_id.is_some_and(|p| p < 0) {
        return Err(ConfluentError::new(StatusCode::NOT_FOUND, 40402, "Partition not found."));
    }
    let mut headers = Vec::with_capacity(record.headers.len());
    for header in record.headers {
        let value = match header.value {
            Some(text) => crate::http::envelope::decode_base64(&text)
                .map_err(|e| bad(format!("header '{}' is not base64: {e}", header.name)))?,
            None => Vec::new(),
        };
        headers.push(Header { key: header.name, value });
    }
    let timestamp_ms = match &record.timestamp {
        None => None,
        Some(text) => {
            let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map_err(|e| bad(format!("timestamp '{text}' is not an ISO-8601 date-time: {e}")))?;
            Some(
                i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
                    .map_err(|_| bad(format!("timestamp '{text}' is out of range")))?,
            )
        }
    };
    let (value, value_type, value_choice) = match &record.value {
        None => (None, None, None),
        Some(data) => {
            let (embedded, choice) = data_format(route, data, false).map_err(bad)?;
            let value = embedded.value(data.data.as_deref()).map_err(bad)?.map(std::borrow::Cow::into_owned);
            (value, Some(embedded), with_type(embedded, choice))
        }
    };
    let (key, key_type, key_choice) = match &record.key {
        None => (None, None, None),
        Some(data) => {
            let (embedded, choice) = data_format(route, data, true).map_err(bad)?;
            let key = embedded.key(data.data.as_deref()).map_err(bad)?.map(crate::produce::Key::into_owned);
            (key, Some(embedded), with_type(embedded, choice))
        }
    };
    let value = value.map(std::borrow::Cow::Owned);
    let incoming = Incoming { value, key, headers, partition: record.partition_id, event_id: None, timestamp_ms };
    Ok(Converted { incoming, chosen: (key_choice, value_choice), types: (key_type, value_type) })
}

fn with_type(embedded: Embedded, choice: Option<SchemaChoice>) -> Option<Choice> {
    Some((embedded.schema_type()?, choice?))
}

/// How a key or value is given, and the schema it chose. Without a `type` it takes the route's
/// format (its key schema's, for keys) and the schema the fields name, else the route's.
fn data_format(route: &Route, data: &Data, key: bool) -> Result<(Embedded, Option<SchemaChoice>), String> {
    let route_format = if key {
        match route.key_schema {
            Some((format, _)) => Embedded::of_route(format),
            None => Embedded::String,
        }
    } else {
        Embedded::of_route(route.format)
    };
    let names_schema = data.schema.is_some() || data.schema_id.is_some() || data.schema_version.is_some();
    let embedded = match &data.kind {
        Some(name) => Embedded::parse_v3(name)
            .ok_or_else(|| format!("type '{name}' is not one of BINARY, JSON, STRING, AVRO, JSONSCHEMA, PROTOBUF"))?,
        // A key that names a schema but no type, on a route without a key schema: in the
        // format of the route's values.
        None if key && names_schema && route_format.schema_type().is_none() => Embedded::of_route(route.format),
        None => route_format,
    };
    let own_subject = if key { super::v2::key_subject(route) } else { route.subject.clone() };
    if let Some(subject) = &data.subject
        && *subject != own_subject
    {
        return Err(format!("subject '{subject}' is not the route's ('{own_subject}')"));
    }
    match data.subject_name_strategy.as_deref() {
        None => {}
        Some("TOPIC_NAME") if own_subject == format!("{}-{}", route.topic, if key { "key" } else { "value" }) => {}
        Some(other) => {
            return Err(format!("subject_name_strategy {other} does not name the route's subject ('{own_subject}')"));
        }
    }
    let named = [data.schema.is_some(), data.schema_id.is_some(), data.schema_version.is_some()];
    if named.iter().filter(|n| **n).count() > 1 {
        return Err("schema, schema_id and schema_version exclude each other".into());
    }
    let choice = match (&data.schema, data.schema_id, data.schema_version) {
        (Some(text), _, _) => Some(SchemaChoice::Text(text.clone())),
        (_, Some(id), _) => Some(SchemaChoice::Id(id)),
        (_, _, Some(version)) => Some(SchemaChoice::Version(version)),
        _ => None,
    };
    if embedded.schema_type().is_none() && (choice.is_some() || data.subject.is_some()) {
        return Err(format!("type {} takes no schema", embedded.v3_name()));
    }
    if !key && !embedded.suits(route) {
        return Err(format!(
            "topic '{}' takes {} values (its route's format), not {}",
            route.topic,
            route_format.v3_name(),
            embedded.v3_name()
        ));
    }
    if key && embedded.schema_type().is_some() && embedded != route_format && route.key_schema.is_some() {
        return Err(format!("the route's keys are {}, not {}", route_format.v3_name(), embedded.v3_name()));
    }
    Ok((embedded, choice))
}

/// For the `body` fuzz target: a v3 stream split as it arrives whole or cut off, each record
/// converted for a route of every format.
pub(super) fn fuzz(data: &[u8]) {
    for ended in [false, true] {
        let (records, consumed, _) = split(data, ended, 1000);
        assert!(consumed <= data.len() && records.len() <= 1000);
        for record in records.into_iter().flatten() {
            for format in records::ROUTE_FORMATS {
                let mut route = Route::unrouted("t");
                route.format = format;
                if let Ok(converted) = convert(&route, record.clone()) {
                    assert!(converted.incoming.partition.is_none_or(|p| p >= 0));
                    if let Some(crate::produce::Key::Json(raw)) = &converted.incoming.key {
                        assert!(serde_json::from_str::<&RawValue>(raw.get()).is_ok());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_splits_into_complete_records_and_waits_for_the_rest() {
        let body = br#"{"value":{"type":"JSON","data":1}} {"value":{"type":"JSON","data":2}}{"value":{"ty"#;
        let (records, consumed, failure) = split(body, false, 100);
        assert_eq!(records.len(), 2);
        assert!(failure.is_none());
        assert_eq!(&body[consumed..], br#"{"value":{"ty"#, "the incomplete record waits for more");
        let (records, _, failure) = split(&body[consumed..], true, 100);
        assert!(records.is_empty());
        assert_eq!(failure.unwrap().error_code, 400, "a stream that ends mid-record");
        let (records, consumed, _) = split(body, false, 1);
        assert_eq!((records.len(), &body[consumed..consumed + 2]), (1, &b" {"[..]), "at most max at a time");
    }

    #[test]
    fn an_unknown_field_is_that_records_error() {
        let (records, _, failure) = split(br#"{"records":[]}{"value":null}"#, true, 10);
        assert!(failure.is_none());
        assert_eq!(records[0].as_ref().unwrap_err().error_code, 400);
        assert!(records[1].is_ok());
    }

    #[test]
    fn records_convert_with_their_types_and_schemas() {
        let mut route = Route::unrouted("orders");
        route.unrouted = false;
        route.format = crate::config::Format::Avro;
        route.subject = "orders-value".into();
        let record = |text: &str| convert(&route, serde_json::from_str(text).unwrap());
        let converted = record(
            r#"{"partition_id":1,"headers":[{"name":"h","value":"SGVhZGVyLTE="}],"key":{"type":"STRING","data":"o-1"},
                "value":{"schema_id":3,"data":{"order_id":"o-1"}},"timestamp":"2021-02-05T19:14:42Z"}"#,
        )
        .ok()
        .unwrap();
        assert_eq!(converted.incoming.partition, Some(1));
        assert_eq!(converted.incoming.headers[0].value, b"Header-1");
        assert!(matches!(converted.incoming.key, Some(crate::produce::Key::Bytes(ref k)) if k == b"o-1"));
        assert_eq!(converted.chosen, (None, Some((SchemaType::Avro, SchemaChoice::Id(3)))));
        assert_eq!(converted.incoming.timestamp_ms, Some(1_612_552_482_000));
        assert_eq!(converted.types, (Some(Embedded::String), Some(Embedded::Avro)));
        for refused in [
            r#"{"value":{"type":"JSON","data":{}}}"#,
            r#"{"value":{"type":"AVRO","subject":"other-value","schema":"\"int\"","data":1}}"#,
            r#"{"value":{"schema_id":1,"schema_version":1,"data":{}}}"#,
            r#"{"value":{"type":"ALIEN","data":{}}}"#,
            r#"{"timestamp":"yesterday"}"#,
        ] {
            assert_eq!(record(refused).err().map(|e| e.error_code), Some(400), "{refused}");
        }
        assert_eq!(record(r#"{"partition_id":-1}"#).err().map(|e| e.error_code), Some(40402));
    }
}
