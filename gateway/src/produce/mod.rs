//! The produce pipeline: events → plugins → schema → validate and encode → key → Kafka →
//! per-event result.
//!
//! It knows nothing about HTTP: the HTTP layer hands it the request's events and turns its
//! results into a response. A request-wide problem (schema unavailable, topic missing, overload)
//! is a [`BatchError`]; anything about one event is that event's [`EventError`], and the others
//! go on. Without plugins, events are encoded straight from the request body's bytes.

pub mod commit;
pub mod results;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

pub use self::results::{EventError, EventErrorKind, EventResult, Outcome, Part};
use crate::codec::json;
use crate::config::{Ack, Format};
use crate::kafka::dead_letter::DeadLetter;
use crate::kafka::producer::{ProduceError, Producer, kafka_headers};
use crate::kafka::topics::Topics;
use crate::kafka::transactions::{Transaction, Transactions};
use crate::plugin::bindings::{Event, Header};
use crate::plugin::chain::{self, Item, Stop};
use crate::plugin::store::Plugins;
use crate::registry::{RegistryError, Resolved, SchemaCache};
use crate::route::{KeyError, Route, Routes, extract_key};

/// A problem that refuses the whole request before any event is produced.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    #[error("the schema for subject '{subject}' is unavailable: {error}")]
    Schema { subject: String, error: RegistryError },
    #[error("topic '{0}' is configured but does not exist in Kafka")]
    TopicMissing(String),
    #[error(transparent)]
    Kafka(ProduceError),
}

/// The produce path shared by every route.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub producer: Producer,
    pub topics: Arc<Topics>,
    pub schemas: Arc<SchemaCache>,
    /// Every route, for events plugins reroute.
    pub routes: Arc<Routes>,
    pub plugins: Arc<Plugins>,
    /// Spans for produce requests.
    pub tracing: crate::telemetry::trace::Tracing,
    /// Transactional producers, for atomic batches and cluster-wide idempotency.
    pub transactions: Arc<Transactions>,
    /// Atomic requests' group commits.
    pub commits: commit::GroupCommit,
}

/// One record to produce, and which request event it answers for.
struct Work<'a> {
    origin: usize,
    route: Arc<Route>,
    value: Cow<'a, [u8]>,
    /// Set by a plugin; otherwise taken from the value with the route's key pointer.
    key: Option<Vec<u8>>,
    headers: Vec<Header>,
    /// A plugin produced or changed the value, so it must be checked to be JSON.
    from_plugin: bool,
}

/// Schemas of the topics plugins sent a batch's events to, each looked up once per batch.
type OtherSchemas = HashMap<String, Result<Option<Resolved>, EventError>>;

/// The schema a record is encoded with.
enum Schema<'s> {
    /// The batch route's, resolved before its events (`None`: schemaless).
    Batch(Option<&'s Resolved>),
    /// That of another route, which a plugin chose: found in, or added to, the batch's others.
    Other(&'s mut OtherSchemas),
}

/// A batch validated and encoded, not yet written.
pub struct Prepared {
    results: results::Collector,
    records: Vec<Record>,
    /// Records written in a transaction, not yet committed.
    written: Vec<Written>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("records", &self.records.len()).finish_non_exhaustive()
    }
}

impl Prepared {
    /// Records waiting to be written.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// The events that cannot be written, with why, in request order.
    pub fn refusals(&self) -> Vec<(usize, EventError)> {
        self.results.failures()
    }

    /// The batch's results, once its transaction committed (or its records were sent).
    pub fn finish(mut self) -> Vec<EventResult> {
        for Written { origin, topic, schema_id, dead_letter, delivered } in std::mem::take(&mut self.written) {
            match dead_letter {
                Some((plugin, reason)) => {
                    self.results.stop(origin, Outcome::DeadLettered { topic, delivered, plugin, reason })
                }
                None => self.results.part(origin, &topic, schema_id, results::PartOutcome::Stored(delivered)),
            }
        }
        self.results.finish()
    }
}

