//! `[[transforms]]`: topic-to-topic plugins, exactly once.
//!
//! Each transform consumes its input topics (`read_committed`, consumer group
//! `sluice-transform-{name}`) in batches. A batch is decoded (Confluent-framed records by their
//! schema id, plain JSON as it is), run through the transform's plugins and the output route's
//! validation, encoding and key — the produce pipeline's own stages — and then, in one Kafka
//! transaction: the results are written, records that cannot be transformed go to the dead
//! letter topic with the shared dead-letter headers, and the input offsets are committed with
//! `send_offsets_to_transaction`. Either all of that happens or none of it: a crash, a fenced
//! producer or any error aborts the transaction, and the batch is read again from the last
//! committed offsets by whichever replica holds the partitions then. Each replica's producer
//! has a stable transactional id (`sluice-transform-{name}-{replica_id}`), and the broker fences
//! a zombie by the consumer group's generation, so a batch is never committed twice.
//!
//! With `exactly_once = false` the same loop runs without a transaction: results are
//! acknowledged first, offsets committed after, and a crash in between repeats a batch.

mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, OwnedMessage};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use serde_json::value::RawValue;

use crate::config::{Config, ExactlyOnceConfig, InternalTopics, KafkaConfig, TransformConfig};
use crate::kafka::client_config;
use crate::kafka::dead_letter::DeadLetter;
use crate::kafka::log::{self, CompactedLog, LogError, Outcome, Plan};
use crate::kafka::transactions::{Transaction, Transactions};
use crate::produce::{BatchError, EVENT_ID, Incoming, Pipeline};
use crate::route::Route;

/// Pause after a failed batch before it is read again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The transforms this replica runs: those declared in the file and those created through the
/// admin API (kept in a compacted topic every replica reads). Dropping this stops them.
pub struct Transforms {
    declared: Vec<TransformConfig>,
    store: Option<Arc<CompactedLog<store::Stored>>>,
    kafka: KafkaConfig,
    exactly_once: ExactlyOnceConfig,
    pipeline: Pipeline,
    internal: InternalTopics,
    running: Mutex<HashMap<String, (TransformConfig, tokio::task::JoinHandle<()>)>>,
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Transforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transforms").field("declared", &self.declared.len()).finish_non_exhaustive()
    }
}

impl Drop for Transforms {
    fn drop(&mut self) {
        if let Some(follower) = self.follower.lock().unwrap_or_else(PoisonError::into_inner).take() {
            follower.abort();
        }
        for (_, (_, task)) in self.running.lock().unwrap_or_else(PoisonError::into_inner).drain() {
            task.abort();
        }
    }
}

/// Why the admin API refused a transform change.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("the transform is not valid")]
    Invalid(Vec<(&'static str, String)>),
    #[error("transform '{0}' is declared in the configuration file; change it there")]
    Declared(String),
    #[error("no transform '{0}' was created through the API")]
    NotFound(String),
    #[error("the transform store is unavailable: {0}")]
    Unavailable(String),
}

impl From<LogError> for TransformError {
    fn from(error: LogError) -> Self {
        TransformError::Unavailable(error.0)
    }
}

/// Where a transform comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Config,
    Api,
}

impl Transforms {
    /// Starts the declared transforms and, with a store (`[admin]` configured), those created
    /// through the API, following the store from then on.
    pub async fn start(config: &Config, pipeline: &Pipeline) -> Result<Arc<Self>, LogError> {
        let store = match &config.admin {
            Some(_) => Some(Arc::new(
                CompactedLog::start(&client_config(&config.kafka), &config.exactly_once.transforms_topic).await?,
            )),
            None => None,
        };
        let transforms = Arc::new(Self {
            declared: config.transforms.clone(),
            store,
            kafka: config.kafka.clone(),
            exactly_once: config.exactly_once.clone(),
            pipeline: pipeline.clone(),
            internal: config.internal_topics(),
            running: Mutex::new(HashMap::new()),
            follower: Mutex::new(None),
        });
        transforms.reconcile();
        if let Some(store) = &transforms.store {
            let (mut changes, weak) = (store.watch(), Arc::downgrade(&transforms));
            let follower = tokio::spawn(async move {
                while changes.changed().await.is_ok() {
                    match weak.upgrade() {
                        Some(transforms) => transforms.reconcile(),
                        None => return,
                    }
                }
            });
            *transforms.follower.lock().unwrap_or_else(PoisonError::into_inner) = Some(follower);
        }
        Ok(transforms)
    }

