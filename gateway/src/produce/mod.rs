//! The produce pipeline: events → plugins → schema → validate and encode → key → Kafka →
//! per-event result.
//!
//! It knows nothing about HTTP: the HTTP layer hands it the request's events and turns its
//! results into a response. A request-wide problem (schema unavailable, topic missing, overload)
//! is a [`BatchError`]; anything about one event is that event's [`EventError`], and the others
//! go on. Without plugins, events are encoded straight from the request body's bytes.

pub mod commit;
pub mod input;
pub mod results;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

pub use self::input::{EVENT_ID, Incoming, Key, new_event_id};
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
    /// Given by the request or set by a plugin; otherwise taken from the value with the route's
    /// key pointer.
    key: Option<Vec<u8>>,
    headers: Vec<Header>,
    /// The partition the request named (kept only while the event stays on its route's topic).
    partition: Option<i32>,
    /// A plugin produced or changed the value, so it must be checked to be JSON.
    from_plugin: bool,
    /// The timestamp the request gave.
    timestamp_ms: Option<i64>,
}

/// Schemas a request chose for its records (the Confluent REST API's `value_schema_id` and the
/// like), used instead of its route's.
#[derive(Debug, Clone, Default)]
pub struct Chosen {
    pub value: Option<Resolved>,
    pub key: Option<Resolved>,
}

/// The schemas a route's records are encoded with.
struct Schemas {
    /// The value's (`None`: schemaless).
    value: Option<Resolved>,
    /// The key's (`None`: keys are text).
    key: Option<Resolved>,
}

/// Schemas of the topics plugins sent a batch's events to, each looked up once per batch.
type OtherSchemas = HashMap<String, Result<Schemas, EventError>>;

