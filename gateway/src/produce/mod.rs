//! The produce pipeline: events → schema → validate and encode → key → Kafka → per-event result.
//!
//! It knows nothing about HTTP: the HTTP layer hands it parsed events and turns its results into
//! a response. A request-wide problem (schema unavailable, topic missing, overload) is a
//! [`BatchError`]; anything about one event is that event's [`EventError`], and the others go on.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::{Ack, Format};
use crate::kafka::producer::{Delivered, ProduceError, Producer};
use crate::kafka::topics::Topics;
use crate::registry::{RegistryError, Resolved, SchemaCache};
use crate::route::{KeyError, Route, extract_key};

/// What happened to one event, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResult {
    pub index: usize,
    /// The schema id the event was encoded with (schema routes only).
    pub schema_id: Option<u32>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged by the broker (`ack = "wait"`).
    Stored(Delivered),
    /// Queued in the gateway, not yet acknowledged (`ack = "fire-and-forget"`).
    Enqueued,
    Failed(EventError),
}

/// Why one event was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    pub kind: EventErrorKind,
    /// JSON pointer into the event, where the problem is in the event.
    pub pointer: Option<String>,
    pub message: String,
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
    KafkaRefused,
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
            EventErrorKind::KafkaRefused => "kafka-refused",
        }
    }

    /// The HTTP status this error would have on its own.
    pub fn status(self) -> u16 {
        match self {
            EventErrorKind::SchemaViolation | EventErrorKind::MissingKey | EventErrorKind::InvalidKey => 422,
            EventErrorKind::RecordTooLarge => 413,
            EventErrorKind::KafkaUnavailable | EventErrorKind::Overloaded => 503,
            EventErrorKind::KafkaTopicMissing => 404,
            EventErrorKind::KafkaRefused => 502,
        }
    }

    /// Whether sending the same event again later may succeed.
    pub fn is_retriable(self) -> bool {
        matches!(self, EventErrorKind::KafkaUnavailable | EventErrorKind::Overloaded)
    }
}

impl From<ProduceError> for EventError {
    fn from(error: ProduceError) -> Self {
        let kind = match &error {
            ProduceError::Unavailable(_) => EventErrorKind::KafkaUnavailable,
            ProduceError::Overloaded => EventErrorKind::Overloaded,
            ProduceError::UnknownTopic => EventErrorKind::KafkaTopicMissing,
            ProduceError::TooLarge(_) => EventErrorKind::RecordTooLarge,
            ProduceError::Refused(_) => EventErrorKind::KafkaRefused,
        };
        Self { kind, pointer: None, message: error.to_string() }
    }
}

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

/// An event that passed validation, ready to send.
struct Encoded {
    index: usize,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// The produce path shared by every route.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub producer: Producer,
    pub topics: Arc<Topics>,
    pub schemas: Arc<SchemaCache>,
}

