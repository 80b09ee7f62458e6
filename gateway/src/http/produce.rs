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
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::Keys;
use super::body::{self, Form, check_content_type, parse_incoming, read_limited};
use super::idempotency::{self, Begin, Idempotency};
use super::problem::Problem;
use crate::auth::{Permission, Principal};
use crate::config::Format;
use crate::kafka::transactions::Transaction;
use crate::plugin::bindings::Header;
use crate::produce::{
    BatchError, Chosen, EventError, EventResult, Incoming, Outcome, Part, Prepared, results::PartOutcome,
};
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
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    // Before anything about the topic is revealed, even whether it exists.
    principal.require(Permission::Produce(&topic))?;
    let route = route(&app, &topic)?;
    let options = Options::parse(query.as_deref())?;
    let form = if route.format == Format::Bytes { body::bytes_form(&headers) } else { check_content_type(&headers)? };
    let bytes = read_limited(body, &headers, app.http.max_body_bytes).await?;
    // Binary-mode CloudEvents carry their attributes in the request's headers, a bytes record
    // its content type.
    let request_headers =
        if matches!(form, Form::CloudEventBinary | Form::Bytes) { headers.clone() } else { HeaderMap::new() };
    let request = Request { principal, topic: topic.clone(), headers, bytes, options };
    serve(app, request, move |bytes, max| {
        let events: Vec<Incoming<'_>> =
            parse_incoming(bytes, max, form, false, &request_headers)?.into_iter().map(|(_, e)| e).collect();
        Ok(vec![Group { route: route.clone(), origins: (0..events.len()).collect(), events, named: false }])
    })
    .await
}

/// `POST /v1/events`: events for several topics, each naming its own.
pub async fn produce_many(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let options = Options::parse(query.as_deref())?;
    let form = check_content_type(&headers)?;
    let bytes = read_limited(body, &headers, app.http.max_body_bytes).await?;
    // The body is read before the topics it names are known; each is checked before any is used.
    let routes = app.clone();
    let checker = principal.clone();
    let request = Request { principal, topic: MANY_TOPICS.to_owned(), headers, bytes, options };
    serve(app, request, move |bytes, max| {
        let entries = parse_incoming(bytes, max, form, true, &HeaderMap::new())?;
        let mut groups: Vec<Group<'_>> = Vec::new();
        for (index, (topic, event)) in entries.into_iter().enumerate() {
            let topic = topic.unwrap_or_default();
            checker.require(Permission::Produce(&topic)).map_err(|e| Problem::from(e).with("index", index))?;
            let route = route(&routes, &topic).map_err(|p| p.with("index", index))?;
            match groups.iter_mut().find(|g| Arc::ptr_eq(&g.route, &route)) {
                Some(group) => {
                    group.origins.push(index);
                    group.events.push(event);
                }
                None => groups.push(Group { route, origins: vec![index], events: vec![event], named: true }),
            }
        }
        Ok(groups)
    })
    .await
}

/// The topic an `Idempotency-Key` of `POST /v1/events` is scoped to (no route has this name).
const MANY_TOPICS: &str = "*";

pub(super) fn route(app: &AppState, topic: &str) -> Result<Arc<Route>, Problem> {
    app.routes.get(topic).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-topic",
            "Unknown topic",
            format!("no route is configured for topic '{topic}'"),
        )
        .with("topic", topic.to_owned())
    })
}

/// Query parameters of the produce endpoints.
#[derive(Debug, Clone, Copy, Default)]
struct Options {
    /// `?atomic=true`: all events are written in one transaction, or none is.
    atomic: bool,
}

impl Options {
    fn parse(query: Option<&str>) -> Result<Self, Problem> {
        let invalid = |detail: String| Problem::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query", detail);
        let mut options = Options::default();
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, "true"));
            match name {
                "atomic" => {
                    options.atomic = match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => return Err(invalid(format!("atomic must be true or false, not '{other}'"))),
                    }
                }
                other => return Err(invalid(format!("unknown query parameter '{other}' (expected atomic)"))),
            }
        }
        Ok(options)
    }
}

/// A request to produce, read and checked up to its events.
struct Request {
    principal: Arc<Principal>,
    /// The topic in the URL (what an `Idempotency-Key` is scoped to).
    topic: String,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
    options: Options,
}

