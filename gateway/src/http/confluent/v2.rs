//! Confluent REST Proxy v2 produce: `POST /topics/{topic}` and
//! `POST /topics/{topic}/partitions/{partition}`.
//!
//! ```text
//! POST /topics/orders   Content-Type: application/vnd.kafka.avro.v2+json
//! {"value_schema_id": 3, "records": [{"key": "o-1", "value": {"order_id": "o-1"}}]}
//! → 200 {"offsets": [{"partition": 0, "offset": 7, "error_code": null, "error": null}],
//!        "key_schema_id": null, "value_schema_id": 3}
//! ```
//!
//! As Confluent's proxy, every record is converted before any is written: a record that does
//! not fit its schema refuses the whole request (422, code 42203, with Sluice's `errors[]`
//! naming each refused record and its JSON pointer). Unlike it, no 2xx says a record is stored
//! when it is not: some records failed in Kafka → 207 (each failed offset with its code);
//! all failed → the failure's own status, with `error_code` and `message` beside `offsets`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::Instrument as _;

use super::records::{self, Embedded, SchemaChoice};
use super::{ConfluentError, V2_MEDIA_TYPE, event_code, event_error_json};
use crate::auth::{Permission, Principal};
use crate::http::AppState;
use crate::http::body::read_limited;
use crate::http::produce::{Traced, batch_problem};
use crate::produce::{Chosen, EventResult, Incoming, Outcome, results::PartOutcome};
use crate::route::Route;

/// `POST /topics/{topic}`
pub async fn produce(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(app, principal, topic, None, headers, body).await.unwrap_or_else(|e| e.v2().into_response())
}

/// `POST /topics/{topic}/partitions/{partition}`: every record goes to that partition unless
/// it names its own.
pub async fn produce_to_partition(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((topic, partition)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(partition) = partition.parse::<i32>() else {
        return ConfluentError::status(StatusCode::NOT_FOUND, "HTTP 404 Not Found").v2().into_response();
    };
    serve(app, principal, topic, Some(partition), headers, body).await.unwrap_or_else(|e| e.v2().into_response())
}

#[derive(Debug, Deserialize)]
struct ProduceRequest<'a> {
    #[serde(borrow)]
    records: Vec<ProduceRecord<'a>>,
    key_schema: Option<String>,
    key_schema_id: Option<u32>,
    value_schema: Option<String>,
    value_schema_id: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct ProduceRecord<'a> {
    #[serde(borrow, default)]
    key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
    partition: Option<i32>,
}

#[derive(Debug, Serialize)]
struct Offset {
    partition: Option<i32>,
    offset: Option<i64>,
    error_code: Option<u32>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct ProduceResponse {
    offsets: Vec<Offset>,
    key_schema_id: Option<u32>,
    value_schema_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// The embedded format a v2 request's `Content-Type` names; none at all means binary, as
/// Confluent's proxy has it.
fn embedded_format(headers: &HeaderMap) -> Result<Embedded, ConfluentError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(Embedded::Binary) };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence
        .strip_prefix("application/vnd.kafka.")
        .and_then(|rest| rest.strip_suffix(".v2+json"))
        .and_then(Embedded::parse_v2)
        .ok_or_else(|| {
            ConfluentError::unsupported_media_type(format!(
                "send records as application/vnd.kafka.{{binary,json,avro,jsonschema,protobuf}}.v2+json, not '{text}'"
            ))
        })
}

