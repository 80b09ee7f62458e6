//! What happened to each request event, and the error types clients match on.

use crate::kafka::producer::{Delivered, ProduceError};
use crate::route::Route;

/// What happened to one request event, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResult {
    pub index: usize,
    /// The `event-id` its record carries (when it was written or queued).
    pub event_id: Option<String>,
    /// The schema id the event was encoded with (schema routes only).
    pub schema_id: Option<u32>,
    /// The topic it went to, when a plugin sent it elsewhere than the route's topic.
    pub topic: Option<String>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged by the broker (`ack = "wait"`).
    Stored(Delivered),
    /// Queued in the gateway, not yet acknowledged (`ack = "fire-and-forget"`).
    Enqueued,
    Failed(EventError),
    /// A plugin left the event out.
    Dropped {
        plugin: String,
        reason: String,
    },
    /// A plugin (or the route's policy) sent the event to the dead letter topic.
    DeadLettered {
        topic: String,
        delivered: Delivered,
        plugin: String,
        reason: String,
    },
    /// A plugin fanned the event out into these events.
    Many(Vec<Part>),
}

/// One event a request event became (fan-out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub topic: String,
    pub schema_id: Option<u32>,
    /// The `event-id` of this record.
    pub event_id: Option<String>,
    pub outcome: PartOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartOutcome {
    Stored(Delivered),
    Enqueued,
    Failed(EventError),
}

impl EventResult {
    /// The error that kept this event (or one of its parts) from being handled.
    pub fn failure(&self) -> Option<&EventError> {
        match &self.outcome {
            Outcome::Failed(error) => Some(error),
            Outcome::Many(parts) => parts.iter().find_map(|p| match &p.outcome {
                PartOutcome::Failed(error) => Some(error),
                _ => None,
            }),
            _ => None,
        }
    }

    /// Whether the event is only queued, not yet acknowledged.
    pub fn is_enqueued(&self) -> bool {
        match &self.outcome {
            Outcome::Enqueued => true,
            Outcome::Many(parts) => !parts.is_empty() && parts.iter().all(|p| p.outcome == PartOutcome::Enqueued),
            _ => false,
        }
    }
}

/// Why one event was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    pub kind: EventErrorKind,
    /// JSON pointer into the event, where the problem is in the event.
    pub pointer: Option<String>,
    pub message: String,
    /// The plugin that refused the event or failed on it.
    pub plugin: Option<String>,
}

impl EventError {
    pub fn new(kind: EventErrorKind, message: impl Into<String>) -> Self {
        Self { kind, pointer: None, message: message.into(), plugin: None }
    }

    pub fn plugin(kind: EventErrorKind, plugin: &str, message: impl Into<String>) -> Self {
        Self { kind, pointer: None, message: message.into(), plugin: Some(plugin.to_owned()) }
    }
}

/// The stable error types of single events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventErrorKind {
    SchemaViolation,
    MissingKey,
    InvalidKey,
    RecordTooLarge,
    KafkaUnavailable,
    Overloaded,
    KafkaTopicMissing,
    /// The request named a partition the topic does not have.
    UnknownPartition,
    KafkaRefused,
    SchemaUnavailable,
    PluginRejected,
    PluginFailed,
    /// The plugin was not called: at its limit of calls at once, or its circuit breaker open.
    PluginUnavailable,
    InvalidPluginOutput,
    UnknownTarget,
    /// A plugin sent the event to a topic the caller may not produce to.
    ForbiddenTarget,
    NoDeadLetterTopic,
}