/// Writes the records of `batches` in `tx` and waits for each acknowledgement. Only when all
/// are acknowledged are the batches marked written (their records then gone); on an error they
/// are left as they were, to be written again elsewhere.
pub(crate) async fn write_in(tx: &Transaction, topics: &Topics, batches: &mut [Prepared]) -> Result<(), ProduceError> {
    let mut pending = Vec::new();
    for (batch, prepared) in batches.iter().enumerate() {
        for (index, record) in prepared.records.iter().enumerate() {
            let headers = record.headers.clone();
            let delivery = tx.send(&record.topic, None, record.key.as_deref(), Some(&record.payload), headers)?;
            pending.push((batch, index, delivery));
        }
    }
    let mut written = Vec::with_capacity(pending.len());
    let mut failed: Option<ProduceError> = None;
    for (batch, index, delivery) in pending {
        match tx.delivered(delivery).await {
            Ok(delivered) => written.push((batch, index, delivered)),
            Err(error) => {
                if error == ProduceError::UnknownTopic {
                    topics.mark_missing(&batches[batch].records[index].topic);
                }
                // One refused record makes librdkafka purge the transaction's others: report
                // the cause, not the purges it led to.
                if failed.as_ref().is_none_or(|f| f.is_retriable() && !error.is_retriable()) {
                    failed = Some(error);
                }
            }
        }
    }
    if let Some(error) = failed {
        return Err(error);
    }
    for (batch, index, delivered) in written {
        let record = &batches[batch].records[index];
        let (origin, topic, schema_id, dead_letter) =
            (record.origin, record.topic.clone(), record.schema_id, record.dead_letter.clone());
        batches[batch].written.push(Written { origin, topic, schema_id, dead_letter, delivered });
    }
    for prepared in batches.iter_mut() {
        prepared.records.clear();
    }
    Ok(())
}

/// A record a transaction wrote.
struct Written {
    origin: usize,
    topic: String,
    schema_id: Option<u32>,
    dead_letter: Option<(String, String)>,
    delivered: crate::kafka::producer::Delivered,
}

/// A record ready for Kafka.
struct Record {
    origin: usize,
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Option<rdkafka::message::OwnedHeaders>,
    schema_id: Option<u32>,
    dead_letter: Option<(String, String)>,
}

