//! A replicated state kept in a compacted, single-partition Kafka topic: the embedded schema
//! registry and the plugin store are both one of these.
//!
//! Reading: every replica runs a reader thread that folds the topic, record by record, into its
//! state ([`Fold`]). Every replica reads the same log in the same order, so every replica holds
//! the same state; records are keyed so that compaction keeps the latest record per key and the
//! fold over a compacted log is the same state.
//!
//! Writing: a write decides what to append from the state, so two replicas writing at once
//! could decide from the same state and clash. Instead of electing a leader, writers use Kafka's
//! transactional fencing: each write runs in a transaction under one shared `transactional.id`.
//! Initialising a producer with that id fences every older one, so a writer that commits knows
//! nobody else committed since it caught up — anyone who did would have fenced it and its
//! commit would have failed. A fenced writer re-initialises, catches up and tries again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::{Mutex, watch};

const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_ATTEMPTS: usize = 3;
/// Large enough for records of a few MiB (plugin chunks); below most brokers' limits.
const MAX_RECORD_BYTES: &str = "4194304";

/// A state built from a log's records.
pub trait Fold: Default + Send + Sync + 'static {
    /// Folds in one record; `None` is a tombstone. An error skips the record (logged): a replica
    /// must not stop reading because of one record it cannot understand.
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String>;
}

/// Why the log could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LogError(pub String);

impl From<KafkaError> for LogError {
    fn from(error: KafkaError) -> Self {
        LogError(error.to_string())
    }
}

/// What a write decided after looking at the state.
#[allow(missing_debug_implementations)] // holds a closure
pub enum Outcome<T, S> {
    /// Nothing to write (e.g. the schema is already registered).
    Nothing(T),
    Write(Plan<T, S>),
}

/// Records to append in one transaction, and how to recognise them in the state.
#[allow(missing_debug_implementations)] // holds a closure
pub struct Plan<T, S> {
    /// Keys and values (`None` for a tombstone).
    pub records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub result: T,
    /// True once the reader's state shows the write.
    pub applied: Box<dyn Fn(&S) -> bool + Send + Sync>,
}

/// Encodes a record as JSON key and value.
pub fn record<K: serde::Serialize, V: serde::Serialize>(
    key: &K,
    value: Option<&V>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), LogError> {
    let encode = |e: serde_json::Error| LogError(format!("cannot encode a record: {e}"));
    Ok((serde_json::to_vec(key).map_err(encode)?, value.map(serde_json::to_vec).transpose().map_err(encode)?))
}

/// A state replicated through a compacted topic.
pub struct CompactedLog<S: Fold> {
    state: Arc<RwLock<S>>,
    /// Offset of the next record the reader will read.
    position: watch::Receiver<i64>,
    topic: String,
    client: ClientConfig,
    /// For watermark queries.
    meta: Arc<BaseConsumer>,
    writer: Mutex<Option<Arc<BaseProducer>>>,
    stop: Arc<AtomicBool>,
}

