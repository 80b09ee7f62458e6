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

use self::state::{ConfigRecord, IdRecord, RecordKey, SchemaRecord, State};
use super::types::{RegistryError, Schema, SubjectVersion, VersionSpec};
use crate::codec::Codec;
use crate::config::KafkaConfig;
use crate::kafka::client_config;
use crate::registry::compat::{self, Mode, Parsed};

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
        let subjects = registry.read().subjects(false).len();
        tracing::info!(topic, subjects, "embedded schema registry loaded");
        Ok(registry)
    }

    /// Waits until every record committed so far has been folded into the state (records of
    /// a transaction still being completed may follow later).
    pub async fn catch_up(&self) -> Result<(), RegistryError> {
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

    /// Runs one write: under the writer lock, catch up, let `plan` look at the state and decide
    /// what to write, write it in a transaction, and wait until the reader has folded it in.
    /// A fenced or failed transaction starts over with a fresh writer.
    async fn write<T>(&self, plan: impl Fn(&State) -> Result<Outcome<T>, RegistryError>) -> Result<T, RegistryError> {
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
                producer.commit_transaction(KAFKA_TIMEOUT)
            })
            .await
            .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
            match committed {
                Ok(()) => {
                    self.wait_applied(&applied).await?;
                    return Ok(result);
                }
                Err(error) => {
                    // Fenced by another replica, or the cluster failed mid-write: start over
                    // with a fresh producer, which also aborts whatever this one left open.
                    tracing::warn!(error = %error, "registry write failed; retrying with a new writer");
                    *writer = None;
                    last_error = Some(error);
                }
            }
        }
        Err(RegistryError::Unavailable(format!(
            "could not write to the registry after {WRITE_ATTEMPTS} attempts: {}",
            last_error.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// Waits until the reader's state shows a write this replica just committed. The watermark
    /// is no use here: for a read-committed client it is the last stable offset, which can trail
    /// a committed record until the broker has written the commit marker.
    async fn wait_applied(&self, applied: &(dyn Fn(&State) -> bool + Send + Sync)) -> Result<(), RegistryError> {
        let mut position = self.position.clone();
        let wait = async {
            while !applied(&self.read()) {
                if position.changed().await.is_err() {
                    return Err(RegistryError::Unavailable("the registry reader stopped".into()));
                }
            }
            Ok(())
        };
        tokio::time::timeout(CATCH_UP_TIMEOUT, wait)
            .await
            .map_err(|_| RegistryError::Unavailable("a registry write was not read back in time".into()))?
    }

    /// Registers a schema under a subject, returning its id (the existing one if the subject
    /// already has this schema). Refused if it breaks the subject's compatibility level.
    pub async fn register(&self, subject: &str, schema: Schema) -> Result<u32, RegistryError> {
        self.write(|state| {
            let references = state.reference_texts(&schema.references)?;
            let parsed =
                Parsed::parse(schema.schema_type, &schema.schema, &references).map_err(RegistryError::InvalidSchema)?;
            Codec::compile_with_references(schema.schema_type, &schema.schema, &references)
                .map_err(RegistryError::InvalidSchema)?;
            let record = match state.plan_register(subject, &schema) {
                Ok(record) => record,
                Err(existing) => return Ok(Outcome::Nothing(existing.id)),
            };
            let mode = state.mode(Some(subject));
            let findings = compat::check(mode, &parsed, &parse_versions(state, &state.live_versions(subject))?);
            if !findings.is_empty() {
                return Err(RegistryError::Incompatible {
                    subject: subject.to_owned(),
                    mode: mode.to_string(),
                    findings: findings.iter().map(ToString::to_string).collect(),
                });
            }
            let (id, version) = (record.id, record.version);
            let mut records = vec![entry(&RecordKey::schema(subject, version), Some(&record))?];
            if id > state.max_id() {
                records.push(entry(&RecordKey::id_counter(), Some(&IdRecord { max_id: id }))?);
            }
            tracing::info!(subject, version, id, "registering schema");
            let subject = subject.to_owned();
            Ok(Outcome::Write(Plan {
                records,
                result: id,
                applied: Box::new(move |s: &State| s.version_state(&subject, version).is_some()),
            }))
        })
        .await
    }

    /// Whether a schema would be accepted by a subject: against `version`, or (`None`) against
    /// the versions its level checks. Returns the reasons it would not.
    pub fn check_compatibility(
        &self,
        subject: &str,
        schema: &Schema,
        version: Option<VersionSpec>,
    ) -> Result<Vec<String>, RegistryError> {
        let state = self.read();
        let references = state.reference_texts(&schema.references)?;
        let parsed =
            Parsed::parse(schema.schema_type, &schema.schema, &references).map_err(RegistryError::InvalidSchema)?;
        let mode = state.mode(Some(subject));
        let findings = match version {
            None => compat::check(mode, &parsed, &parse_versions(&state, &state.live_versions(subject))?),
            Some(spec) => {
                let against = self.version_of(&state, subject, spec)?;
                // One named version: the level's direction, without transitivity.
                let single = match mode {
                    Mode::BackwardTransitive => Mode::Backward,
                    Mode::ForwardTransitive => Mode::Forward,
                    Mode::FullTransitive => Mode::Full,
                    other => other,
                };
                compat::check(single, &parsed, &parse_versions(&state, &[against])?)
            }
        };
        Ok(findings.iter().map(ToString::to_string).collect())
    }

    /// The version of a subject holding this schema (`POST /subjects/{subject}`).
    pub fn lookup(
        &self,
        subject: &str,
        schema: &Schema,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let state = self.read();
        if !state.has_subject(subject, include_deleted) {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        state.lookup(subject, schema, include_deleted).ok_or(RegistryError::SchemaNotFound(0))
    }

    /// Sets the global (`None`) or a subject's compatibility level.
    pub async fn set_mode(&self, subject: Option<&str>, mode: Mode) -> Result<(), RegistryError> {
        let value = ConfigRecord { compatibility_level: mode.to_string() };
        let key = RecordKey::config(subject);
        let subject = subject.map(str::to_owned);
        self.write(|_| {
            let subject = subject.clone();
            Ok(Outcome::Write(Plan {
                records: vec![entry(&key, Some(&value))?],
                result: (),
                applied: Box::new(move |s: &State| match &subject {
                    Some(subject) => s.subject_mode(subject) == Some(mode),
                    None => s.mode(None) == mode,
                }),
            }))
        })
        .await
    }

    /// Removes a subject's own level, returning it; the global level applies again.
    pub async fn delete_subject_mode(&self, subject: &str) -> Result<Mode, RegistryError> {
        self.write(|state| {
            let previous =
                state.subject_mode(subject).ok_or_else(|| RegistryError::SubjectConfigNotFound(subject.to_owned()))?;
            let subject = subject.to_owned();
            Ok(Outcome::Write(Plan {
                records: vec![entry::<ConfigRecord>(&RecordKey::config(Some(&subject)), None)?],
                result: previous,
                applied: Box::new(move |s: &State| s.subject_mode(&subject).is_none()),
            }))
        })
        .await
    }

    /// The level that applies to a subject (or, for `None`, the global level).
    pub fn mode(&self, subject: Option<&str>) -> Mode {
        self.read().mode(subject)
    }

    /// A subject's own level, if it has one.
    pub fn subject_mode(&self, subject: &str) -> Option<Mode> {
        self.read().subject_mode(subject)
    }

    /// Deletes one version: soft (hidden, id still resolvable), or permanent once soft-deleted.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        self.write(|state| {
            let found = self.version_of(state, subject, spec).or_else(|error| match spec {
                // A soft-deleted version can be named for its permanent delete.
                VersionSpec::Number(n) if permanent => state.subject_version(subject, Some(n), true).ok_or(error),
                _ => Err(error),
            })?;
            let version = found.version;
            let current = state
                .version_state(subject, version)
                .ok_or_else(|| RegistryError::VersionNotFound { subject: subject.to_owned(), version: spec })?;
            let referencing = state.referenced_by(subject, version);
            if !referencing.is_empty() {
                return Err(RegistryError::ReferencedBy { subject: subject.to_owned(), version, ids: referencing });
            }
            let key = RecordKey::schema(subject, version);
            let subject_name = subject.to_owned();
            if permanent {
                if !current.deleted {
                    return Err(RegistryError::VersionNotSoftDeleted { subject: subject.to_owned(), version });
                }
                return Ok(Outcome::Write(Plan {
                    records: vec![entry::<SchemaRecord>(&key, None)?],
                    result: version,
                    applied: Box::new(move |s: &State| s.version_state(&subject_name, version).is_none()),
                }));
            }
            let record = soft_deleted(&found);
            Ok(Outcome::Write(Plan {
                records: vec![entry(&key, Some(&record))?],
                result: version,
                applied: Box::new(move |s: &State| s.version_state(&subject_name, version).is_some_and(|v| v.deleted)),
            }))
        })
        .await
    }

    /// Deletes every version of a subject: soft, or permanent once all are soft-deleted. Returns
    /// the versions deleted.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>, RegistryError> {
        self.write(|state| {
            let all =
                state.versions(subject, true).ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
            let live = state.versions(subject, false).unwrap_or_default();
            for version in &all {
                let referencing = state.referenced_by(subject, *version);
                if !referencing.is_empty() {
                    return Err(RegistryError::ReferencedBy {
                        subject: subject.to_owned(),
                        version: *version,
                        ids: referencing,
                    });
                }
            }
            let subject_name = subject.to_owned();
            if permanent {
                if !live.is_empty() {
                    return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
                }
                let mut records = all
                    .iter()
                    .map(|v| entry::<SchemaRecord>(&RecordKey::schema(subject, *v), None))
                    .collect::<Result<Vec<_>, _>>()?;
                if state.subject_mode(subject).is_some() {
                    records.push(entry::<ConfigRecord>(&RecordKey::config(Some(subject)), None)?);
                }
                return Ok(Outcome::Write(Plan {
                    records,
                    result: all,
                    applied: Box::new(move |s: &State| !s.has_subject(&subject_name, true)),
                }));
            }
            if live.is_empty() {
                return Err(RegistryError::SubjectNotFound(subject.to_owned()));
            }
            let records = live
                .iter()
                .filter_map(|v| state.subject_version(subject, Some(*v), false))
                .map(|found| entry(&RecordKey::schema(subject, found.version), Some(&soft_deleted(&found))))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Outcome::Write(Plan {
                records,
                result: live,
                applied: Box::new(move |s: &State| !s.has_subject(&subject_name, false)),
            }))
        })
        .await
    }

    pub fn schema_by_id(&self, id: u32) -> Result<Schema, RegistryError> {
        self.read().schema(id).cloned().ok_or(RegistryError::SchemaNotFound(id))
    }

    pub fn subject_version(&self, subject: &str, version: VersionSpec) -> Result<SubjectVersion, RegistryError> {
        self.version_of(&self.read(), subject, version)
    }

    /// Like [`Self::subject_version`], optionally finding soft-deleted versions.
    pub fn subject_version_including_deleted(
        &self,
        subject: &str,
        version: VersionSpec,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let state = self.read();
        match version {
            VersionSpec::Number(n) if include_deleted => {
                state.subject_version(subject, Some(n), true).ok_or_else(|| not_found(&state, subject, version))
            }
            _ => self.version_of(&state, subject, version),
        }
    }

    fn version_of(&self, state: &State, subject: &str, version: VersionSpec) -> Result<SubjectVersion, RegistryError> {
        let number = match version {
            VersionSpec::Latest => None,
            VersionSpec::Number(n) => Some(n),
        };
        state.subject_version(subject, number, false).ok_or_else(|| not_found(state, subject, version))
    }

    pub fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.read().subjects(include_deleted)
    }

    pub fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<u32>, RegistryError> {
        self.read().versions(subject, include_deleted).ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))
    }

    /// Ids of live schemas that reference a version (`GET …/referencedby`).
    pub fn referenced_by(&self, subject: &str, version: VersionSpec) -> Result<Vec<u32>, RegistryError> {
        let state = self.read();
        let found = self.version_of(&state, subject, version)?;
        Ok(state.referenced_by(subject, found.version))
    }

    /// The texts of the schemas a reference list names, dependencies first.
    pub fn reference_texts(
        &self,
        references: &[crate::registry::types::Reference],
    ) -> Result<Vec<String>, RegistryError> {
        self.read().reference_texts(references)
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

/// What a write decided after looking at the state.
enum Outcome<T> {
    /// Nothing to write (e.g. the schema is already registered).
    Nothing(T),
    Write(Plan<T>),
}

type Applied = Box<dyn Fn(&State) -> bool + Send + Sync>;

struct Plan<T> {
    /// Keys and values (`None` for a tombstone), written in one transaction.
    records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    result: T,
    /// True once the reader's state shows the write.
    applied: Applied,
}

fn entry<V: serde::Serialize>(key: &RecordKey, value: Option<&V>) -> Result<(Vec<u8>, Option<Vec<u8>>), RegistryError> {
    let encode = |e: serde_json::Error| RegistryError::Unavailable(format!("cannot encode a registry record: {e}"));
    Ok((serde_json::to_vec(key).map_err(encode)?, value.map(serde_json::to_vec).transpose().map_err(encode)?))
}

fn soft_deleted(found: &SubjectVersion) -> SchemaRecord {
    SchemaRecord {
        subject: found.subject.clone(),
        version: found.version,
        id: found.id,
        schema: found.schema.clone(),
        schema_type: found.schema_type,
        references: found.references.clone(),
        deleted: true,
    }
}

fn not_found(state: &State, subject: &str, version: VersionSpec) -> RegistryError {
    if state.has_subject(subject, false) {
        RegistryError::VersionNotFound { subject: subject.to_owned(), version }
    } else {
        RegistryError::SubjectNotFound(subject.to_owned())
    }
}

/// Parses versions for a compatibility check, with their references.
fn parse_versions(state: &State, versions: &[SubjectVersion]) -> Result<Vec<(u32, Parsed)>, RegistryError> {
    versions
        .iter()
        .map(|v| {
            let references = state.reference_texts(&v.references)?;
            Parsed::parse(v.schema_type, &v.schema, &references).map(|parsed| (v.version, parsed)).map_err(|e| {
                RegistryError::InvalidSchema(format!(
                    "stored version {} of '{}' no longer parses: {e}",
                    v.version, v.subject
                ))
            })
        })
        .collect()
}

/// Errors a newly created topic gives until its partition leader is known everywhere.
fn is_settling(error: &rdkafka::error::KafkaError) -> bool {
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