impl Pipeline {
    /// Runs a batch of events through one route.
    ///
    /// `events` are JSON objects as received (see `http::body`); each is parsed only when a
    /// schema or a key needs the parsed form. `context` (trace context) goes into every
    /// record's headers, where plugins see it too. `may_produce` says whether the caller may
    /// write to a topic: events that plugins reroute or fan out elsewhere are checked with it.
    pub async fn produce(
        &self,
        route: &Arc<Route>,
        events: &[&RawValue],
        context: &[Header],
        may_produce: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<EventResult>, BatchError> {
        let Prepared { mut results, records, .. } = self.prepare(route, events, context, may_produce).await?;
        if !records.is_empty() {
            self.send(route.ack, records, &mut results)?.await;
        }
        Ok(results.finish())
    }

    /// Runs a batch through its route's plugins, validates and encodes it: everything short of
    /// writing. Nothing is sent to Kafka.
    pub async fn prepare(
        &self,
        route: &Arc<Route>,
        events: &[&RawValue],
        context: &[Header],
        may_produce: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Prepared, BatchError> {
        match self.topics.ensure(&route.topic).await {
            Ok(()) => {}
            Err(ProduceError::UnknownTopic) => return Err(BatchError::TopicMissing(route.topic.clone())),
            Err(other) => return Err(BatchError::Kafka(other)),
        }
        let primary = self.schema_for(route).await?;
        let mut others = OtherSchemas::new();

        let (work, stopped) = if route.plugins.is_empty() {
            let work = events
                .iter()
                .enumerate()
                .map(|(origin, raw)| Work {
                    origin,
                    route: route.clone(),
                    value: Cow::Borrowed(raw.get().as_bytes()),
                    key: None,
                    headers: context.to_vec(),
                    from_plugin: false,
                })
                .collect::<Vec<_>>();
            (work, Vec::new())
        } else {
            self.run_plugins(route, events, context).await
        };

        let mut results = results::Collector::new(route, events.len());
        let mut records = Vec::with_capacity(work.len());
        for item in work {
            if item.route.topic != route.topic && !may_produce(&item.route.topic) {
                let error = EventError::new(
                    EventErrorKind::ForbiddenTarget,
                    format!("a plugin sent the event to '{}', which the caller may not produce to", item.route.topic),
                );
                results.part(item.origin, &item.route.topic, None, results::PartOutcome::Failed(error));
                continue;
            }
            let schema = if Arc::ptr_eq(&item.route, route) {
                Schema::Batch(primary.as_ref())
            } else {
                Schema::Other(&mut others)
            };
            match self.encode(item, schema).await {
                Ok(record) => records.push(record),
                Err((origin, topic, error)) => results.part(origin, &topic, None, results::PartOutcome::Failed(error)),
            }
        }
        for (origin, stop) in stopped {
            match stop {
                Stop::Dropped { plugin, reason } => results.stop(origin, Outcome::Dropped { plugin, reason }),
                Stop::Rejected { plugin, reason } => {
                    results.fail(origin, EventError::plugin(EventErrorKind::PluginRejected, &plugin, reason))
                }
                Stop::Failed { plugin, error } => {
                    let kind = if error.is_unavailable() {
                        EventErrorKind::PluginUnavailable
                    } else {
                        EventErrorKind::PluginFailed
                    };
                    results.fail(origin, EventError::plugin(kind, &plugin, error.to_string()));
                }
                Stop::DeadLetter { plugin, reason } => {
                    match dead_letter(route, origin, events[origin], &plugin, &reason, context) {
                        Ok(record) => records.push(record),
                        Err(error) => results.fail(origin, error),
                    }
                }
            }
        }
        Ok(Prepared { results, records, written: Vec::new() })
    }

    /// Writes a prepared batch outside any transaction and waits for every record's
    /// acknowledgement (`ack = "wait"` whatever the route says).
    pub async fn write(&self, prepared: Prepared) -> Result<Vec<EventResult>, BatchError> {
        let Prepared { mut results, records, .. } = prepared;
        if !records.is_empty() {
            self.send(Ack::Wait, records, &mut results)?.await;
        }
        Ok(results.finish())
    }

    /// Writes prepared batches (of one route or several) in the transaction `tx`, and waits for
    /// the broker to acknowledge every record. Their results say "stored" once the caller has
    /// committed `tx` and calls [`Prepared::finish`]; on an error the caller aborts `tx`, and
    /// nothing of any batch is written.
    pub async fn write_in(&self, tx: &Transaction, batches: &mut [Prepared]) -> Result<(), ProduceError> {
        write_in(tx, &self.topics, batches).await
    }

    /// Writes prepared batches atomically in a transaction shared with other requests' (group
    /// commit: requests that arrive while a transaction runs go together in the next one). Hands
    /// the batches back, written (their results say where) or not (with why).
    pub async fn write_atomically(&self, batches: Vec<Prepared>) -> (Vec<Prepared>, Result<(), ProduceError>) {
        self.commits.write(batches).await
    }

    /// The schema a route encodes with (`None` for schemaless routes).
    async fn schema_for(&self, route: &Route) -> Result<Option<Resolved>, BatchError> {
        if route.format == Format::Json {
            return Ok(None);
        }
        let resolved = self
            .schemas
            .resolve(&route.subject, route.version)
            .await
            .map_err(|error| BatchError::Schema { subject: route.subject.clone(), error })?;
        check_format(route, &resolved)?;
        Ok(Some(resolved))
    }

    async fn run_plugins<'a>(
        &self,
        route: &Arc<Route>,
        events: &[&'a RawValue],
        context: &[Header],
    ) -> (Vec<Work<'a>>, Vec<(usize, Stop)>) {
        let now = crate::telemetry::now_ms();
        let items = events
            .iter()
            .enumerate()
            .map(|(origin, raw)| Item {
                origin,
                key_set: false,
                event: Event {
                    topic: route.topic.clone(),
                    key: None,
                    value: raw.get().as_bytes().to_vec(),
                    headers: context.to_vec(),
                    timestamp_ms: now,
                },
            })
            .collect();
        let plugins = chain::resolve(&self.plugins, &route.plugins);
        let outcome = chain::run_produce(&plugins, items, route.on_plugin_error).await;
        let work = outcome
            .items
            .into_iter()
            .map(|item| {
                let target = if item.event.topic == route.topic {
                    Some(route.clone())
                } else {
                    self.routes.get(&item.event.topic).cloned()
                };
                Work {
                    origin: item.origin,
                    // An unknown target keeps the topic in an unrouted stand-in; encode refuses it.
                    route: target.unwrap_or_else(|| Arc::new(Route::unrouted(&item.event.topic))),
                    value: Cow::Owned(item.event.value),
                    key: if item.key_set { item.event.key } else { None },
                    headers: item.event.headers,
                    from_plugin: true,
                }
            })
            .collect();
        (work, outcome.stopped)
    }

    /// Validates and encodes one record for its route.
    async fn encode(&self, work: Work<'_>, schema: Schema<'_>) -> Result<Record, (usize, String, EventError)> {
        let (origin, route) = (work.origin, work.route.clone());
        let fail = |error: EventError| (origin, route.topic.clone(), error);
        if route.unrouted {
            return Err(fail(EventError::new(
                EventErrorKind::UnknownTarget,
                format!("a plugin sent the event to '{}', which no route of this gateway serves", route.topic),
            )));
        }
        let schema = match schema {
            Schema::Batch(primary) => primary,
            Schema::Other(schemas) => {
                if !schemas.contains_key(&route.topic) {
                    let schema = match self.topics.ensure(&route.topic).await {
                        Err(error) => Err(EventError::from(error)),
                        Ok(()) => self.schema_for(&route).await.map_err(|error| match error {
                            BatchError::Kafka(kafka) => EventError::from(kafka),
                            other => EventError::new(EventErrorKind::SchemaUnavailable, other.to_string()),
                        }),
                    };
                    schemas.insert(route.topic.clone(), schema);
                }
                match &schemas[&route.topic] {
                    Ok(schema) => schema.as_ref(),
                    Err(error) => return Err(fail(error.clone())),
                }
            }
        };
        let text = std::str::from_utf8(&work.value).map_err(|_| {
            fail(EventError::new(EventErrorKind::InvalidPluginOutput, "a plugin produced a value that is not UTF-8"))
        })?;
        let (key, payload) = encode_value(&route, schema, text, work.key, work.from_plugin).map_err(fail)?;
        let headers = kafka_headers(&work.headers);
        Ok(Record {
            origin,
            topic: route.topic.clone(),
            key,
            payload,
            headers,
            schema_id: schema.map(|s| s.id),
            dead_letter: None,
        })
    }

    /// Queues every record, then (for `wait` routes) waits for the broker's answers.
    fn send<'a>(
        &'a self,
        ack: Ack,
        records: Vec<Record>,
        results: &'a mut results::Collector,
    ) -> Result<impl Future<Output = ()> + 'a, BatchError> {
        let permit = self.producer.reserve(records.len()).map_err(BatchError::Kafka)?;
        let mut pending = Vec::with_capacity(records.len());
        for record in records {
            match self.producer.send(&record.topic, record.key.as_deref(), &record.payload, record.headers) {
                Ok(delivery) => {
                    pending.push((record.origin, record.topic, record.schema_id, record.dead_letter, delivery))
                }
                Err(error) => results.part(
                    record.origin,
                    &record.topic,
                    record.schema_id,
                    results::PartOutcome::Failed(error.into()),
                ),
            }
        }
        Ok(async move {
            match ack {
                Ack::Wait => {
                    // Every record is already queued, so awaiting them in turn takes no longer than
                    // awaiting them together, and costs a fraction of `join_all`'s bookkeeping
                    // (most answers are in by the time the first one is).
                    let mut answers = Vec::with_capacity(pending.len());
                    for (origin, topic, schema_id, dead_letter, delivery) in pending {
                        answers.push((origin, topic, schema_id, dead_letter, self.producer.delivered(delivery).await));
                    }
                    drop(permit);
                    for (origin, topic, schema_id, dead_letter, answer) in answers {
                        match (answer, dead_letter) {
                            (Ok(delivered), Some((plugin, reason))) => {
                                results.stop(origin, Outcome::DeadLettered { topic, delivered, plugin, reason });
                            }
                            (Ok(delivered), None) => {
                                results.part(origin, &topic, schema_id, results::PartOutcome::Stored(delivered))
                            }
                            (Err(error), _) => {
                                if error == ProduceError::UnknownTopic {
                                    self.topics.mark_missing(&topic);
                                }
                                results.part(origin, &topic, schema_id, results::PartOutcome::Failed(error.into()));
                            }
                        }
                    }
                }
                Ack::FireAndForget => {
                    for (origin, topic, schema_id, _, _) in &pending {
                        results.part(*origin, topic, *schema_id, results::PartOutcome::Enqueued);
                    }
                    let producer = self.producer.clone();
                    // In the request's log span: a lost event's log line carries its trace id.
                    let waiting = async move {
                        let _permit = permit;
                        for (origin, topic, _, _, delivery) in pending {
                            if let Err(error) = producer.delivered(delivery).await {
                                tracing::error!(topic, index = origin, error = %error, "fire-and-forget event was not stored");
                            }
                        }
                    };
                    tokio::spawn(tracing::Instrument::in_current_span(waiting));
                }
            }
        })
    }

