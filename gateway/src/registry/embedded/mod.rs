//! Sluice's own schema registry, stored in a compacted single-partition Kafka topic.
//!
//! Reading: every replica runs a reader thread that folds the topic into [`state::State`].
//!
//! Writing: ids and versions must be assigned by one writer at a time, or two replicas could
//! hand out the same id. Instead of electing a leader, writers use Kafka's transactional fencing:
//! each write runs in a transaction under one shared `transactional.id`. Initialising a producer
//! with that id fences every older one, so a writer that commits successfully knows nobody else
//! committed since it caught up with the log — anyone who did would have fenced it, and its
//! commit would have failed. A fenced writer re-initialises, catches up and tries again.

pub mod api;
pub mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::{Mutex, watch};

use self::state::{RecordKey, SCHEMA_KEYTYPE, State};
use super::types::{RegistryError, Schema, SubjectVersion, VersionSpec};
use crate::codec::Codec;
use crate::config::KafkaConfig;
use crate::kafka::client_config;

const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_ATTEMPTS: usize = 3;

/// The embedded registry of one gateway process.
pub struct EmbeddedRegistry {
    state: Arc<RwLock<State>>,
    /// Offset of the next record the reader will read; a write is visible once this passes it.
    position: watch::Receiver<i64>,
    topic: String,
    client: ClientConfig,
    /// For watermark queries.
    meta: Arc<BaseConsumer>,
    writer: Mutex<Option<Arc<BaseProducer>>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for EmbeddedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedRegistry").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl Drop for EmbeddedRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl EmbeddedRegistry {
    /// Creates the topic if needed, starts the reader and waits until it has read the whole log.
    pub async fn start(kafka: &KafkaConfig, topic: &str) -> Result<Arc<Self>, RegistryError> {
        let client = client_config(kafka);
        ensure_topic(&client, topic).await?;

        let state = Arc::new(RwLock::new(State::default()));
        let (position_tx, position) = watch::channel(0);
        let stop = Arc::new(AtomicBool::new(false));
        let reader: BaseConsumer = reader_config(&client).create().map_err(unavailable)?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, 0, Offset::Beginning).map_err(unavailable)?;
        reader.assign(&assignment).map_err(unavailable)?;
        {
            let (state, stop, topic) = (state.clone(), stop.clone(), topic.to_owned());
            std::thread::Builder::new()
                .name("sluice-registry-reader".into())
                .spawn(move || read_loop(&reader, &topic, &state, &position_tx, &stop))
                .map_err(|e| RegistryError::Unavailable(format!("cannot start the registry reader: {e}")))?;
        }
        let registry = Arc::new(Self {
            state,
            position,
            topic: topic.to_owned(),
            meta: Arc::new(reader_config(&client).create().map_err(unavailable)?),
            client,
            writer: Mutex::new(None),
            stop,
        });
        registry.catch_up().await?;
        let subjects = registry.read().subjects().count();
        tracing::info!(topic, subjects, "embedded schema registry loaded");
        Ok(registry)
    }

    /// Waits until every record committed so far has been folded into the state (records of
    /// a transaction still being completed may follow later).
    pub async fn catch_up(&self) -> Result<(), RegistryError> {
        let (meta, topic) = (self.meta.clone(), self.topic.clone());
        let (_, high) = tokio::task::spawn_blocking(move || {
            // A topic created a moment ago may not be known to the broker answering yet.
            let mut attempt = 0;
            loop {
                match meta.fetch_watermarks(&topic, 0, KAFKA_TIMEOUT) {
                    Err(error)
                        if attempt < 10
                            && error.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownTopicOrPartition) =>
                    {
                        attempt += 1;
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    result => return result,
                }
            }
        })
        .await
        .map_err(|e| RegistryError::Unavailable(e.to_string()))?
        .map_err(unavailable)?;
        let mut position = self.position.clone();
        tokio::time::timeout(CATCH_UP_TIMEOUT, position.wait_for(|p| *p >= high))
            .await
            .map_err(|_| {
                RegistryError::Unavailable(format!("the registry topic was not read up to offset {high} in time"))
            })?
            .map_err(|_| RegistryError::Unavailable("the registry reader stopped".into()))?;
        Ok(())
    }

    /// Waits until the reader has folded in a version this replica just committed. The
    /// watermark is no use here: for a read-committed client it is the last stable offset, which
    /// can trail a committed record until the broker has written the commit marker.
    async fn wait_applied(&self, subject: &str, version: u32) -> Result<(), RegistryError> {
        let mut position = self.position.clone();
        let applied = async {
            while self.read().subject_version(subject, Some(version)).is_none() {
                if position.changed().await.is_err() {
                    return Err(RegistryError::Unavailable("the registry reader stopped".into()));
                }
            }
            Ok(())
        };
        tokio::time::timeout(CATCH_UP_TIMEOUT, applied).await.map_err(|_| {
            RegistryError::Unavailable(format!("the new version of '{subject}' was not read back in time"))
        })?
    }

    /// Registers a schema under a subject, returning its id (the existing one if the subject
    /// already has this schema).
    pub async fn register(&self, subject: &str, schema: Schema) -> Result<u32, RegistryError> {
        if !schema.references.is_empty() {
            return Err(RegistryError::InvalidSchema(
                "schema references are not supported by the embedded registry yet".into(),
            ));
        }
        Codec::compile(schema.schema_type, &schema.schema).map_err(RegistryError::InvalidSchema)?;
        let mut writer = self.writer.lock().await;
        let mut last_error = None;
        for _ in 0..WRITE_ATTEMPTS {
            let producer = match writer.as_ref() {
                Some(producer) => producer.clone(),
                None => {
                    let producer = self.new_writer().await?;
                    *writer = Some(producer.clone());
                    producer
                }
            };
            self.catch_up().await?;
            let plan = match self.read().plan_register(subject, &schema) {
                Ok(plan) => plan,
                Err(existing) => return Ok(existing),
            };
            let key = serde_json::to_vec(&RecordKey {
                keytype: SCHEMA_KEYTYPE.into(),
                subject: plan.subject.clone(),
                version: plan.version,
            })
            .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
            let value = serde_json::to_vec(&plan).map_err(|e| RegistryError::Unavailable(e.to_string()))?;
            let topic = self.topic.clone();
            let committed = tokio::task::spawn_blocking(move || {
                producer.begin_transaction()?;
                producer.send(BaseRecord::to(&topic).key(&key).payload(&value)).map_err(|(e, _)| e)?;
                producer.commit_transaction(KAFKA_TIMEOUT)
            })
            .await
            .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
            match committed {
                Ok(()) => {
                    self.wait_applied(subject, plan.version).await?;
                    tracing::info!(subject, version = plan.version, id = plan.id, "schema registered");
                    return Ok(plan.id);
                }
                Err(error) => {
                    // Fenced by another replica, or the cluster failed mid-write: start over
                    // with a fresh producer, which also aborts whatever this one left open.
                    tracing::warn!(subject, error = %error, "schema write failed; retrying with a new writer");
                    *writer = None;
                    last_error = Some(error);
                }
            }
        }
        Err(RegistryError::Unavailable(format!(
            "could not write the schema after {WRITE_ATTEMPTS} attempts: {}",
            last_error.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    pub fn schema_by_id(&self, id: u32) -> Result<Schema, RegistryError> {
        self.read().schema(id).cloned().ok_or(RegistryError::SchemaNotFound(id))
    }

    pub fn subject_version(&self, subject: &str, version: VersionSpec) -> Result<SubjectVersion, RegistryError> {
        let state = self.read();
        let number = match version {
            VersionSpec::Latest => None,
            VersionSpec::Number(n) => Some(n),
        };
        state.subject_version(subject, number).ok_or_else(|| {
            if state.has_subject(subject) {
                RegistryError::VersionNotFound { subject: subject.to_owned(), version }
            } else {
                RegistryError::SubjectNotFound(subject.to_owned())
            }
        })
    }

    pub fn subjects(&self) -> Vec<String> {
        self.read().subjects().cloned().collect()
    }

    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        self.read().versions(subject).ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))
    }

    async fn new_writer(&self) -> Result<Arc<BaseProducer>, RegistryError> {
        let mut config = self.client.clone();
        config
            .set("transactional.id", format!("sluice-registry-{}", self.topic))
            .set("enable.idempotence", "true")
            .set("acks", "all");
        let producer: BaseProducer = config.create().map_err(unavailable)?;
        let producer = Arc::new(producer);
        let init = producer.clone();
        tokio::task::spawn_blocking(move || init.init_transactions(KAFKA_TIMEOUT))
            .await
            .map_err(|e| RegistryError::Unavailable(e.to_string()))?
            .map_err(unavailable)?;
        Ok(producer)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // The state is only replaced record by record; a panicking writer cannot tear it.
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn unavailable(error: rdkafka::error::KafkaError) -> RegistryError {
    RegistryError::Unavailable(error.to_string())
}

fn reader_config(client: &ClientConfig) -> ClientConfig {
    let mut config = client.clone();
    config
        .set("group.id", "sluice-registry-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed");
    config
}

fn read_loop(
    reader: &BaseConsumer,
    topic: &str,
    state: &RwLock<State>,
    position: &watch::Sender<i64>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let mut state = state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Err(error) = state.apply(message.key().unwrap_or_default(), message.payload()) {
                    tracing::warn!(topic, offset = message.offset(), error, "skipping an unreadable registry record");
                }
            }
            Some(Err(error)) => tracing::warn!(topic, error = %error, "registry reader error"),
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

/// Creates the registry topic (one partition, compacted) unless it exists.
async fn ensure_topic(client: &ClientConfig, topic: &str) -> Result<(), RegistryError> {
    let probe: BaseConsumer = client.create().map_err(unavailable)?;
    let name = topic.to_owned();
    let metadata = tokio::task::spawn_blocking(move || probe.fetch_metadata(Some(&name), KAFKA_TIMEOUT))
        .await
        .map_err(|e| RegistryError::Unavailable(e.to_string()))?
        .map_err(unavailable)?;
    if metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()) {
        return Ok(());
    }
    let replication = i32::try_from(metadata.brokers().len().clamp(1, 3)).unwrap_or(1);
    let admin: AdminClient<DefaultClientContext> = client.create().map_err(unavailable)?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(replication)).set("cleanup.policy", "compact");
    let results = admin
        .create_topics([&new], &AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT)))
        .await
        .map_err(unavailable)?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, replication, "created the schema registry topic"),
            // Another replica created it first.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(RegistryError::Unavailable(format!("cannot create topic {topic}: {code}"))),
        }
    }
    Ok(())
}