/// The schema a record is encoded with.
enum Schema<'s> {
    /// The batch route's, resolved before its events.
    Batch(&'s Schemas),
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
        for Written { origin, topic, schema_id, event_id, dead_letter, delivered } in std::mem::take(&mut self.written)
        {
            match dead_letter {
                Some((plugin, reason)) => {
                    self.results.stop(origin, Outcome::DeadLettered { topic, delivered, plugin, reason })
                }
                None => self.results.part(
                    origin,
                    &topic,
                    schema_id,
                    Some(event_id),
                    results::PartOutcome::Stored(delivered),
                ),
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
            let delivery = tx.send(
                &record.topic,
                record.partition,
                record.key.as_deref(),
                record.payload.as_deref(),
                headers,
                record.timestamp_ms,
            )?;
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
        let delivered = delivered.of(record.key.as_deref(), record.payload.as_deref());
        let written = Written {
            origin: record.origin,
            topic: record.topic.clone(),
            schema_id: record.schema_id,
            event_id: record.event_id.clone(),
            dead_letter: record.dead_letter.clone(),
            delivered,
        };
        batches[batch].written.push(written);
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
    event_id: String,
    dead_letter: Option<(String, String)>,
    delivered: crate::kafka::producer::Delivered,
}

/// A record ready for Kafka.
struct Record {
    origin: usize,
    topic: String,
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    /// `None`: a tombstone.
    payload: Option<Vec<u8>>,
    headers: Option<rdkafka::message::OwnedHeaders>,
    event_id: String,
    schema_id: Option<u32>,
    dead_letter: Option<(String, String)>,
    /// The record's timestamp, when the request gave one (else the time it is sent).
    timestamp_ms: Option<i64>,
}

impl Pipeline {
    /// Runs a batch of events through one route.
    ///
    /// `events` are JSON objects as received (see `http::body`), with what the request says of
    /// their records (the envelope form); each is parsed only when a schema or a key needs the
    /// parsed form. `context` (trace context) goes into every record's headers, where plugins
    /// see it too. `may_produce` says whether the caller may write to a topic: events that
    /// plugins reroute or fan out elsewhere are checked with it.
    pub async fn produce(
        &self,
        route: &Arc<Route>,
        events: &[Incoming<'_>],
        context: &[Header],
        may_produce: &(dyn Fn(&str) -> bool + Sync),
        chosen: &Chosen,
    ) -> Result<Vec<EventResult>, BatchError> {
        let Prepared { mut results, records, .. } = self.prepare(route, events, context, may_produce, chosen).await?;
        if !records.is_empty() {
            self.send(route.ack, records, &mut results)?.await;
        }
        Ok(results.finish())
    }

    /// Runs a batch through its route's plugins, validates and encodes it: everything short of
    /// writing. Nothing is sent to Kafka. `chosen` schemas (of the request) replace the route's.
    pub async fn prepare(
        &self,
        route: &Arc<Route>,
        events: &[Incoming<'_>],
        context: &[Header],
        may_produce: &(dyn Fn(&str) -> bool + Sync),
        chosen: &Chosen,
    ) -> Result<Prepared, BatchError> {
        match self.topics.ensure(&route.topic).await {
            Ok(()) => {}
            Err(ProduceError::UnknownTopic) => return Err(BatchError::TopicMissing(route.topic.clone())),
            Err(other) => return Err(BatchError::Kafka(other)),
        }
        let primary = self.schemas_for(route, chosen).await?;
        let mut others = OtherSchemas::new();
        let mut results = results::Collector::new(route, events.len());
        let mut records = Vec::new();

        // What the request says of each event: its id, key, headers and partition.
        let mut ready = Vec::with_capacity(events.len());
        for (origin, incoming) in events.iter().enumerate() {
            let id = event_id(route, incoming);
            let key = match &incoming.key {
                None => Ok(None),
                Some(Key::Json(raw)) => encode_key(primary.key.as_ref(), raw).map(Some),
                Some(Key::Bytes(bytes)) => Ok(Some(bytes.clone())),
            };
            let key = match key {
                Ok(key) => key,
                Err(error) => {
                    results.fail(origin, error);
                    continue;
                }
            };
            let mut headers = Vec::with_capacity(context.len() + incoming.headers.len() + 1);
            headers.extend_from_slice(context);
            headers.extend(incoming.headers.iter().filter(|h| h.key != EVENT_ID).cloned());
            input::set_event_id(&mut headers, &id);
            results.set_event_id(origin, id.clone());
            let Some(value) = incoming.value.as_deref() else {
                // A tombstone: no value to check, and nothing for plugins to see.
                let Some(key) = key else {
                    let error = EventError::new(EventErrorKind::MissingKey, "a tombstone (value null) needs a key");
                    results.fail(origin, EventError { pointer: Some("/key".into()), ..error });
                    continue;
                };
                records.push(Record {
                    origin,
                    topic: route.topic.clone(),
                    partition: incoming.partition,
                    key: Some(key),
                    payload: None,
                    headers: kafka_headers(&headers),
                    event_id: id,
                    schema_id: None,
                    dead_letter: None,
                    timestamp_ms: incoming.timestamp_ms,
                });
                continue;
            };
            ready.push(Work {
                origin,
                route: route.clone(),
                value: Cow::Borrowed(value),
                key,
                headers,
                partition: incoming.partition,
                from_plugin: false,
                timestamp_ms: incoming.timestamp_ms,
            });
        }

        let (work, stopped) =
            if route.plugins.is_empty() { (ready, Vec::new()) } else { self.run_plugins(route, ready).await };

        records.reserve(work.len());
        for item in work {
            if item.route.topic != route.topic && !may_produce(&item.route.topic) {
                let error = EventError::new(
                    EventErrorKind::ForbiddenTarget,
                    format!("a plugin sent the event to '{}', which the caller may not produce to", item.route.topic),
                );
                results.part(item.origin, &item.route.topic, None, None, results::PartOutcome::Failed(error));
                continue;
            }
            let schema =
                if Arc::ptr_eq(&item.route, route) { Schema::Batch(&primary) } else { Schema::Other(&mut others) };
            match self.encode(item, schema).await {
                Ok(record) => records.push(record),
                Err((origin, topic, error)) => {
                    results.part(origin, &topic, None, None, results::PartOutcome::Failed(error))
                }
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
                    let id = results.event_id(origin).unwrap_or_default().to_owned();
                    let original = Original { event: &events[origin], id: &id, key_schema: primary.key.as_ref() };
                    match dead_letter(route, origin, original, &plugin, &reason, context) {
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

    /// The schemas a route encodes with: its value's (`None` for schemaless routes) and its
    /// key's (when it has `key_format`).
    async fn schemas_for(&self, route: &Route, chosen: &Chosen) -> Result<Schemas, BatchError> {
        let value = if let Some(resolved) = &chosen.value {
            check_format(route.format, &route.subject, route.message.as_deref(), resolved)?;
            Some(resolved.clone())
        } else if matches!(route.format, Format::Json | Format::Bytes) {
            None
        } else {
            let resolved = self
                .schemas
                .resolve(&route.subject, route.version)
                .await
                .map_err(|error| BatchError::Schema { subject: route.subject.clone(), error })?;
            check_format(route.format, &route.subject, route.message.as_deref(), &resolved)?;
            Some(resolved)
        };
        let key = match (&chosen.key, &route.key_schema) {
            (Some(resolved), _) => Some(resolved.clone()),
            (None, None) => None,
            (None, Some((format, subject))) => {
                let resolved = self
                    .schemas
                    .resolve(subject, crate::registry::VersionSpec::Latest)
                    .await
                    .map_err(|error| BatchError::Schema { subject: subject.clone(), error })?;
                check_format(*format, subject, None, &resolved)?;
                Some(resolved)
            }
        };
        Ok(Schemas { value, key })
    }

    async fn run_plugins<'a>(&self, route: &Arc<Route>, ready: Vec<Work<'a>>) -> (Vec<Work<'a>>, Vec<(usize, Stop)>) {
        let now = crate::telemetry::now_ms();
        let mut partitions = HashMap::new();
        let mut timestamps = HashMap::new();
        let items = ready
            .into_iter()
            .map(|work| {
                if let Some(partition) = work.partition {
                    partitions.insert(work.origin, partition);
                }
                if let Some(timestamp) = work.timestamp_ms {
                    timestamps.insert(work.origin, timestamp);
                }
                Item {
                    origin: work.origin,
                    key_set: work.key.is_some(),
                    event: Event {
                        topic: route.topic.clone(),
                        key: work.key,
                        value: work.value.into_owned(),
                        headers: work.headers,
                        timestamp_ms: work.timestamp_ms.unwrap_or(now),
                    },
                }
            })
            .collect();
        let plugins = chain::resolve(&self.plugins, &route.plugins);
        let outcome = chain::run_produce(&plugins, items, route.on_plugin_error).await;
        let work = outcome
            .items
            .into_iter()
            .map(|item| {
                let (target, partition) = if item.event.topic == route.topic {
                    (Some(route.clone()), partitions.get(&item.origin).copied())
                } else {
                    (self.routes.get(&item.event.topic), None)
                };
                Work {
                    origin: item.origin,
                    // An unknown target keeps the topic in an unrouted stand-in; encode refuses it.
                    route: target.unwrap_or_else(|| Arc::new(Route::unrouted(&item.event.topic))),
                    value: Cow::Owned(item.event.value),
                    key: if item.key_set { item.event.key } else { None },
                    headers: item.event.headers,
                    partition,
                    from_plugin: true,
                    // The request's timestamp holds for every record made from its event.
                    timestamp_ms: timestamps.get(&item.origin).copied(),
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
        let schemas = match schema {
            Schema::Batch(primary) => primary,
            Schema::Other(schemas) => {
                if !schemas.contains_key(&route.topic) {
                    let found = match self.topics.ensure(&route.topic).await {
                        Err(error) => Err(EventError::from(error)),
                        Ok(()) => self.schemas_for(&route, &Chosen::default()).await.map_err(|error| match error {
                            BatchError::Kafka(kafka) => EventError::from(kafka),
                            other => EventError::new(EventErrorKind::SchemaUnavailable, other.to_string()),
                        }),
                    };
                    schemas.insert(route.topic.clone(), found);
                }
                match &schemas[&route.topic] {
                    Ok(found) => found,
                    Err(error) => return Err(fail(error.clone())),
                }
            }
        };
        let (key, payload) = if route.format == Format::Bytes {
            // Written as it is, by request or plugin; the key is the one given, if any.
            (work.key, work.value.into_owned())
        } else {
            let text = std::str::from_utf8(&work.value).map_err(|_| {
                fail(EventError::new(
                    EventErrorKind::InvalidPluginOutput,
                    "a plugin produced a value that is not UTF-8",
                ))
            })?;
            encode_value(&route, schemas, text, work.key, work.from_plugin).map_err(fail)?
        };
        // A plugin may have dropped the header, or fanned one event out into several.
        let mut headers = work.headers;
        let event_id = match input::event_id_of(&headers) {
            Some(id) => id.to_owned(),
            None => {
                let id = new_event_id();
                input::set_event_id(&mut headers, &id);
                id
            }
        };
        Ok(Record {
            origin,
            topic: route.topic.clone(),
            partition: work.partition,
            key,
            payload: Some(payload),
            headers: kafka_headers(&headers),
            event_id,
            schema_id: schemas.value.as_ref().map(|s| s.id),
            dead_letter: None,
            timestamp_ms: work.timestamp_ms,
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
            let Record {
                origin,
                topic,
                partition,
                key,
                payload,
                headers,
                event_id,
                schema_id,
                dead_letter,
                timestamp_ms,
            } = record;
            let sizes = (key.as_ref().map(Vec::len), payload.as_ref().map(Vec::len));
            match self.producer.send(&topic, partition, key.as_deref(), payload.as_deref(), headers, timestamp_ms) {
                Ok(delivery) => pending.push((origin, topic, schema_id, event_id, dead_letter, (delivery, sizes))),
                Err(error) => {
                    results.part(origin, &topic, schema_id, Some(event_id), results::PartOutcome::Failed(error.into()))
                }
            }
        }
        Ok(async move {
            match ack {
                Ack::Wait => {
                    // Every record is already queued, so awaiting them in turn takes no longer than
                    // awaiting them together, and costs a fraction of `join_all`'s bookkeeping
                    // (most answers are in by the time the first one is).
                    let mut answers = Vec::with_capacity(pending.len());
                    for (origin, topic, schema_id, event_id, dead_letter, (delivery, sizes)) in pending {
                        let answer = self
                            .producer
                            .delivered(delivery)
                            .await
                            .map(|delivered| crate::kafka::producer::Delivered { sizes: Some(sizes), ..delivered });
                        answers.push((origin, topic, schema_id, event_id, dead_letter, answer));
                    }
                    drop(permit);
                    for (origin, topic, schema_id, event_id, dead_letter, answer) in answers {
                        match (answer, dead_letter) {
                            (Ok(delivered), Some((plugin, reason))) => {
                                results.stop(origin, Outcome::DeadLettered { topic, delivered, plugin, reason });
                            }
                            (Ok(delivered), None) => results.part(
                                origin,
                                &topic,
                                schema_id,
                                Some(event_id),
                                results::PartOutcome::Stored(delivered),
                            ),
                            (Err(error), _) => {
                                if error == ProduceError::UnknownTopic {
                                    self.topics.mark_missing(&topic);
                                }
                                let failed = results::PartOutcome::Failed(error.into());
                                results.part(origin, &topic, schema_id, Some(event_id), failed);
                            }
                        }
                    }
                }
                Ack::FireAndForget => {
                    for (origin, topic, schema_id, event_id, _, _) in &pending {
                        let enqueued = results::PartOutcome::Enqueued;
                        results.part(*origin, topic, *schema_id, Some(event_id.clone()), enqueued);
                    }
                    let producer = self.producer.clone();
                    // In the request's log span: a lost event's log line carries its trace id.
                    let waiting = async move {
                        let _permit = permit;
                        for (origin, topic, _, event_id, _, (delivery, _)) in pending {
                            if let Err(error) = producer.delivered(delivery).await {
                                tracing::error!(topic, index = origin, event_id, error = %error, "fire-and-forget event was not stored");
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

/// A request event as it came, for its dead letter record.
struct Original<'a, 'e> {
    event: &'a Incoming<'e>,
    id: &'a str,
    key_schema: Option<&'a Resolved>,
}

/// The dead letter record for a request event: the original JSON, with headers saying why.
fn dead_letter(
    route: &Route,
    origin: usize,
    original: Original<'_, '_>,
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
    // Plugins only see events with a value.
    let value = original.event.value.as_deref().unwrap_or_default();
    let key = match &original.event.key {
        Some(Key::Json(raw)) => encode_key(original.key_schema, raw).ok(),
        Some(Key::Bytes(bytes)) => Some(bytes.clone()),
        None => route.key.as_ref().and_then(|pointer| {
            let text = std::str::from_utf8(value).ok()?;
            json::parse(text).ok().and_then(|event| extract_key(&event, pointer).ok())
        }),
    };
    let why = DeadLetter { reason, original_topic: &route.topic, plugin: Some(plugin), ..DeadLetter::default() };
    let mut carried: Vec<Header> = context.iter().chain(&original.event.headers).cloned().collect();
    input::set_event_id(&mut carried, original.id);
    let headers = why.headers(carried.iter().map(|h| (h.key.as_str(), h.value.as_slice())));
    Ok(Record {
        origin,
        topic: topic.clone(),
        partition: None,
        key,
        payload: Some(value.to_vec()),
        headers: Some(headers),
        event_id: original.id.to_owned(),
        schema_id: None,
        dead_letter: Some((plugin.to_owned(), reason.to_owned())),
        timestamp_ms: None,
    })
}

/// The registry's schema type must be the route's format.
fn check_format(format: Format, subject: &str, message: Option<&str>, resolved: &Resolved) -> Result<(), BatchError> {
    let expected = match format {
        Format::Avro => crate::codec::SchemaType::Avro,
        Format::JsonSchema => crate::codec::SchemaType::Json,
        Format::Protobuf => crate::codec::SchemaType::Protobuf,
        Format::Json | Format::Bytes => return Ok(()),
    };
    let actual = resolved.codec.schema_type();
    if let crate::codec::Codec::Protobuf(codec) = &*resolved.codec
        && let Err(why) = codec.message(message)
    {
        return Err(BatchError::Schema {
            subject: subject.to_owned(),
            error: RegistryError::InvalidSchema(format!("schema {}: {why}", resolved.id)),
        });
    }
    if actual == expected {
        Ok(())
    } else {
        Err(BatchError::Schema {
            subject: subject.to_owned(),
            error: RegistryError::InvalidSchema(format!(
                "schema {} is {actual}, but the route's format needs {expected}",
                resolved.id
            )),
        })
    }
}

/// The id of a request event: the one it was given, else the route's `event_id` field, else a
/// new UUIDv7.
fn event_id(route: &Route, incoming: &Incoming<'_>) -> String {
    if let Some(id) = incoming.event_id.as_deref().or_else(|| input::event_id_of(&incoming.headers)) {
        return id.to_owned();
    }
    if let (Some(pointer), Some(value)) = (&route.event_id, incoming.value.as_deref())
        && let Ok(text) = std::str::from_utf8(value)
        && let Ok(event) = json::parse(text)
        && let Ok(id) = extract_key(&event, pointer)
        && let Ok(id) = String::from_utf8(id)
    {
        return id;
    }
    new_event_id()
}

/// A key the request gave (JSON): encoded with the key schema when the route has one (errors
/// point under `/key`), else it must be a string, written as its UTF-8 bytes.
fn encode_key(schema: Option<&Resolved>, raw: &RawValue) -> Result<Vec<u8>, EventError> {
    let invalid = |pointer: String, message: String| EventError {
        kind: EventErrorKind::InvalidKey,
        pointer: Some(pointer),
        message,
        plugin: None,
    };
    match schema {
        Some(resolved) => {
            let parsed = json::parse(raw.get()).map_err(|e| invalid("/key".into(), format!("not JSON: {e}")))?;
            resolved
                .codec
                .encode(resolved.id, &parsed, raw.get(), true, None)
                .map_err(|error| invalid(format!("/key{}", error.pointer), error.message))
        }
        None => match serde_json::from_str::<Cow<'_, str>>(raw.get()) {
            Ok(text) => Ok(text.into_owned().into_bytes()),
            Err(_) => {
                Err(invalid("/key".into(), "the route has no key schema (key_format), so a key is a string".into()))
            }
        },
    }
}

/// A key taken from the event with the route's pointer, encoded with the key schema if any.
fn pointer_key(event: &json::Json<'_>, pointer: &str, schema: Option<&Resolved>) -> Result<Vec<u8>, EventError> {
    let refused = |kind, message: String| EventError { kind, pointer: Some(pointer.to_owned()), message, plugin: None };
    let Some(resolved) = schema else {
        return extract_key(event, pointer).map_err(|error| match error {
            KeyError::Missing => refused(EventErrorKind::MissingKey, error.to_string()),
            KeyError::WrongType(_) => refused(EventErrorKind::InvalidKey, error.to_string()),
        });
    };
    let Some(field) = json::pointer(event, pointer) else {
        return Err(refused(EventErrorKind::MissingKey, KeyError::Missing.to_string()));
    };
    let text = serde_json::Value::from(field).to_string();
    resolved.codec.encode(resolved.id, field, &text, true, None).map_err(|error| EventError {
        kind: EventErrorKind::InvalidKey,
        pointer: Some(format!("{pointer}{}", error.pointer)),
        message: format!("the key does not fit the key schema: {}", error.message),
        plugin: None,
    })
}

/// Validates and encodes one event's JSON text; returns its key and record value.
fn encode_value(
    route: &Route,
    schemas: &Schemas,
    raw: &str,
    key: Option<Vec<u8>>,
    from_plugin: bool,
) -> Result<(Option<Vec<u8>>, Vec<u8>), EventError> {
    let schema = schemas.value.as_ref();
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
        (None, Some(pointer), Some(event)) => Some(pointer_key(event, pointer, schemas.key.as_ref())?),
        _ => None,
    };
    Ok((key, payload))
}