    /// Waits for queued events at shutdown.
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::error!(error = %error, "events still queued at shutdown were not delivered");
        }
    }
}

/// The dead letter record for a request event: the original JSON, with headers saying why.
fn dead_letter(
    route: &Route,
    origin: usize,
    original: &RawValue,
    plugin: &str,
    reason: &str,
    context: &[Header],
) -> Result<Record, EventError> {
    let Some(topic) = &route.dead_letter_topic else {
        return Err(EventError::plugin(
            EventErrorKind::NoDeadLetterTopic,
            plugin,
            format!("the plugin dead-lettered the event ({reason}), but the route has no dead_letter_topic"),
        ));
    };
    let key = route
        .key
        .as_ref()
        .and_then(|pointer| json::parse(original.get()).ok().and_then(|event| extract_key(&event, pointer).ok()));
    let why = DeadLetter { reason, original_topic: &route.topic, plugin: Some(plugin), ..DeadLetter::default() };
    let headers = why.headers(context.iter().map(|h| (h.key.as_str(), h.value.as_slice())));
    Ok(Record {
        origin,
        topic: topic.clone(),
        key,
        payload: original.get().as_bytes().to_vec(),
        headers: Some(headers),
        schema_id: None,
        dead_letter: Some((plugin.to_owned(), reason.to_owned())),
    })
}