impl EventErrorKind {
    /// The `type` clients match on.
    pub fn slug(self) -> &'static str {
        match self {
            EventErrorKind::SchemaViolation => "schema-violation",
            EventErrorKind::MissingKey => "missing-key",
            EventErrorKind::InvalidKey => "invalid-key",
            EventErrorKind::RecordTooLarge => "record-too-large",
            EventErrorKind::KafkaUnavailable => "kafka-unavailable",
            EventErrorKind::Overloaded => "overloaded",
            EventErrorKind::KafkaTopicMissing => "kafka-topic-missing",
            EventErrorKind::UnknownPartition => "unknown-partition",
            EventErrorKind::KafkaRefused => "kafka-refused",
            EventErrorKind::SchemaUnavailable => "schema-unavailable",
            EventErrorKind::PluginRejected => "plugin-rejected",
            EventErrorKind::PluginFailed => "plugin-failed",
            EventErrorKind::PluginUnavailable => "plugin-unavailable",
            EventErrorKind::InvalidPluginOutput => "invalid-plugin-output",
            EventErrorKind::UnknownTarget => "unknown-reroute-target",
            EventErrorKind::ForbiddenTarget => "forbidden-reroute-target",
            EventErrorKind::NoDeadLetterTopic => "no-dead-letter-topic",
        }
    }

    /// The HTTP status this error would have on its own.
    pub fn status(self) -> u16 {
        match self {
            EventErrorKind::SchemaViolation
            | EventErrorKind::MissingKey
            | EventErrorKind::InvalidKey
            | EventErrorKind::PluginRejected => 422,
            EventErrorKind::RecordTooLarge => 413,
            EventErrorKind::ForbiddenTarget => 403,
            EventErrorKind::KafkaUnavailable
            | EventErrorKind::Overloaded
            | EventErrorKind::SchemaUnavailable
            | EventErrorKind::PluginUnavailable => 503,
            EventErrorKind::KafkaTopicMissing | EventErrorKind::UnknownPartition => 404,
            EventErrorKind::KafkaRefused
            | EventErrorKind::PluginFailed
            | EventErrorKind::InvalidPluginOutput
            | EventErrorKind::UnknownTarget
            | EventErrorKind::NoDeadLetterTopic => 502,
        }
    }

    /// Whether sending the same event again later may succeed.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            EventErrorKind::KafkaUnavailable
                | EventErrorKind::Overloaded
                | EventErrorKind::SchemaUnavailable
                | EventErrorKind::PluginUnavailable
        )
    }
}

impl From<ProduceError> for EventError {
    fn from(error: ProduceError) -> Self {
        let kind = match &error {
            ProduceError::Unavailable(_) | ProduceError::Purged => EventErrorKind::KafkaUnavailable,
            ProduceError::Overloaded => EventErrorKind::Overloaded,
            ProduceError::UnknownTopic => EventErrorKind::KafkaTopicMissing,
            ProduceError::UnknownPartition => EventErrorKind::UnknownPartition,
            ProduceError::TooLarge(_) => EventErrorKind::RecordTooLarge,
            ProduceError::Refused(_) => EventErrorKind::KafkaRefused,
        };
        Self::new(kind, error.to_string())
    }
}

/// Gathers the outcomes of a batch's records into one result per request event.
pub(super) struct Collector {
    route_topic: String,
    parts: Vec<Vec<Part>>,
    /// Outcomes that are whole on their own (dropped, dead-lettered, refused).
    stops: Vec<Option<Outcome>>,
    /// Each request event's id.
    event_ids: Vec<Option<String>>,
}

impl Collector {
    pub(super) fn new(route: &Route, events: usize) -> Self {
        Self {
            route_topic: route.topic.clone(),
            parts: vec![Vec::new(); events],
            stops: vec![None; events],
            event_ids: vec![None; events],
        }
    }

    /// The id of a request event (its records' `event-id` unless a plugin changed it).
    pub(super) fn set_event_id(&mut self, origin: usize, id: String) {
        self.event_ids[origin] = Some(id);
    }

    pub(super) fn event_id(&self, origin: usize) -> Option<&str> {
        self.event_ids[origin].as_deref()
    }

    pub(super) fn part(
        &mut self,
        origin: usize,
        topic: &str,
        schema_id: Option<u32>,
        event_id: Option<String>,
        outcome: PartOutcome,
    ) {
        self.parts[origin].push(Part { topic: topic.to_owned(), schema_id, event_id, outcome });
    }

    pub(super) fn stop(&mut self, origin: usize, outcome: Outcome) {
        self.stops[origin] = Some(outcome);
    }

    pub(super) fn fail(&mut self, origin: usize, error: EventError) {
        self.stop(origin, Outcome::Failed(error));
    }

