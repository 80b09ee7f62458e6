//! The idempotent `acks=all` producer, with explicit back-pressure and one place that classifies
//! librdkafka errors.
//!
//! Back-pressure has two bounds: a semaphore of `max_in_flight_events` permits taken by a request
//! for all its events before any is sent (so a request is refused whole with 503 rather than half
//! queued), and librdkafka's own queue limit behind it. Neither waits: full means 503 now.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::client_config;
use super::health::{BrokerHealth, HealthContext};
use crate::config::KafkaConfig;

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp (ms since the epoch), when the broker's answer has one.
    pub timestamp_ms: Option<i64>,
    /// The sizes of the key and value written (`None`: null), when the sender recorded them.
    pub sizes: Option<(Option<usize>, Option<usize>)>,
}

impl Delivered {
    /// The same answer, knowing what was written.
    pub fn of(self, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        Self { sizes: Some((key.map(<[u8]>::len), value.map(<[u8]>::len))), ..self }
    }
}

/// Why a record was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    /// The brokers cannot be reached or did not acknowledge in time; retrying later may work,
    /// and may store a second copy if the first was in fact written.
    #[error("Kafka is unavailable: {0}")]
    Unavailable(String),
    /// The gateway already holds as many unacknowledged events as it is allowed to.
    #[error("too many events are waiting for Kafka; retry shortly")]
    Overloaded,
    /// The topic does not exist in the cluster.
    #[error("the topic does not exist in Kafka")]
    UnknownTopic,
    /// The topic has no such partition (a partition the request named).
    #[error("the topic has no such partition")]
    UnknownPartition,
    /// The record is larger than the producer or broker accepts.
    #[error("the record is larger than Kafka accepts ({0})")]
    TooLarge(String),
    /// Kafka refused the record for a reason retrying will not fix.
    #[error("Kafka refused the record: {0}")]
    Refused(String),
    /// The record was dropped unsent because its transaction was being aborted (for another
    /// record's failure, or the producer's previous transaction's).
    #[error("the record's transaction was aborted before it was sent")]
    Purged,
}

impl ProduceError {
    /// Whether the same request may succeed if retried later.
    pub fn is_retriable(&self) -> bool {
        matches!(self, ProduceError::Unavailable(_) | ProduceError::Overloaded | ProduceError::Purged)
    }
}

/// The one place that decides what a librdkafka error means for a caller.
pub fn classify(error: &KafkaError) -> ProduceError {
    use RDKafkaErrorCode as C;
    let Some(code) = error.rdkafka_error_code() else {
        return ProduceError::Unavailable(error.to_string());
    };
    match code {
        C::QueueFull => ProduceError::Overloaded,
        C::PurgeQueue | C::PurgeInflight => ProduceError::Purged,
        C::MessageSizeTooLarge | C::InvalidMessageSize | C::MessageBatchTooLarge => {
            ProduceError::TooLarge(code.to_string())
        }
        // Local: librdkafka knows the topic's partitions and the record named another one.
        C::UnknownPartition => ProduceError::UnknownPartition,
        C::UnknownTopic | C::UnknownTopicOrPartition => ProduceError::UnknownTopic,
        C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::InvalidRecord
        | C::InvalidTopic
        | C::PolicyViolation
        | C::UnsupportedForMessageFormat
        | C::InvalidRequiredAcks => ProduceError::Refused(code.to_string()),
        // Timeouts, transport failures, leader changes, not-enough-replicas, fatal idempotence
        // state: nothing the client did wrong, and a later retry can succeed.
        _ => ProduceError::Unavailable(code.to_string()),
    }
}

/// The gateway's producer: idempotent, `acks=all`, compressed, Java-compatible partitioning.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer<HealthContext>,
    health: Arc<BrokerHealth>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("in_flight", &self.in_flight()).finish_non_exhaustive()
    }
}

impl Producer {
    pub fn new(kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        let health = Arc::new(BrokerHealth::default());
        let mut config = producer_config(kafka);
        config
            // librdkafka's queue is the second bound behind the semaphore, with headroom so
            // that the semaphore is what callers normally meet.
            .set(
                "queue.buffering.max.messages",
                (kafka.max_in_flight_events.saturating_mul(2)).min(10_000_000).to_string(),
            )
            .set("statistics.interval.ms", "1000");
        let inner = config.create_with_context(HealthContext { health: health.clone() })?;
        Ok(Self {
            inner,
            health,
            in_flight: Arc::new(Semaphore::new(kafka.max_in_flight_events)),
            max_in_flight: kafka.max_in_flight_events,
        })
    }