    /// Every transform with where it comes from; declared ones win over stored ones of the
    /// same name.
    pub fn list(&self) -> Vec<(TransformConfig, Source)> {
        let mut all: Vec<(TransformConfig, Source)> =
            self.declared.iter().map(|t| (t.clone(), Source::Config)).collect();
        if let Some(store) = &self.store {
            for stored in store.read().transforms.values() {
                if !self.declared.iter().any(|d| d.name == stored.name) {
                    all.push((stored.clone(), Source::Api));
                }
            }
        }
        all
    }

    /// Starts what should run and is not running (or runs with another configuration), and
    /// stops what should not run.
    fn reconcile(&self) {
        let desired: HashMap<String, TransformConfig> =
            self.list().into_iter().map(|(config, _)| (config.name.clone(), config)).collect();
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.retain(|name, (config, task)| {
            let keep = desired.get(name) == Some(config);
            if !keep {
                tracing::info!(transform = name, "stopping a transform");
                task.abort();
            }
            keep
        });
        for (name, config) in desired {
            if running.contains_key(&name) {
                continue;
            }
            if let Some(task) = self.spawn(&config) {
                tracing::info!(transform = name, "starting a transform");
                running.insert(name, (config, task));
            }
        }
    }

    fn spawn(&self, config: &TransformConfig) -> Option<tokio::task::JoinHandle<()>> {
        let Some(output) = self.pipeline.routes.get(&config.output) else {
            tracing::error!(transform = config.name, output = config.output, "the output is not a route");
            return None;
        };
        let route = Arc::new(Route {
            plugins: config.plugins.clone(),
            on_plugin_error: config.on_plugin_error,
            dead_letter_topic: config.dead_letter_topic.clone(),
            ..Route::clone(&output)
        });
        let producer = config.exactly_once.then(|| {
            let prefix = format!("sluice-transform-{}-{}", config.name, self.exactly_once.replica_id);
            Transactions::named(&self.kafka, &self.exactly_once, prefix, 1)
        });
        let worker = Worker {
            config: config.clone(),
            kafka: self.kafka.clone(),
            pipeline: self.pipeline.clone(),
            route,
            producer,
        };
        Some(tokio::spawn(worker.run()))
    }

    /// Creates or replaces a transform through the API; `true` when it is new.
    pub async fn put(&self, config: TransformConfig) -> Result<bool, TransformError> {
        let store = self.store.as_ref().ok_or_else(|| TransformError::Unavailable("no transform store".into()))?;
        if self.declared.iter().any(|d| d.name == config.name) {
            return Err(TransformError::Declared(config.name));
        }
        let routes = &self.pipeline.routes;
        let plugins = &self.pipeline.plugins;
        let mut problems = config.problems(&|name| routes.contains(name), &|name| plugins.is_declared(name));
        for topic in config.inputs.iter().chain(&config.dead_letter_topic) {
            if self.internal.contains(topic) {
                problems.push(("inputs", format!("'{topic}' is an internal topic (Sluice's own state or Kafka's)")));
            }
        }
        if !problems.is_empty() {
            return Err(TransformError::Invalid(problems));
        }
        let created = store
            .write(|state: &store::Stored| {
                let created = !state.transforms.contains_key(&config.name);
                if state.transforms.get(&config.name) == Some(&config) {
                    return Ok::<_, TransformError>(Outcome::Nothing(false));
                }
                let wanted = config.clone();
                Ok(Outcome::Write(Plan {
                    records: vec![log::record(&config.name, Some(&config))?],
                    result: created,
                    applied: Box::new(move |s: &store::Stored| s.transforms.get(&wanted.name) == Some(&wanted)),
                }))
            })
            .await?;
        self.reconcile();
        Ok(created)
    }

    /// Deletes a transform created through the API.
    pub async fn delete(&self, name: &str) -> Result<(), TransformError> {
        let store = self.store.as_ref().ok_or_else(|| TransformError::Unavailable("no transform store".into()))?;
        if self.declared.iter().any(|d| d.name == name) {
            return Err(TransformError::Declared(name.to_owned()));
        }
        store
            .write(|state: &store::Stored| {
                if !state.transforms.contains_key(name) {
                    return Err(TransformError::NotFound(name.to_owned()));
                }
                let gone = name.to_owned();
                Ok(Outcome::Write(Plan {
                    records: vec![log::record::<_, TransformConfig>(&name, None)?],
                    result: (),
                    applied: Box::new(move |s: &store::Stored| !s.transforms.contains_key(&gone)),
                }))
            })
            .await?;
        self.reconcile();
        Ok(())
    }
}