impl<S: Fold> std::fmt::Debug for CompactedLog<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactedLog").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl<S: Fold> Drop for CompactedLog<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl<S: Fold> CompactedLog<S> {
    /// Creates the topic if needed, starts the reader and waits until it has read the whole log.
    pub async fn start(client: &ClientConfig, topic: &str) -> Result<Self, LogError> {
        ensure_topic(client, topic, 1, &[("cleanup.policy", "compact"), ("max.message.bytes", MAX_RECORD_BYTES)])
            .await?;
        let state = Arc::new(RwLock::new(S::default()));
        let (position_tx, position) = watch::channel(0);
        let stop = Arc::new(AtomicBool::new(false));
        let reader: BaseConsumer = reader_config(client).create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
        reader.assign(&assignment)?;
        {
            let (state, stop, name) = (state.clone(), stop.clone(), topic.to_owned());
            std::thread::Builder::new()
                .name(format!("sluice-log-{topic}"))
                .spawn(move || read_loop(&reader, &name, &state, &position_tx, &stop))
                .map_err(|e| LogError(format!("cannot start the reader of {topic}: {e}")))?;
        }
        let log = Self {
            state,
            position,
            topic: topic.to_owned(),
            meta: Arc::new(reader_config(client).create()?),
            client: client.clone(),
            writer: Mutex::new(None),
            stop,
        };
        log.catch_up().await?;
        Ok(log)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The state as read so far.
    pub fn read(&self) -> RwLockReadGuard<'_, S> {
        // The state is only changed record by record; a panicking fold cannot tear it.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes whenever the reader moves on: a way to wait for others' writes.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.position.clone()
    }

    /// Waits until every record committed so far has been folded into the state (records of a
    /// transaction still being completed may follow later).
    pub async fn catch_up(&self) -> Result<(), LogError> {
        let (meta, topic) = (self.meta.clone(), self.topic.clone());
        let (_, high) = tokio::task::spawn_blocking(move || {
            // A topic created a moment ago may not have a leader known to this client yet:
            // librdkafka reports that as an unknown topic or partition, or a missing leader.
            let mut attempt = 0;
            loop {
                match meta.fetch_watermarks(&topic, 0, KAFKA_TIMEOUT) {
                    Err(error) if attempt < 50 && is_settling(&error) => {
                        attempt += 1;
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    result => return result,
                }
            }
        })
        .await
        .map_err(|e| LogError(e.to_string()))??;
        let mut position = self.position.clone();
        tokio::time::timeout(CATCH_UP_TIMEOUT, position.wait_for(|p| *p >= high))
            .await
            .map_err(|_| LogError(format!("{} was not read up to offset {high} in time", self.topic)))?
            .map_err(|_| LogError(format!("the reader of {} stopped", self.topic)))?;
        Ok(())
    }

    /// Runs one write: under the writer lock, with the state caught up, let `plan` look at the state and decide
    /// what to write, write it in a transaction, and wait until the reader has folded it in.
    /// A fenced or failed transaction starts over with a fresh writer.
    pub async fn write<T, E: From<LogError>>(&self, plan: impl Fn(&S) -> Result<Outcome<T, S>, E>) -> Result<T, E> {
        let mut writer = self.writer.lock().await;
        let mut last_error = None;
        for _ in 0..WRITE_ATTEMPTS {
            let producer = match writer.as_ref() {
                // Still unfenced: nobody has initialised the shared id since this writer caught
                // up, so nobody else has committed, and its own writes were read back before
                // they returned. The state is current without asking the broker. (Had it been
                // fenced since, the commit below fails and the next attempt starts afresh.)
                Some(producer) => producer.clone(),
                None => {
                    let producer = self.new_writer().await?;
                    *writer = Some(producer.clone());
                    self.catch_up().await?;
                    producer
                }
            };
            let Plan { records, result, applied } = match plan(&self.read())? {
                Outcome::Nothing(result) => return Ok(result),
                Outcome::Write(plan) => plan,
            };
            let topic = self.topic.clone();
            let committed = tokio::task::spawn_blocking(move || {
                producer.begin_transaction()?;
                for (key, value) in &records {
                    let mut record = BaseRecord::<Vec<u8>, Vec<u8>>::to(&topic).key(key);
                    if let Some(value) = value {
                        record = record.payload(value);
                    }
                    producer.send(record).map_err(|(e, _)| e)?;
                }
                flush(&producer)?;
                producer.commit_transaction(KAFKA_TIMEOUT)
            })
            .await
            .map_err(|e| LogError(e.to_string()))?;
            match committed {
                Ok(()) => {
                    self.wait_applied(applied.as_ref()).await?;
                    return Ok(result);
                }
                Err(error) => {
                    // Fenced by another replica, or the cluster failed mid-write: start over
                    // with a fresh producer, which also aborts whatever this one left open.
                    tracing::warn!(topic = self.topic, error = %error, "write failed; retrying with a new writer");
                    *writer = None;
                    last_error = Some(error);
                }
            }
        }
        Err(LogError(format!(
            "could not write to {} after {WRITE_ATTEMPTS} attempts: {}",
            self.topic,
            last_error.map(|e| e.to_string()).unwrap_or_default()
        ))
        .into())
    }

    /// Waits until the reader's state shows a write this replica just committed. The watermark
    /// is no use here: for a read-committed client it is the last stable offset, which can trail
    /// a committed record until the broker has written the commit marker.
    async fn wait_applied(&self, applied: &(dyn Fn(&S) -> bool + Send + Sync)) -> Result<(), LogError> {
        let mut position = self.position.clone();
        let wait = async {
            while !applied(&self.read()) {
                if position.changed().await.is_err() {
                    return Err(LogError(format!("the reader of {} stopped", self.topic)));
                }
            }
            Ok(())
        };
        tokio::time::timeout(CATCH_UP_TIMEOUT, wait)
            .await
            .map_err(|_| LogError(format!("a write to {} was not read back in time", self.topic)))?
    }

    async fn new_writer(&self) -> Result<Arc<BaseProducer>, LogError> {
        let mut config = self.client.clone();
        config
            .set("transactional.id", format!("sluice-log-{}", self.topic))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // One small transaction at a time: nothing to batch, so send at once.
            .set("linger.ms", "0")
            .set("message.max.bytes", MAX_RECORD_BYTES);
        let producer: BaseProducer = config.create()?;
        let producer = Arc::new(producer);
        let init = producer.clone();
        tokio::task::spawn_blocking(move || init.init_transactions(KAFKA_TIMEOUT))
            .await
            .map_err(|e| LogError(e.to_string()))??;
        Ok(producer)
    }
}