async fn serve(
    app: Arc<AppState>,
    principal: Arc<Principal>,
    topic: String,
    path_partition: Option<i32>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConfluentError> {
    principal.require(Permission::Produce(&topic))?;
    let route = app.routes.get(&topic).ok_or_else(|| ConfluentError::topic_not_found(&topic))?;
    let embedded = embedded_format(&headers)?;
    if !embedded.suits(&route) {
        return Err(ConfluentError::unsupported_media_type(format!(
            "topic '{topic}' takes application/vnd.kafka.{}.v2+json records (its route's format)",
            v2_name(Embedded::of_route(route.format))
        )));
    }
    let bytes = read_limited(body, &headers, app.http.max_body_bytes).await?;
    let request: ProduceRequest<'_> = serde_json::from_slice(&bytes)
        .map_err(|e| ConfluentError::status(StatusCode::BAD_REQUEST, format!("Bad Request: {e}")))?;
    if request.records.is_empty() {
        return Err(ConfluentError::status(StatusCode::UNPROCESSABLE_ENTITY, "records must not be empty"));
    }
    let max = app.http.max_events_per_request;
    if request.records.len() > max {
        return Err(ConfluentError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} records in one request; the limit is {max}", request.records.len()),
        )
        .with("limit_events", max));
    }
    let chosen = choose(&app, &route, embedded, &request).await?;
    let mut events = Vec::with_capacity(request.records.len());
    for (index, record) in request.records.iter().enumerate() {
        let bad = |why: String, field: &str| {
            ConfluentError::status(StatusCode::BAD_REQUEST, format!("Bad Request: {why}"))
                .with("index", index)
                .with("pointer", format!("/records/{index}/{field}"))
        };
        let value = embedded.value(record.value).map_err(|why| bad(why, "value"))?;
        let key = embedded.key(record.key).map_err(|why| bad(why, "key"))?;
        let partition = record.partition.or(path_partition);
        if partition.is_some_and(|p| p < 0) {
            return Err(ConfluentError::new(StatusCode::NOT_FOUND, 40402, "Partition not found.").with("index", index));
        }
        events.push(Incoming { value, key, partition, ..Incoming::default() });
    }

    let traced = Traced::start(&app, &headers, &topic);
    let context = traced.context.clone();
    let may_produce = |topic: &str| principal.allows(Permission::Produce(topic));
    let run = async {
        let prepared = app
            .pipeline
            .prepare(&route, &events, &traced.carried, &may_produce, &chosen)
            .await
            .map_err(|e| ConfluentError::from(batch_problem(e)))?;
        let refused = prepared.refusals();
        if let Some((_, first)) = refused.first() {
            let (status, code) = event_code(first);
            let detail = if refused.len() == 1 {
                first.message.clone()
            } else {
                format!(
                    "{} of the {} records were refused, so none was written; see errors",
                    refused.len(),
                    events.len()
                )
            };
            let errors: Vec<serde_json::Value> = refused.iter().map(|(i, e)| event_error_json(Some(*i), e)).collect();
            let mut error = ConfluentError::new(status, code, detail).with("errors", errors);
            if first.kind.is_retriable() {
                error.retry_after_s = Some(1);
            }
            return Err(error);
        }
        let results = app.pipeline.write(prepared).await.map_err(|e| ConfluentError::from(batch_problem(e)))?;
        Ok(answer(&results, &chosen, &app, &route).await)
    };
    let response = run.instrument(traced.span).await.unwrap_or_else(|e| e.v2().into_response());
    Traced::end(&context, response.status());
    Ok(response)
}

fn v2_name(embedded: Embedded) -> &'static str {
    match embedded {
        Embedded::Binary | Embedded::String => "binary",
        Embedded::Json => "json",
        Embedded::Avro => "avro",
        Embedded::JsonSchema => "jsonschema",
        Embedded::Protobuf => "protobuf",
    }
}

/// The key and value schemas the request chose; without a choice the route's are used
/// (Confluent's proxy refuses such requests with 42201/42202).
async fn choose(
    app: &AppState,
    route: &Route,
    embedded: Embedded,
    request: &ProduceRequest<'_>,
) -> Result<Chosen, ConfluentError> {
    let Some(schema_type) = embedded.schema_type() else { return Ok(Chosen::default()) };
    let choice = |text: &Option<String>, id: Option<u32>| match (text, id) {
        (_, Some(id)) => Some(SchemaChoice::Id(id)),
        (Some(text), None) => Some(SchemaChoice::Text(text.clone())),
        (None, None) => None,
    };
    let schemas = &app.pipeline.schemas;
    let value = match choice(&request.value_schema, request.value_schema_id) {
        Some(choice) => Some(records::resolve(schemas, &route.subject, schema_type, &choice).await?),
        None => None,
    };
    let key = match choice(&request.key_schema, request.key_schema_id) {
        Some(choice) => Some(records::resolve(schemas, &key_subject(route), schema_type, &choice).await?),
        None => None,
    };
    Ok(Chosen { value, key })
}

/// The subject of a route's key schema: its own, else Confluent's `{topic}-key`.
pub fn key_subject(route: &Route) -> String {
    route.key_schema.as_ref().map_or_else(|| format!("{}-key", route.topic), |(_, subject)| subject.clone())
}

