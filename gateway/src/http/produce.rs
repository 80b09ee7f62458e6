//! `POST /v1/topics/{topic}/events`
//!
//! Overall status of a request, once it got as far as the events:
//! - every event stored: 200 (`ack = "wait"`), or 202 when every event was only queued
//!   (`ack = "fire-and-forget"`); body `{"results": [...]}`;
//! - some stored, some refused: 207, same body, each result either stored or with an `error`;
//! - none stored: a problem response whose `errors[]` lists each event's error; its status is
//!   503 (with `Retry-After`) if any refusal is worth retrying, else the status the refusals
//!   share (422 for schema and key errors), else 422.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::body::{check_content_type, parse_events, read_limited};
use super::idempotency::{self, Begin, Idempotency};
use super::problem::Problem;
use crate::auth::{Permission, Principal};
use crate::plugin::bindings::Header;
use crate::produce::{BatchError, EventError, EventResult, Outcome, Part, results::PartOutcome};
use crate::registry::RegistryError;
use crate::route::Route;
use crate::telemetry::trace;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use tracing::Instrument as _;

pub async fn produce(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    // Before anything about the topic is revealed, even whether it exists.
    principal.require(Permission::Produce(&topic))?;
    let route = app.routes.get(&topic).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-topic",
            "Unknown topic",
            format!("no route is configured for topic '{topic}'"),
        )
        .with("topic", topic.clone())
    })?;
    check_content_type(&headers)?;
    let bytes = read_limited(body, &headers, app.http.max_body_bytes).await?;
    let claim = match (&app.idempotency, Idempotency::id(&headers, &principal.name, &topic)?) {
        (Some(store), Some(id)) => match store.begin(id.clone(), &bytes).await {
            Begin::Fresh(claim) => Some(claim),
            Begin::Replay(answer) => return Ok(answer.replay()),
            Begin::Reused => return Err(idempotency::reused(&id)),
        },
        _ => None,
    };
    let context = app.pipeline.tracing.start(
        SpanKind::Producer,
        &trace::extract(headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes()))),
        || {
            let attributes = vec![
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.destination.name", topic.clone()),
            ];
            (format!("{topic} publish"), attributes)
        },
    );
    let carried: Vec<Header> = trace::inject(&context)
        .into_iter()
        .map(|(key, value)| Header { key: key.to_owned(), value: value.into_bytes() })
        .collect();
    let span = trace::log_span(trace::LogPath::Produce, &context).unwrap_or_else(tracing::Span::none);
    let response = match produce_events(&app, &principal, route, &bytes, &carried).instrument(span).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    };
    let span = context.span();
    span.set_attribute(KeyValue::new("http.response.status_code", i64::from(response.status().as_u16())));
    if response.status().is_server_error() {
        span.set_status(opentelemetry::trace::Status::error(response.status().to_string()));
    }
    Ok(match claim {
        Some(claim) => claim.finish(response).await,
        None => response,
    })
}

async fn produce_events(
    app: &AppState,
    principal: &Principal,
    route: &Arc<Route>,
    bytes: &[u8],
    context: &[Header],
) -> Result<Response, Problem> {
    let events = parse_events(bytes, app.http.max_events_per_request)?;
    let may_produce = |topic: &str| principal.allows(Permission::Produce(topic));
    let results = app.pipeline.produce(route, &events, context, &may_produce).await.map_err(batch_problem)?;
    Ok(respond(&results))
}

fn batch_problem(error: BatchError) -> Problem {
    match &error {
        BatchError::Schema { error: registry_error, .. } => {
            let slug = match registry_error {
                RegistryError::Unavailable(_) => "registry-unavailable",
                // The registry serves a schema this gateway cannot use (outside its bounds, or
                // of another format than the route's): only the operator can fix it.
                RegistryError::InvalidSchema(_) => "schema-unusable",
                _ => "schema-unavailable",
            };
            tracing::warn!(error = %error, "refusing a produce request: schema unavailable");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, slug, "Schema unavailable", error.to_string()).retry_after(5)
        }
        BatchError::TopicMissing(topic) => {
            Problem::new(StatusCode::NOT_FOUND, "kafka-topic-missing", "Topic missing in Kafka", error.to_string())
                .with("topic", topic.clone())
        }
        BatchError::Kafka(kafka) => {
            let event = EventError::from(kafka.clone());
            let problem = Problem::new(
                StatusCode::from_u16(event.kind.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                event.kind.slug(),
                "Kafka unavailable",
                error.to_string(),
            );
            if event.kind.is_retriable() { problem.retry_after(1) } else { problem }
        }
    }
}