    /// The events refused so far (an event with a refused part counts), in request order.
    pub(super) fn failures(&self) -> Vec<(usize, EventError)> {
        let mut failed = Vec::new();
        for (index, (parts, stop)) in self.parts.iter().zip(&self.stops).enumerate() {
            let error = match stop {
                Some(Outcome::Failed(error)) => Some(error),
                Some(_) => None,
                None => parts.iter().find_map(|p| match &p.outcome {
                    PartOutcome::Failed(error) => Some(error),
                    _ => None,
                }),
            };
            if let Some(error) = error {
                failed.push((index, error.clone()));
            }
        }
        failed
    }

    pub(super) fn finish(self) -> Vec<EventResult> {
        let route_topic = self.route_topic;
        let results: Vec<EventResult> = self
            .parts
            .into_iter()
            .zip(self.stops)
            .zip(self.event_ids)
            .enumerate()
            .map(|(index, ((mut parts, stop), id))| match (stop, parts.len()) {
                (Some(outcome), _) => {
                    // Only a written record has an id worth returning.
                    let event_id = id.filter(|_| matches!(outcome, Outcome::DeadLettered { .. }));
                    EventResult { index, event_id, schema_id: None, topic: None, outcome }
                }
                (None, 1) => {
                    let part = parts.remove(0);
                    let topic = (part.topic != route_topic).then_some(part.topic);
                    let (event_id, outcome) = match part.outcome {
                        PartOutcome::Stored(delivered) => (part.event_id, Outcome::Stored(delivered)),
                        PartOutcome::Enqueued => (part.event_id, Outcome::Enqueued),
                        PartOutcome::Failed(error) => (None, Outcome::Failed(error)),
                    };
                    EventResult { index, event_id, schema_id: part.schema_id, topic, outcome }
                }
                (None, _) => {
                    EventResult { index, event_id: id, schema_id: None, topic: None, outcome: Outcome::Many(parts) }
                }
            })
            .collect();
        count(&route_topic, &results);
        results
    }
}

/// Every request event's outcome, in the metrics: where each went and why one was refused.
/// Counted per request, not per event, to keep the hot path cheap.
fn count(route_topic: &str, results: &[EventResult]) {
    use std::collections::BTreeMap;
    let mut events: BTreeMap<(&str, &'static str), u64> = BTreeMap::new();
    let mut refused: BTreeMap<(&str, &'static str), u64> = BTreeMap::new();
    let mut add = |topic, outcome: Result<&'static str, &EventError>| match outcome {
        Ok(outcome) => *events.entry((topic, outcome)).or_default() += 1,
        // A plugin's made-up topic must not become a label value: label values only come from
        // configured routes.
        Err(error) if error.kind == EventErrorKind::UnknownTarget => {
            *refused.entry(("unrouted", error.kind.slug())).or_default() += 1;
        }
        Err(error) => *refused.entry((topic, error.kind.slug())).or_default() += 1,
    };
    for result in results {
        let topic = result.topic.as_deref().unwrap_or(route_topic);
        match &result.outcome {
            Outcome::Stored(_) => add(topic, Ok("produced")),
            Outcome::Enqueued => add(topic, Ok("enqueued")),
            Outcome::Failed(error) => add(topic, Err(error)),
            Outcome::Dropped { .. } => add(topic, Ok("dropped")),
            Outcome::DeadLettered { .. } => add(topic, Ok("dead_lettered")),
            Outcome::Many(parts) => {
                for part in parts {
                    match &part.outcome {
                        PartOutcome::Stored(_) => add(&part.topic, Ok("produced")),
                        PartOutcome::Enqueued => add(&part.topic, Ok("enqueued")),
                        PartOutcome::Failed(error) => add(&part.topic, Err(error)),
                    }
                }
            }
        }
    }
    let metrics = crate::telemetry::metrics::metrics();
    for ((topic, outcome), n) in events {
        metrics.events(topic, outcome, n);
    }
    for ((topic, kind), n) in refused {
        metrics.refusals(topic, kind, n);
    }
}