/// The v2 answer: an offset per record, in order.
async fn answer(results: &[EventResult], chosen: &Chosen, app: &AppState, route: &Route) -> Response {
    let offsets: Vec<Offset> = results.iter().map(offset).collect();
    let failed: Vec<&Offset> = offsets.iter().filter(|o| o.error_code.is_some()).collect();
    let value_schema_id = chosen.value.as_ref().map(|s| s.id).or_else(|| results.iter().find_map(|r| r.schema_id));
    let key_schema_id = match (&chosen.key, &route.key_schema) {
        (Some(key), _) => Some(key.id),
        (None, Some((_, subject))) => {
            app.pipeline.schemas.resolve(subject, crate::registry::VersionSpec::Latest).await.ok().map(|s| s.id)
        }
        (None, None) => None,
    };
    let mut body =
        ProduceResponse { offsets: Vec::new(), key_schema_id, value_schema_id, error_code: None, message: None };
    let mut retry = false;
    let status = if failed.is_empty() {
        if results.iter().all(EventResult::is_enqueued) { StatusCode::ACCEPTED } else { StatusCode::OK }
    } else if failed.len() < offsets.len() {
        StatusCode::MULTI_STATUS
    } else {
        // Nothing was stored: the answer is the failure's, so no client takes it for success.
        let first = results.iter().find_map(EventResult::failure).expect("every record failed");
        let (status, code) = event_code(first);
        retry = first.kind.is_retriable();
        body.error_code = Some(code);
        body.message = Some(first.message.clone());
        status
    };
    body.offsets = offsets;
    let mut response = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(V2_MEDIA_TYPE));
    if retry {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1u32));
    }
    response
}

/// One record's offset: where it was stored, or why not. A record a plugin dropped or
/// dead-lettered has neither partition nor error, and `error` says what the plugin did.
fn offset(result: &EventResult) -> Offset {
    let stored =
        |partition, offset| Offset { partition: Some(partition), offset: Some(offset), error_code: None, error: None };
    let failed = |error: &crate::produce::EventError| Offset {
        partition: None,
        offset: None,
        error_code: Some(event_code(error).1),
        error: Some(error.message.clone()),
    };
    let note = |text: String| Offset { partition: None, offset: None, error_code: None, error: Some(text) };
    match &result.outcome {
        Outcome::Stored(d) => stored(d.partition, d.offset),
        Outcome::Enqueued => note("queued, not yet acknowledged (the route's ack is fire-and-forget)".into()),
        Outcome::Failed(error) => failed(error),
        Outcome::Dropped { plugin, reason } => note(format!("dropped by plugin '{plugin}': {reason}")),
        Outcome::DeadLettered { topic, plugin, reason, .. } => {
            note(format!("dead-lettered to '{topic}' by plugin '{plugin}': {reason}"))
        }
        Outcome::Many(parts) => {
            if let Some(error) = result.failure() {
                return failed(error);
            }
            match parts.iter().find_map(|p| match &p.outcome {
                PartOutcome::Stored(d) => Some(*d),
                _ => None,
            }) {
                Some(d) => stored(d.partition, d.offset),
                None => note(format!("fanned out into {} records", parts.len())),
            }
        }
    }
}

/// For the `body` fuzz target: a v2 body's keys and values in every embedded format.
pub(super) fn fuzz(data: &[u8]) {
    let Ok(request) = serde_json::from_slice::<ProduceRequest<'_>>(data) else { return };
    for record in &request.records {
        for embedded in [Embedded::Binary, Embedded::Json, Embedded::Avro, Embedded::JsonSchema, Embedded::Protobuf] {
            if let Ok(Some(value)) = embedded.value(record.value)
                && embedded != Embedded::Binary
            {
                assert!(serde_json::from_slice::<&RawValue>(&value).is_ok(), "JSON values stay JSON");
            }
            let _ = embedded.key(record.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_content_type_names_the_embedded_format() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            embedded_format(&headers)
        };
        assert_eq!(with("application/vnd.kafka.avro.v2+json").unwrap(), Embedded::Avro);
        assert_eq!(with("application/vnd.kafka.jsonschema.v2+json; charset=utf-8").unwrap(), Embedded::JsonSchema);
        assert_eq!(with("application/vnd.kafka.binary.v2+json").unwrap(), Embedded::Binary);
        assert_eq!(embedded_format(&HeaderMap::new()).unwrap(), Embedded::Binary, "none: binary, as Confluent's");
        for refused in ["application/json", "application/vnd.kafka.v2+json", "application/vnd.kafka.string.v2+json"] {
            let error = with(refused).unwrap_err();
            assert_eq!((error.status, error.error_code), (StatusCode::UNSUPPORTED_MEDIA_TYPE, 415), "{refused}");
        }
    }
}