/// Waits until the transaction's records are acknowledged. `commit_transaction` flushes too, but
/// rdkafka's flush serves the producer's events in 100 ms polls and so takes at least that long
/// for a single record; polling for a millisecond at a time returns as soon as the broker answers.
fn flush(producer: &BaseProducer) -> Result<(), KafkaError> {
    let deadline = std::time::Instant::now() + KAFKA_TIMEOUT;
    while producer.in_flight_count() > 0 {
        if std::time::Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::MessageTimedOut));
        }
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}

/// Errors a newly created topic gives until its partition leader is known everywhere.
fn is_settling(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
        )
    )
}

fn reader_config(client: &ClientConfig) -> ClientConfig {
    let mut config = client.clone();
    config
        .set("group.id", "sluice-log-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.message.max.bytes", MAX_RECORD_BYTES);
    config
}

fn read_loop<S: Fold>(
    reader: &BaseConsumer,
    topic: &str,
    state: &RwLock<S>,
    position: &watch::Sender<i64>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let mut state = state.write().unwrap_or_else(PoisonError::into_inner);
                if let Err(error) = state.apply(message.key().unwrap_or_default(), message.payload()) {
                    tracing::warn!(topic, offset = message.offset(), error, "skipping an unreadable record");
                }
            }
            Some(Err(error)) => tracing::warn!(topic, error = %error, "log reader error"),
            None => {}
        }
        // Read committed skips transaction markers; the position moves past them as well.
        if let Ok(assigned) = reader.position()
            && let Some(Offset::Offset(next)) = assigned.find_partition(topic, 0).map(|p| p.offset())
        {
            position.send_if_modified(|current| {
                let moved = next > *current;
                if moved {
                    *current = next;
                }
                moved
            });
        }
    }
}

/// Creates a topic of Sluice's own state unless it exists (replication up to 3, as the cluster
/// allows); returns its partition count. Another replica creating it first is fine.
pub async fn ensure_topic(
    client: &ClientConfig,
    topic: &str,
    partitions: i32,
    settings: &[(&str, &str)],
) -> Result<i32, LogError> {
    let probe: BaseConsumer = client.create()?;
    let name = topic.to_owned();
    let metadata = tokio::task::spawn_blocking(move || probe.fetch_metadata(Some(&name), KAFKA_TIMEOUT))
        .await
        .map_err(|e| LogError(e.to_string()))??;
    if let Some(existing) = metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none())
        && !existing.partitions().is_empty()
    {
        return i32::try_from(existing.partitions().len()).map_err(|e| LogError(e.to_string()));
    }
    let replication = i32::try_from(metadata.brokers().len().clamp(1, 3)).unwrap_or(1);
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (key, value) in settings {
        new = new.set(key, value);
    }
    let results = admin.create_topics([&new], &AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT))).await?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, partitions, replication, "created a topic of Sluice's state"),
            // Another replica created it first.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(LogError(format!("cannot create topic {topic}: {code}"))),
        }
    }
    Ok(partitions)
}