struct Worker {
    config: TransformConfig,
    kafka: KafkaConfig,
    pipeline: Pipeline,
    /// The output route, with the transform's plugins and dead letter topic.
    route: Arc<Route>,
    /// The transactional producer (`None`: at-least-once).
    producer: Option<Arc<Transactions>>,
}

/// Why a batch was not done; it is read again.
#[derive(Debug, thiserror::Error)]
enum BatchFailed {
    #[error("{0}")]
    Kafka(String),
    #[error(transparent)]
    Pipeline(#[from] BatchError),
    #[error("record {topic}/{partition}@{offset} cannot be transformed and there is no dead_letter_topic: {why}")]
    Stuck { topic: String, partition: i32, offset: i64, why: String },
}

impl Worker {
    async fn run(self) {
        loop {
            let error = match self.consumer() {
                Ok(consumer) => self.session(&consumer).await,
                Err(error) => error,
            };
            tracing::error!(transform = self.config.name, error = %error, "transform batch failed; reading it again");
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    fn consumer(&self) -> Result<StreamConsumer, BatchFailed> {
        let mut config = client_config(&self.kafka);
        config
            .set("group.id", format!("sluice-transform-{}", self.config.name))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000");
        let consumer: StreamConsumer = config.create().map_err(|e| BatchFailed::Kafka(e.to_string()))?;
        let inputs: Vec<&str> = self.config.inputs.iter().map(String::as_str).collect();
        consumer.subscribe(&inputs).map_err(|e| BatchFailed::Kafka(e.to_string()))?;
        Ok(consumer)
    }

    /// Transforms batch after batch until one fails; the consumer is then dropped, so the next
    /// session starts from the committed offsets.
    async fn session(&self, consumer: &StreamConsumer) -> BatchFailed {
        loop {
            let batch = match self.next_batch(consumer).await {
                Ok(batch) => batch,
                Err(error) => return error,
            };
            if let Err(error) = self.transform(consumer, &batch).await {
                return error;
            }
        }
    }

    async fn next_batch(&self, consumer: &StreamConsumer) -> Result<Vec<OwnedMessage>, BatchFailed> {
        let first = consumer.recv().await.map_err(|e| BatchFailed::Kafka(e.to_string()))?.detach();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.config.max_wait_ms);
        while batch.len() < self.config.max_batch {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                Ok(Err(error)) => return Err(BatchFailed::Kafka(error.to_string())),
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    async fn transform(&self, consumer: &StreamConsumer, batch: &[OwnedMessage]) -> Result<(), BatchFailed> {
        // Decode: JSON events for the pipeline, and what cannot be read for the dead letters.
        let mut values = Vec::with_capacity(batch.len());
        let mut origins = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        for (index, record) in batch.iter().enumerate() {
            match self.decode(record).await? {
                Decoded::Event(value) => {
                    values.push(value);
                    origins.push(index);
                }
                Decoded::Tombstone => {}
                Decoded::Unreadable(why) => dead.push((index, why, None)),
            }
        }
        let mut events = Vec::with_capacity(values.len());
        for (value, &index) in values.iter().zip(&origins) {
            let value = serde_json::from_slice::<&RawValue>(value)
                .map_err(|e| BatchFailed::Kafka(format!("a decoded value is not JSON: {e}")))?;
            // The event keeps its id on the way to the output topic.
            let event_id = batch[index].headers().and_then(|headers| {
                headers.iter().find(|h| h.key == EVENT_ID).and_then(|h| std::str::from_utf8(h.value?).ok())
            });
            events.push(Incoming { event_id: event_id.map(str::to_owned), ..Incoming::value(value) });
        }
        let prepared = self.pipeline.prepare(&self.route, &events, &[], &|_| true, &Default::default()).await?;
        for (index, error) in prepared.refusals() {
            if error.kind.is_retriable() {
                return Err(BatchFailed::Kafka(error.message));
            }
            dead.push((origins[index], error.message.clone(), error.plugin.clone()));
        }
        dead.sort_by_key(|(index, _, _)| *index);
        if let (Some((index, why, _)), None) = (dead.first(), &self.config.dead_letter_topic) {
            let record = &batch[*index];
            return Err(BatchFailed::Stuck {
                topic: record.topic().to_owned(),
                partition: record.partition(),
                offset: record.offset(),
                why: why.clone(),
            });
        }
        let offsets = next_offsets(batch).map_err(BatchFailed::Kafka)?;
        match &self.producer {
            Some(producer) => {
                let tx = producer.begin().await.map_err(|e| BatchFailed::Kafka(e.to_string()))?;
                self.dead_letters(Some(&tx), batch, &dead).await?;
                let mut prepared = [prepared];
                self.pipeline.write_in(&tx, &mut prepared).await.map_err(|e| BatchFailed::Kafka(e.to_string()))?;
                let group = consumer
                    .group_metadata()
                    .ok_or_else(|| BatchFailed::Kafka("the consumer has no group metadata".into()))?;
                tx.send_offsets(offsets, group).await.map_err(|e| BatchFailed::Kafka(e.to_string()))?;
                tx.commit().await.map_err(|e| BatchFailed::Kafka(e.to_string()))?;
            }
            None => {
                self.dead_letters(None, batch, &dead).await?;
                let results = self.pipeline.write(prepared).await?;
                if let Some(error) = results.iter().filter_map(|r| r.failure()).find(|e| e.kind.is_retriable()) {
                    return Err(BatchFailed::Kafka(error.message.clone()));
                }
                consumer.commit(&offsets, CommitMode::Sync).map_err(|e| BatchFailed::Kafka(e.to_string()))?;
            }
        }
        crate::telemetry::metrics::metrics().transformed(&self.config.name, batch.len(), dead.len());
        Ok(())
    }

    async fn decode(&self, record: &OwnedMessage) -> Result<Decoded, BatchFailed> {
        let Some(payload) = record.payload() else { return Ok(Decoded::Tombstone) };
        let json = match crate::codec::wire::split(payload) {
            Ok((id, body)) => {
                let codec = match self.pipeline.schemas.by_id(id).await {
                    Ok(codec) => codec,
                    Err(crate::registry::RegistryError::Unavailable(why)) => return Err(BatchFailed::Kafka(why)),
                    Err(other) => return Ok(Decoded::Unreadable(format!("schema {id}: {other}"))),
                };
                match codec.decode_to_json(body) {
                    Ok(json) => json,
                    Err(why) => return Ok(Decoded::Unreadable(format!("schema {id}: {why}"))),
                }
            }
            Err(_) => payload.to_vec(),
        };
        Ok(match serde_json::from_slice::<&RawValue>(&json) {
            Ok(raw) if raw.get().starts_with('{') => Decoded::Event(json),
            Ok(_) => Decoded::Unreadable("the value is not a JSON object".into()),
            Err(e) => Decoded::Unreadable(format!("neither Confluent-framed nor JSON: {e}")),
        })
    }

    /// Writes records that cannot be transformed to the dead letter topic, as they were read.
    async fn dead_letters(
        &self,
        tx: Option<&Transaction>,
        batch: &[OwnedMessage],
        dead: &[(usize, String, Option<String>)],
    ) -> Result<(), BatchFailed> {
        let Some(topic) = &self.config.dead_letter_topic else { return Ok(()) };
        let kafka = |e: crate::kafka::producer::ProduceError| BatchFailed::Kafka(e.to_string());
        let mut pending = Vec::with_capacity(dead.len());
        for (index, reason, plugin) in dead {
            let record = &batch[*index];
            let why = DeadLetter {
                reason,
                original_topic: record.topic(),
                original: Some((record.partition(), record.offset())),
                plugin: plugin.as_deref(),
                ..DeadLetter::default()
            };
            let original = record
                .headers()
                .map(|h| h.iter().map(|h| (h.key, h.value.unwrap_or_default())).collect::<Vec<_>>())
                .unwrap_or_default();
            let headers = why.headers(original);
            let delivery = match tx {
                Some(tx) => tx.send(topic, None, record.key(), record.payload(), Some(headers), None),
                None => self.pipeline.producer.send(topic, None, record.key(), record.payload(), Some(headers), None),
            }
            .map_err(kafka)?;
            pending.push(delivery);
        }
        for delivery in pending {
            match tx {
                Some(tx) => tx.delivered(delivery).await.map_err(kafka)?,
                None => self.pipeline.producer.delivered(delivery).await.map_err(kafka)?,
            };
        }
        Ok(())
    }
}

enum Decoded {
    Event(Vec<u8>),
    Tombstone,
    Unreadable(String),
}

/// The offsets to commit after a batch: one past the last record of each partition.
fn next_offsets(batch: &[OwnedMessage]) -> Result<TopicPartitionList, String> {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for record in batch {
        let entry = next.entry((record.topic(), record.partition())).or_insert(0);
        *entry = (*entry).max(record.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        list.add_partition_offset(topic, partition, Offset::Offset(offset)).map_err(|e| e.to_string())?;
    }
    Ok(list)
}