impl Pipeline {
    /// Validates, encodes and produces a batch of events for one route.
    ///
    /// `events` are JSON objects as received (see `http::body`); each is parsed only if its
    /// route needs the parsed form (a schema, or a key).
    pub async fn produce(&self, route: &Route, events: &[&RawValue]) -> Result<Vec<EventResult>, BatchError> {
        match self.topics.ensure(&route.topic).await {
            Ok(()) => {}
            Err(ProduceError::UnknownTopic) => return Err(BatchError::TopicMissing(route.topic.clone())),
            Err(other) => return Err(BatchError::Kafka(other)),
        }
        let schema = match route.format {
            Format::Json => None,
            Format::Avro | Format::JsonSchema => Some(
                self.schemas
                    .resolve(&route.subject, route.version)
                    .await
                    .map_err(|error| BatchError::Schema { subject: route.subject.clone(), error })?,
            ),
        };
        if let Some(resolved) = &schema {
            check_format(route, resolved)?;
        }
        let schema_id = schema.as_ref().map(|s| s.id);

        let mut results: Vec<Option<EventResult>> = vec![None; events.len()];
        let mut ready = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            match encode(route, schema.as_ref(), event) {
                Ok((key, payload)) => ready.push(Encoded { index, key, payload }),
                Err(error) => results[index] = Some(EventResult { index, schema_id, outcome: Outcome::Failed(error) }),
            }
        }
        if !ready.is_empty() {
            let permit = self.producer.reserve(ready.len()).map_err(BatchError::Kafka)?;
            let mut pending = Vec::with_capacity(ready.len());
            for event in ready {
                match self.producer.send(&route.topic, event.key.as_deref(), &event.payload) {
                    Ok(delivery) => pending.push((event.index, delivery)),
                    Err(error) => {
                        results[event.index] =
                            Some(EventResult { index: event.index, schema_id, outcome: Outcome::Failed(error.into()) });
                    }
                }
            }
            match route.ack {
                Ack::Wait => {
                    let outcomes = join_all(
                        pending
                            .into_iter()
                            .map(|(index, delivery)| async move { (index, self.producer.delivered(delivery).await) }),
                    )
                    .await;
                    drop(permit);
                    for (index, outcome) in outcomes {
                        let outcome = match outcome {
                            Ok(delivered) => Outcome::Stored(delivered),
                            Err(error) => {
                                if error == ProduceError::UnknownTopic {
                                    self.topics.mark_missing(&route.topic);
                                }
                                Outcome::Failed(error.into())
                            }
                        };
                        results[index] = Some(EventResult { index, schema_id, outcome });
                    }
                }
                Ack::FireAndForget => {
                    for (index, _) in &pending {
                        results[*index] = Some(EventResult { index: *index, schema_id, outcome: Outcome::Enqueued });
                    }
                    let (producer, topic) = (self.producer.clone(), route.topic.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        for (index, delivery) in pending {
                            if let Err(error) = producer.delivered(delivery).await {
                                tracing::error!(topic, index, error = %error, "fire-and-forget event was not stored");
                            }
                        }
                    });
                }
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Waits for queued events at shutdown.
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::error!(error = %error, "events still queued at shutdown were not delivered");
        }
    }
}

/// The registry's schema type must be the route's format.
fn check_format(route: &Route, resolved: &Resolved) -> Result<(), BatchError> {
    let expected = match route.format {
        Format::Avro => crate::codec::SchemaType::Avro,
        Format::JsonSchema => crate::codec::SchemaType::Json,
        Format::Json => return Ok(()),
    };
    let actual = resolved.codec.schema_type();
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

fn encode(route: &Route, schema: Option<&Resolved>, raw: &RawValue) -> Result<(Option<Vec<u8>>, Vec<u8>), EventError> {
    let raw = raw.get();
    let parsed = if schema.is_some() || route.key.is_some() {
        // The body was checked to be JSON; only a nesting deeper than serde_json's limit fails.
        Some(serde_json::from_str::<Value>(raw).map_err(|error| EventError {
            kind: EventErrorKind::SchemaViolation,
            pointer: Some(String::new()),
            message: error.to_string(),
        })?)
    } else {
        None
    };
    // The schema first: a missing key field is usually also a missing required field, and the
    // schema's message says more.
    let payload = match (schema, &parsed) {
        (Some(resolved), Some(event)) => {
            resolved.codec.encode(resolved.id, event, raw, route.reject_unknown).map_err(|error| EventError {
                kind: EventErrorKind::SchemaViolation,
                pointer: Some(error.pointer),
                message: error.message,
            })?
        }
        _ => raw.as_bytes().to_vec(),
    };
    let key = match (&route.key, &parsed) {
        (Some(pointer), Some(event)) => Some(extract_key(event, pointer).map_err(|error| EventError {
            kind: match error {
                KeyError::Missing => EventErrorKind::MissingKey,
                KeyError::WrongType(_) => EventErrorKind::InvalidKey,
            },
            pointer: Some(pointer.clone()),
            message: error.to_string(),
        })?),
        _ => None,
    };
    Ok((key, payload))
}