fn respond(results: &[EventResult]) -> Response {
    let failed: Vec<(usize, &EventError)> = results.iter().filter_map(|r| r.failure().map(|e| (r.index, e))).collect();
    if !failed.is_empty() && failed.len() == results.len() {
        return all_refused(&failed).into_response();
    }
    let status = if !failed.is_empty() {
        StatusCode::MULTI_STATUS
    } else if results.iter().all(EventResult::is_enqueued) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    #[derive(Serialize)]
    struct Results<'a> {
        results: Vec<ResultJson<'a>>,
    }
    let body = serde_json::to_vec(&Results { results: results.iter().map(result_json).collect() }).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn all_refused(failed: &[(usize, &EventError)]) -> Problem {
    let retriable = failed.iter().find(|(_, e)| e.kind.is_retriable());
    let first = failed[0].1.kind;
    let (status, slug) = match retriable {
        Some((_, e)) => (StatusCode::SERVICE_UNAVAILABLE, e.kind.slug()),
        None if failed.iter().all(|(_, e)| e.kind.status() == first.status()) => {
            (StatusCode::from_u16(first.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY), first.slug())
        }
        None => (StatusCode::UNPROCESSABLE_ENTITY, "events-refused"),
    };
    let detail = if failed.len() == 1 {
        failed[0].1.message.clone()
    } else {
        format!("none of the {} events was stored; see errors", failed.len())
    };
    let errors: Vec<ErrorJson<'_>> = failed.iter().map(|(index, e)| error_json(Some(*index), e)).collect();
    let problem = Problem::new(status, slug, "Events refused", detail)
        .with("errors", serde_json::to_value(errors).unwrap_or_default());
    if retriable.is_some() { problem.retry_after(1) } else { problem }
}

/// One entry of `results` (or of a fanned-out event's `events`).
#[derive(Serialize, Default)]
struct ResultJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    /// Where the event went, when not to the route's own topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enqueued: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dropped: Option<PluginReason<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_lettered: Option<PluginReason<'a>>,
    /// The events a plugin fanned this one out into.
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<ResultJson<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_id: Option<u32>,
}

#[derive(Serialize)]
struct PluginReason<'a> {
    plugin: &'a str,
    reason: &'a str,
}

/// A per-event error, inside a result or in a problem's `errors`.
#[derive(Serialize)]
struct ErrorJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pointer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin: Option<&'a str>,
    message: &'a str,
}

fn result_json(result: &EventResult) -> ResultJson<'_> {
    let mut out = ResultJson {
        index: Some(result.index),
        topic: result.topic.as_deref(),
        schema_id: result.schema_id,
        ..ResultJson::default()
    };
    match &result.outcome {
        Outcome::Stored(delivered) => {
            out.partition = Some(delivered.partition);
            out.offset = Some(delivered.offset);
        }
        Outcome::Enqueued => out.enqueued = Some(true),
        Outcome::Failed(error) => out.error = Some(error_json(None, error)),
        Outcome::Dropped { plugin, reason } => out.dropped = Some(PluginReason { plugin, reason }),
        Outcome::DeadLettered { topic, delivered, plugin, reason } => {
            out.topic = Some(topic);
            out.partition = Some(delivered.partition);
            out.offset = Some(delivered.offset);
            out.dead_lettered = Some(PluginReason { plugin, reason });
        }
        Outcome::Many(parts) => out.events = Some(parts.iter().map(part_json).collect()),
    }
    out
}

fn part_json(part: &Part) -> ResultJson<'_> {
    let mut out = ResultJson { topic: Some(&part.topic), schema_id: part.schema_id, ..ResultJson::default() };
    match &part.outcome {
        PartOutcome::Stored(delivered) => {
            out.partition = Some(delivered.partition);
            out.offset = Some(delivered.offset);
        }
        PartOutcome::Enqueued => out.enqueued = Some(true),
        PartOutcome::Failed(error) => out.error = Some(error_json(None, error)),
    }
    out
}

fn error_json(index: Option<usize>, error: &EventError) -> ErrorJson<'_> {
    ErrorJson {
        index,
        kind: error.kind.slug(),
        pointer: error.pointer.as_deref(),
        plugin: error.plugin.as_deref(),
        message: &error.message,
    }
}