    /// Reserves room for `events` records, or says why not (overloaded, or brokers down).
    pub fn reserve(&self, events: usize) -> Result<OwnedSemaphorePermit, ProduceError> {
        if !self.health.admit() {
            return Err(ProduceError::Unavailable("no Kafka broker is reachable".into()));
        }
        let events = u32::try_from(events).map_err(|_| ProduceError::Overloaded)?;
        self.in_flight.clone().try_acquire_many_owned(events).map_err(|_| ProduceError::Overloaded)
    }

    /// Queues one record (`payload: None` is a tombstone; `partition: None` lets the key
    /// decide; `timestamp_ms: None` is now); the future resolves once the broker acknowledges (or refuses) it.
    pub fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: Option<rdkafka::message::OwnedHeaders>,
        timestamp_ms: Option<i64>,
    ) -> Result<DeliveryFuture, ProduceError> {
        let mut record = record(topic, key, payload, headers);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some(timestamp) = timestamp_ms {
            record = record.timestamp(timestamp);
        }
        self.inner.send_result(record).map_err(|(error, _)| classify(&error))
    }

    /// Waits for a queued record's outcome.
    pub async fn delivered(&self, delivery: DeliveryFuture) -> Result<Delivered, ProduceError> {
        let answer = delivered(delivery).await;
        if answer.is_ok() {
            self.health.mark_up();
        }
        answer
    }

    /// Events currently reserved and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }

    pub fn health(&self) -> &BrokerHealth {
        &self.health
    }

    /// Cluster metadata (blocking: call it off the async runtime).
    pub fn fetch_metadata(
        &self,
        topic: Option<&str>,
        timeout: Duration,
    ) -> Result<rdkafka::metadata::Metadata, KafkaError> {
        self.inner.client().fetch_metadata(topic, timeout)
    }

    /// The cluster's id (blocking: call it off the async runtime).
    pub fn cluster_id(&self, timeout: Duration) -> Option<String> {
        self.inner.client().fetch_cluster_id(timeout)
    }

    /// Waits (blocking) for queued records to be delivered, at shutdown.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(timeout)
    }
}

/// The settings of every Sluice producer: idempotent, `acks=all`, compressed, Java-compatible
/// partitioning, no topic auto-creation.
pub fn producer_config(kafka: &KafkaConfig) -> rdkafka::ClientConfig {
    let mut config = client_config(kafka);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", kafka.compression.as_librdkafka())
        .set("linger.ms", kafka.linger_ms.to_string())
        .set("message.timeout.ms", kafka.delivery_timeout_ms.to_string())
        // murmur2 of the key, as the Java client's default partitioner (keyless: random).
        .set("partitioner", "murmur2_random")
        .set("allow.auto.create.topics", "false");
    config
}

/// A record as rdkafka wants it (`payload: None` is a tombstone).
pub fn record<'a>(
    topic: &'a str,
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    headers: Option<rdkafka::message::OwnedHeaders>,
) -> FutureRecord<'a, [u8], [u8]> {
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(headers) = headers {
        record = record.headers(headers);
    }
    record
}

/// Waits for a queued record's outcome.
pub async fn delivered(delivery: DeliveryFuture) -> Result<Delivered, ProduceError> {
    match delivery.await {
        Ok(Ok(d)) => Ok(Delivered {
            partition: d.partition,
            offset: d.offset,
            timestamp_ms: d.timestamp.to_millis(),
            sizes: None,
        }),
        Ok(Err((error, _))) => Err(classify(&error)),
        Err(_canceled) => Err(ProduceError::Unavailable("the producer shut down".into())),
    }
}

/// Record headers as rdkafka wants them.
pub fn kafka_headers(headers: &[crate::plugin::bindings::Header]) -> Option<rdkafka::message::OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut owned = rdkafka::message::OwnedHeaders::new_with_capacity(headers.len());
    for header in headers {
        owned = owned.insert(rdkafka::message::Header { key: &header.key, value: Some(&header.value) });
    }
    Some(owned)
}