/// The events of one route in a request, and where each was in the request.
struct Group<'a> {
    route: Arc<Route>,
    origins: Vec<usize>,
    events: Vec<Incoming<'a>>,
    /// The events named their topic (`POST /v1/events`): so do their results.
    named: bool,
}

/// Splits a body into groups of events by route; a problem refuses the request.
type Split = dyn for<'b> Fn(&'b [u8], usize) -> Result<Vec<Group<'b>>, Problem> + Send + Sync;

/// The common path of both produce endpoints: `Idempotency-Key`, tracing, then the events.
async fn serve(
    app: Arc<AppState>,
    request: Request,
    split: impl for<'b> Fn(&'b [u8], usize) -> Result<Vec<Group<'b>>, Problem> + Send + Sync + 'static,
) -> Result<Response, Problem> {
    let Request { principal, topic, headers, bytes, options } = request;
    let id = match app.idempotency.as_ref() {
        Some(_) => Idempotency::id(&headers, &principal.name, &topic)?,
        None => None,
    };
    let Traced { context, carried, span } = Traced::start(&app, &headers, &topic);
    let split: &Split = &split;
    let run = async {
        let groups = split(&bytes, app.http.max_events_per_request)?;
        let may_produce = |topic: &str| principal.allows(Permission::Produce(topic));
        match (&app.idempotency, id) {
            (Some(Keys::Cluster(claims)), Some(id)) => {
                let prepared = prepare(&app, &groups, &carried, &may_produce).await?;
                Ok(claims.run(id, &bytes, async |tx| write(&app, tx, &groups, prepared, options).await).await)
            }
            (Some(Keys::Replica(store)), Some(id)) => match store.begin(id.clone(), &bytes).await {
                Begin::Fresh(claim) => {
                    let response = produce_groups(&app, &groups, &carried, &may_produce, options).await;
                    Ok(claim.finish(response.unwrap_or_else(IntoResponse::into_response)).await)
                }
                Begin::Replay(answer) => Ok(answer.replay()),
                Begin::Reused => Err(idempotency::reused(&id)),
            },
            _ => produce_groups(&app, &groups, &carried, &may_produce, options).await,
        }
    };
    let response = run.instrument(span).await.unwrap_or_else(IntoResponse::into_response);
    Traced::end(&context, response.status());
    Ok(response)
}

/// A produce request's trace: its span, the headers that carry it into every record, and the
/// log span its lines go in.
pub(super) struct Traced {
    pub context: opentelemetry::Context,
    pub carried: Vec<Header>,
    pub span: tracing::Span,
}

impl Traced {
    pub fn start(app: &AppState, headers: &HeaderMap, topic: &str) -> Self {
        let context = app.pipeline.tracing.start(
            SpanKind::Producer,
            &trace::extract(headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes()))),
            || {
                let attributes = vec![
                    KeyValue::new("messaging.system", "kafka"),
                    KeyValue::new("messaging.destination.name", topic.to_owned()),
                ];
                (format!("{topic} publish"), attributes)
            },
        );
        let carried: Vec<Header> = trace::inject(&context)
            .into_iter()
            .map(|(key, value)| Header { key: key.to_owned(), value: value.into_bytes() })
            .collect();
        let span = trace::log_span(trace::LogPath::Produce, &context).unwrap_or_else(tracing::Span::none);
        Self { context, carried, span }
    }

    /// Records the answer's status on the span.
    pub fn end(context: &opentelemetry::Context, status: StatusCode) {
        let span = context.span();
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
        if status.is_server_error() {
            span.set_status(opentelemetry::trace::Status::error(status.to_string()));
        }
    }
}