/// The registry's schema type must be the route's format.
fn check_format(route: &Route, resolved: &Resolved) -> Result<(), BatchError> {
    let expected = match route.format {
        Format::Avro => crate::codec::SchemaType::Avro,
        Format::JsonSchema => crate::codec::SchemaType::Json,
        Format::Protobuf => crate::codec::SchemaType::Protobuf,
        Format::Json => return Ok(()),
    };
    let actual = resolved.codec.schema_type();
    if let crate::codec::Codec::Protobuf(codec) = &*resolved.codec
        && let Err(why) = codec.message(route.message.as_deref())
    {
        return Err(BatchError::Schema {
            subject: route.subject.clone(),
            error: RegistryError::InvalidSchema(format!("schema {}: {why}", resolved.id)),
        });
    }
    if actual == expected {
        Ok(())
    } else {
        Err(BatchError::Schema {
            subject: route.subject.clone(),
            error: RegistryError::InvalidSchema(format!(
                "schema {} is {actual}, but the route's format needs {expected}",
                resolved.id
            )),
        })
    }
}

/// Validates and encodes one event's JSON text; returns its key and record value.
fn encode_value(
    route: &Route,
    schema: Option<&Resolved>,
    raw: &str,
    key: Option<Vec<u8>>,
    from_plugin: bool,
) -> Result<(Option<Vec<u8>>, Vec<u8>), EventError> {
    let needs_key = key.is_none() && route.key.is_some();
    let parsed = if schema.is_some() || needs_key || from_plugin {
        // Request bodies were checked to be JSON; plugin output was not.
        Some(json::parse(raw).map_err(|error| {
            let kind = if from_plugin { EventErrorKind::InvalidPluginOutput } else { EventErrorKind::SchemaViolation };
            EventError { kind, pointer: Some(String::new()), message: format!("not JSON: {error}"), plugin: None }
        })?)
    } else {
        None
    };
    // The schema first: a missing key field is usually also a missing required field, and the
    // schema's message says more.
    let payload = match (schema, &parsed) {
        (Some(resolved), Some(event)) => resolved
            .codec
            .encode(resolved.id, event, raw, route.reject_unknown, route.message.as_deref())
            .map_err(|error| EventError {
                kind: EventErrorKind::SchemaViolation,
                pointer: Some(error.pointer),
                message: error.message,
                plugin: None,
            })?,
        _ => raw.as_bytes().to_vec(),
    };
    let key = match (key, &route.key, &parsed) {
        (Some(key), _, _) => Some(key),
        (None, Some(pointer), Some(event)) => Some(extract_key(event, pointer).map_err(|error| EventError {
            kind: match error {
                KeyError::Missing => EventErrorKind::MissingKey,
                KeyError::WrongType(_) => EventErrorKind::InvalidKey,
            },
            pointer: Some(pointer.clone()),
            message: error.to_string(),
            plugin: None,
        })?),
        _ => None,
    };
    Ok((key, payload))
}