/// Produces without an `Idempotency-Key` (or with one kept by this replica).
async fn produce_groups(
    app: &AppState,
    groups: &[Group<'_>],
    context: &[Header],
    may_produce: &(dyn Fn(&str) -> bool + Sync),
    options: Options,
) -> Result<Response, Problem> {
    if options.atomic {
        let prepared = prepare(app, groups, context, may_produce).await?;
        if let Some(problem) = atomic_refusals(groups, &prepared) {
            return Err(problem);
        }
        let (prepared, written) = app.pipeline.write_atomically(prepared).await;
        written.map_err(|e| batch_problem(BatchError::Kafka(e)))?;
        let results = prepared.into_iter().map(Prepared::finish).collect();
        return Ok(respond(&merge(groups, results)));
    }
    let mut all = Vec::new();
    for group in groups {
        let results = app.pipeline.produce(&group.route, &group.events, context, may_produce, &Chosen::default()).await;
        all.push(results.map_err(batch_problem)?);
    }
    Ok(respond(&merge(groups, all)))
}

/// Runs every group through its plugins, validation and encoding.
async fn prepare(
    app: &AppState,
    groups: &[Group<'_>],
    context: &[Header],
    may_produce: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<Prepared>, Problem> {
    let mut prepared = Vec::with_capacity(groups.len());
    for group in groups {
        prepared.push(
            app.pipeline
                .prepare(&group.route, &group.events, context, may_produce, &Chosen::default())
                .await
                .map_err(batch_problem)?,
        );
    }
    Ok(prepared)
}

/// Writes prepared groups in `tx` and answers as the request will be answered once `tx`
/// commits. An atomic request with a refused event writes nothing and answers why; a 5xx answer
/// means the transaction must be aborted.
async fn write(
    app: &AppState,
    tx: &Transaction,
    groups: &[Group<'_>],
    mut prepared: Vec<Prepared>,
    options: Options,
) -> Response {
    if options.atomic
        && let Some(problem) = atomic_refusals(groups, &prepared)
    {
        return problem.into_response();
    }
    if let Err(error) = app.pipeline.write_in(tx, &mut prepared).await {
        return batch_problem(BatchError::Kafka(error)).into_response();
    }
    let results = prepared.into_iter().map(Prepared::finish).collect();
    respond(&merge(groups, results))
}

/// An atomic request with refused events: the problem that answers it (nothing is written).
fn atomic_refusals(groups: &[Group<'_>], prepared: &[Prepared]) -> Option<Problem> {
    let refused: Vec<(usize, EventError)> = groups
        .iter()
        .zip(prepared)
        .flat_map(|(group, p)| p.refusals().into_iter().map(|(i, e)| (group.origins[i], e)))
        .collect();
    if refused.is_empty() {
        return None;
    }
    let total = groups.iter().map(|g| g.events.len()).sum();
    Some(atomic_refused(refused, total))
}

/// The groups' results as one list in request order; events of `POST /v1/events` name their topic.
fn merge(groups: &[Group<'_>], results: Vec<Vec<EventResult>>) -> Vec<EventResult> {
    // Only `POST /v1/events` splits a request; its results always name their topic.
    let multi = groups.iter().any(|g| g.named);
    let mut merged: Vec<EventResult> = Vec::with_capacity(groups.iter().map(|g| g.origins.len()).sum());
    for (group, results) in groups.iter().zip(results) {
        for mut result in results {
            result.index = group.origins[result.index];
            if multi && result.topic.is_none() {
                result.topic = Some(group.route.topic.clone());
            }
            merged.push(result);
        }
    }
    merged.sort_by_key(|r| r.index);
    merged
}

pub(super) fn batch_problem(error: BatchError) -> Problem {
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

/// An atomic request with refused events: nothing was written.
fn atomic_refused(refused: Vec<(usize, EventError)>, total: usize) -> Problem {
    let failed: Vec<(usize, &EventError)> = refused.iter().map(|(i, e)| (*i, e)).collect();
    let problem = all_refused(&failed);
    let detail = format!(
        "the request is atomic and {} of its {total} events {} refused, so none was written; see errors",
        failed.len(),
        if failed.len() == 1 { "was" } else { "were" }
    );
    Problem { detail, ..problem }.with("atomic", true)
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
    /// The `event-id` header of the record written.
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
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
        event_id: result.event_id.as_deref(),
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
    let mut out = ResultJson {
        topic: Some(&part.topic),
        schema_id: part.schema_id,
        event_id: part.event_id.as_deref(),
        ..ResultJson::default()
    };
    match &part.outcome {
        PartOutcome::Stored(delivered) => {
            out.partition = Some(delivered.partition);
            out.offset = Some(delivered.offset);
        }
        PartOutcome::Enqueued => out.enqueued = Some(true),
        PartOutcome::Failed(error) => {
            out.event_id = None;
            out.error = Some(error_json(None, error));
        }
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
