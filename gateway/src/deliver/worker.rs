//! One subscription's delivery on one replica: a consumer in the subscription's group, per-key
//! queues, concurrent signed deliveries, and offsets committed only below the lowest record
//! without an outcome.
//!
//! Ordering: records with the same key (per partition) wait in a queue; only the head of a
//! queue is in flight, so a key's events arrive in order while other keys go ahead, up to the
//! subscription's concurrency. In `partition` ordering a partition is one queue. Keyless
//! records are independent of each other.
//!
//! No loss: a partition's committed offset is the lowest offset still waiting for an outcome
//! (delivered, skipped, dropped or dead-lettered). A replica that dies mid-delivery leaves the
//! offset below the record, so whoever takes the partition delivers it again with the same
//! `webhook-id`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as Atomic};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Headers as _, OwnedHeaders, OwnedMessage};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tracing::Instrument as _;

use super::sign::{Secret, signature};
use super::spec::{Ordering, Start, SubscriptionSpec};
use crate::config::KafkaConfig;
use crate::kafka::client_config;
use crate::kafka::producer::Producer;
use crate::plugin::bindings::{Decision, Delivery as PluginDelivery, Event, Failure, Header, Hooks};
use crate::plugin::store::Plugins;
use crate::registry::SchemaCache;
use crate::telemetry::trace;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};

/// How long the buffer may stay full before the partitions are paused. Until then the consumer
/// is simply not polled (librdkafka's bounded prefetch queue holds what was fetched); pausing
/// throws that prefetch away and costs a refetch on resume, which stalled deliveries when done
/// on every brief fill, but a consumer that is not polled serves no rebalance and eventually
/// leaves its group — so a subscriber that stays slow gets its partitions paused instead.
const PAUSE_AFTER: Duration = Duration::from_secs(2);
/// How often done offsets are committed.
const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// How much of a subscriber's 2xx answer is read (and discarded) before its connection is
/// dropped instead.
const MAX_ANSWER_BYTES: usize = 64 << 10;
/// Records taken from the consumer at once when more are ready.
const BATCH: usize = 256;

/// What a replica needs to deliver.
#[derive(Debug, Clone)]
pub struct Deps {
    pub kafka: KafkaConfig,
    pub guard: super::guard::Guard,
    pub producer: Producer,
    pub schemas: Arc<SchemaCache>,
    pub plugins: Arc<Plugins>,
    pub http: reqwest::Client,
    /// Records buffered per subscription before the worker stops taking more from the consumer.
    pub max_buffered: usize,
    /// Kilobytes librdkafka may prefetch per subscription consumer.
    pub max_prefetch_kbytes: usize,
    /// Spans for delivery attempts, and the trace context passed to subscribers.
    pub tracing: trace::Tracing,
    /// Encrypts the signing secrets of API-created subscriptions in the store.
    pub sealer: Arc<super::seal::Sealer>,
    /// Topics no subscription may read or dead-letter to.
    pub internal: crate::config::InternalTopics,
    /// Subscriptions the API may create.
    pub max_subscriptions: usize,
}

/// Counters and the last error, for the status API.
#[derive(Debug, Default)]
pub struct Stats {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub skipped: AtomicU64,
    pub in_flight: AtomicUsize,
    /// Records taken from Kafka and waiting for an outcome here.
    pub buffered: AtomicUsize,
    /// Whether fetching is paused because the subscriber is not keeping up.
    pub paused: AtomicBool,
    pub last_error: Mutex<Option<String>>,
    /// The partitions this replica holds now.
    pub assigned: Mutex<BTreeSet<TopicPartition>>,
}

/// How a record got its outcome.
#[derive(Debug, Clone, Copy)]
enum Handled {
    Delivered,
    /// By a plugin, or a tombstone.
    Skipped,
    /// By the failure hook.
    Dropped,
    DeadLettered,
}

impl Stats {
    /// Counts an outcome here (for the status API) and in the metrics.
    fn handled(&self, subscription: &str, how: Handled) {
        let (counter, label) = match how {
            Handled::Delivered => (&self.delivered, "delivered"),
            Handled::Skipped => (&self.skipped, "skipped"),
            Handled::Dropped => (&self.skipped, "dropped"),
            Handled::DeadLettered => (&self.dead_lettered, "dead_lettered"),
        };
        counter.fetch_add(1, Atomic::Relaxed);
        crate::telemetry::metrics::metrics().delivery_outcome(subscription, label);
    }

    fn error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    /// The partitions this replica holds now, by topic.
    pub fn assignment(&self) -> BTreeMap<String, Vec<i32>> {
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in self.assigned.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            by_topic.entry(topic.clone()).or_default().push(*partition);
        }
        by_topic
    }

    fn track(&self, list: &TopicPartitionList, held: bool) {
        let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        for element in list.elements() {
            let partition = (element.topic().to_owned(), element.partition());
            if held {
                assigned.insert(partition);
            } else {
                assigned.remove(&partition);
            }
        }
    }
}

/// Why a worker stopped on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop.
    Stopped,
    /// The subscriber answered 410 Gone: the subscription must be disabled.
    Gone(String),
    /// The consumer could not be created.
    Failed(String),
}

type TopicPartition = (String, i32);

/// Offsets seen and still waiting, per owned partition: the commit position comes from here.
#[derive(Debug, Default)]
struct Tracker {
    partitions: HashMap<TopicPartition, PartitionState>,
}

#[derive(Debug)]
struct PartitionState {
    pending: BTreeSet<i64>,
    /// One past the highest offset seen.
    next: i64,
    committed: i64,
}

impl PartitionState {
    fn safe(&self) -> i64 {
        self.pending.first().copied().unwrap_or(self.next)
    }
}

impl Tracker {
    /// Offsets that can be committed now (and marks them committed).
    fn committable(&mut self, only: Option<&[TopicPartition]>) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), state) in &mut self.partitions {
            if only.is_some_and(|only| !only.contains(&(topic.clone(), *partition))) {
                continue;
            }
            let safe = state.safe();
            if safe > state.committed && list.add_partition_offset(topic, *partition, Offset::Offset(safe)).is_ok() {
                state.committed = safe;
            }
        }
        list
    }
}

/// Commits a revoked partition's done offsets before it moves to another replica.
struct Context {
    tracker: Arc<Mutex<Tracker>>,
    stats: Arc<Stats>,
    name: String,
}

/// How often librdkafka reports statistics, whose per-partition lag the metrics show.
const STATISTICS_INTERVAL: &str = "5000";

impl ClientContext for Context {
    /// The lag of the partitions this replica holds (librdkafka's high watermark minus the
    /// committed offset); the other replicas report theirs.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let held = self.stats.assigned.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let lag = &crate::telemetry::metrics::metrics().consumer_lag;
        for (topic, details) in &statistics.topics {
            for (partition, p) in &details.partitions {
                if !held.contains(&(topic.clone(), *partition)) || p.hi_offset < 0 {
                    continue;
                }
                let behind = if p.committed_offset >= 0 { p.hi_offset - p.committed_offset } else { p.consumer_lag };
                lag.get_or_create(&lag_labels(&self.name, topic, *partition)).set(behind.max(0));
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            self.stats.track(revoked, false);
            let gone: Vec<TopicPartition> =
                revoked.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
            let mut tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
            let offsets = tracker.committable(Some(&gone));
            for partition in &gone {
                tracker.partitions.remove(partition);
            }
            drop(tracker);
            forget_lag(&self.name, &gone);
            if offsets.count() > 0
                && let Err(error) = consumer.commit(&offsets, CommitMode::Sync)
            {
                tracing::warn!(subscription = self.name, error = %error, "commit at revoke failed; the records will be redelivered");
            }
            tracing::info!(subscription = self.name, partitions = gone.len(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            self.stats.track(assigned, true);
            tracing::info!(subscription = self.name, partitions = assigned.count(), "partitions assigned");
            let _ = consumer;
        }
    }
}

/// A record waiting in its key's queue.
struct Item {
    record: OwnedMessage,
}

/// The outcome of one record.
#[derive(Debug)]
enum Outcome {
    /// Delivered, skipped, dropped or dead-lettered: its offset may be committed.
    Done,
    /// 410 Gone.
    Gone(String),
    /// Stopped before an outcome (shutdown or revocation): not committed.
    Aborted,
}

/// Runs the subscription until `stop` is set; returns why it ended.
pub async fn run(
    spec: Arc<SubscriptionSpec>,
    generation: u64,
    deps: Deps,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) -> Exit {
    // Checked at creation too; again here for subscriptions from the config file, and because
    // names can resolve elsewhere by now.
    if let Err(reason) = deps.guard.check_url(&spec.url).await {
        stats.error(reason.clone());
        return Exit::Failed(reason);
    }
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let consumer = match consumer(&spec, &deps, tracker.clone(), stats.clone()) {
        Ok(consumer) => Arc::new(consumer),
        Err(error) => return Exit::Failed(error),
    };
    let Ok(url) = reqwest::Url::parse(&spec.url) else {
        return Exit::Failed(format!("'{}' is not a URL", spec.url));
    };
    // Parsed once: per request, parsing the URL cost more than signing the body.
    let target = Arc::new(Target { url, secrets: spec.parsed_secrets() });
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(QueueKey, TopicPartition, i64, Outcome)>();
    let mut queues: HashMap<QueueKey, VecDeque<Item>> = HashMap::new();
    let mut ready: VecDeque<QueueKey> = VecDeque::new();
    let mut in_flight = 0usize;
    let mut buffered = 0usize;
    let mut paused = false;
    let mut full_since: Option<tokio::time::Instant> = None;
    let mut commit_tick = tokio::time::interval(COMMIT_EVERY);
    let mut exit = Exit::Stopped;

    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            Some((key, partition, offset, outcome)) = done_rx.recv() => {
                in_flight -= 1;
                stats.in_flight.store(in_flight, Atomic::Relaxed);
                match outcome {
                    Outcome::Done => {
                        let mut tracker = tracker.lock().unwrap_or_else(PoisonError::into_inner);
                        if let Some(state) = tracker.partitions.get_mut(&partition) {
                            state.pending.remove(&offset);
                        }
                    }
                    Outcome::Gone(reason) => {
                        exit = Exit::Gone(reason);
                        break;
                    }
                    Outcome::Aborted => {}
                }
                if let Some(queue) = queues.get_mut(&key) {
                    queue.pop_front();
                    buffered -= 1;
                    if queue.is_empty() {
                        queues.remove(&key);
                    } else {
                        ready.push_back(key);
                    }
                }
            }
            _ = tokio::time::sleep_until(full_since.unwrap_or_else(tokio::time::Instant::now) + PAUSE_AFTER),
                if full_since.is_some() && !paused =>
            {
                paused = consumer.assignment().and_then(|a| consumer.pause(&a)).is_ok();
                tracing::debug!(subscription = spec.name, buffered, "buffer full for {PAUSE_AFTER:?}: partitions paused");
            }
            message = consumer.recv(), if full_since.is_none() || paused => {
                let mut batch = Vec::with_capacity(BATCH);
                match message {
                    Ok(message) => batch.push(message.detach()),
                    Err(error) => {
                        tracing::warn!(subscription = spec.name, error = %error, "consumer error");
                        stats.error(format!("consumer: {error}"));
                    }
                }
                // Take whatever else is ready now, so work arrives in batches, within the buffer.
                let room = deps.max_buffered.saturating_sub(buffered).clamp(1, BATCH);
                while batch.len() < room {
                    match consumer.recv().now_or_never() {
                        Some(Ok(message)) => batch.push(message.detach()),
                        _ => break,
                    }
                }
                if paused && !batch.is_empty() {
                    // From partitions assigned since the pause: pause those too.
                    let _ = consumer.assignment().and_then(|a| consumer.pause(&a));
                }
                let mut tracker_guard = tracker.lock().unwrap_or_else(PoisonError::into_inner);
                for record in batch {
                    let partition = (record.topic().to_owned(), record.partition());
                    let state = tracker_guard.partitions.entry(partition).or_insert_with(|| PartitionState {
                        pending: BTreeSet::new(),
                        next: record.offset(),
                        committed: record.offset(),
                    });
                    state.pending.insert(record.offset());
                    state.next = state.next.max(record.offset() + 1);
                    let key = QueueKey::of(&record, spec.ordering);
                    let queue = queues.entry(key.clone()).or_default();
                    if queue.is_empty() {
                        ready.push_back(key);
                    }
                    queue.push_back(Item { record });
                    buffered += 1;
                }
            }
            _ = commit_tick.tick() => commit(&consumer, &tracker, CommitMode::Async, &spec.name),
        }
        // Start deliveries for keys whose head is not in flight.
        while in_flight < spec.concurrency {
            let Some(key) = ready.pop_front() else { break };
            let Some(item) = queues.get(&key).and_then(VecDeque::front) else { continue };
            // A partition revoked meanwhile belongs to another replica now, which delivers
            // from the committed offset: drop what is queued for it here.
            let owned = tracker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .partitions
                .contains_key(&(item.record.topic().to_owned(), item.record.partition()));
            if !owned {
                if let Some(queue) = queues.remove(&key) {
                    buffered -= queue.len();
                }
                continue;
            }
            in_flight += 1;
            let record = item.record.clone();
            let (spec, deps, target, stats, done, stop) =
                (spec.clone(), deps.clone(), target.clone(), stats.clone(), done_tx.clone(), stop.clone());
            tokio::spawn(async move {
                let partition = (record.topic().to_owned(), record.partition());
                let offset = record.offset();
                // The producer's trace context, read once: each attempt's span continues it, and
                // log lines about this event carry its trace id.
                let context = trace::extract(
                    record.headers().into_iter().flat_map(|h| h.iter()).map(|h| (h.key, h.value.unwrap_or_default())),
                );
                let span = trace::log_span(trace::LogPath::Deliver, &context).unwrap_or_else(tracing::Span::none);
                let incoming = Incoming { record, context };
                let outcome = handle(&spec, generation, &deps, &target, &stats, incoming, stop).instrument(span).await;
                let _ = done.send((key, partition, offset, outcome));
            });
        }
        stats.in_flight.store(in_flight, Atomic::Relaxed);
        stats.buffered.store(buffered, Atomic::Relaxed);
        // Back-pressure: stop taking records while too much is buffered (see `PAUSE_AFTER`).
        // `assignment()` is a round trip to librdkafka's main thread: only when needed.
        if buffered >= deps.max_buffered {
            full_since.get_or_insert_with(tokio::time::Instant::now);
        } else if !paused {
            full_since = None;
        } else if buffered < deps.max_buffered / 2 {
            paused = consumer.assignment().and_then(|a| consumer.resume(&a)).is_err();
            full_since = None;
        }
        stats.paused.store(paused, Atomic::Relaxed);
    }
    commit(&consumer, &tracker, CommitMode::Sync, &spec.name);
    drop(consumer);
    let held: Vec<TopicPartition> =
        std::mem::take(&mut *stats.assigned.lock().unwrap_or_else(PoisonError::into_inner)).into_iter().collect();
    forget_lag(&spec.name, &held);
    exit
}

/// Where a subscription's events go and what signs them.
struct Target {
    url: reqwest::Url,
    secrets: Vec<Secret>,
}

/// Which queue a record waits in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum QueueKey {
    Key(String, i32, Vec<u8>),
    Partition(String, i32),
    /// Keyless records: their own queue each.
    Single(String, i32, i64),
}

impl QueueKey {
    fn of(record: &OwnedMessage, ordering: Ordering) -> Self {
        let (topic, partition) = (record.topic().to_owned(), record.partition());
        match (ordering, record.key()) {
            (Ordering::Partition, _) => QueueKey::Partition(topic, partition),
            (Ordering::Key, Some(key)) => QueueKey::Key(topic, partition, key.to_vec()),
            (Ordering::Key, None) => QueueKey::Single(topic, partition, record.offset()),
        }
    }
}

fn consumer(
    spec: &SubscriptionSpec,
    deps: &Deps,
    tracker: Arc<Mutex<Tracker>>,
    stats: Arc<Stats>,
) -> Result<StreamConsumer<Context>, String> {
    let reset = match spec.start_position() {
        Ok(Start::Earliest | Start::Time(_)) => "earliest",
        _ => "latest",
    };
    let mut config = client_config(&deps.kafka);
    config
        .set("group.id", spec.group_id())
        // Bounds memory per subscription; librdkafka caps its fetch requests to it as well.
        .set("queued.max.messages.kbytes", deps.max_prefetch_kbytes.to_string())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", reset)
        .set("isolation.level", "read_committed")
        // A replica that dies loses its partitions to the others within this time.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        .set("statistics.interval.ms", STATISTICS_INTERVAL);
    let consumer: StreamConsumer<Context> = config
        .create_with_context(Context { tracker, stats, name: spec.name.clone() })
        .map_err(|e| format!("cannot create the consumer: {e}"))?;
    let topics: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|e| format!("cannot subscribe: {e}"))?;
    Ok(consumer)
}

fn lag_labels(subscription: &str, topic: &str, partition: i32) -> crate::telemetry::metrics::LagLabels {
    crate::telemetry::metrics::LagLabels { subscription: subscription.to_owned(), topic: topic.to_owned(), partition }
}

/// Forgets the lag of partitions this replica no longer holds: another replica reports them.
fn forget_lag(subscription: &str, partitions: &[TopicPartition]) {
    let lag = &crate::telemetry::metrics::metrics().consumer_lag;
    for (topic, partition) in partitions {
        lag.remove(&lag_labels(subscription, topic, *partition));
    }
}

fn commit(consumer: &StreamConsumer<Context>, tracker: &Mutex<Tracker>, mode: CommitMode, name: &str) {
    let offsets = tracker.lock().unwrap_or_else(PoisonError::into_inner).committable(None);
    if offsets.count() > 0
        && let Err(error) = consumer.commit(&offsets, mode)
    {
        tracing::warn!(subscription = name, error = %error, "offset commit failed; will retry");
        // Forget the optimistic marks so the next tick tries again.
        let mut tracker = tracker.lock().unwrap_or_else(PoisonError::into_inner);
        for element in offsets.elements() {
            if let Some(state) = tracker.partitions.get_mut(&(element.topic().to_owned(), element.partition())) {
                state.committed = state.committed.min(element.offset().to_raw().unwrap_or(0) - 1);
            }
        }
    }
}

/// The stable id of a record's message: the same on every retry and redelivery, new on a
/// replay (a new generation).
pub fn webhook_id(subscription: &str, generation: u64, topic: &str, partition: i32, offset: i64) -> String {
    let digest = Sha256::digest(format!("{subscription}\n{generation}\n{topic}\n{partition}\n{offset}"));
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// Decodes, runs plugins, delivers with retries, or dead-letters one record.
/// A record to deliver, and the trace context its headers carry.
struct Incoming {
    record: OwnedMessage,
    context: opentelemetry::Context,
}

async fn handle(
    spec: &SubscriptionSpec,
    generation: u64,
    deps: &Deps,
    target: &Target,
    stats: &Stats,
    incoming: Incoming,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let Incoming { record, context } = incoming;
    let started = Instant::now();
    let mut attempt: u32 = 0;
    // Turning the record into a body can fail for a while (registry down) or for good.
    let body = loop {
        match decode(deps, &record).await {
            Ok(Some(body)) => break body,
            Ok(None) => {
                stats.handled(&spec.name, Handled::Skipped);
                return Outcome::Done;
            }
            Err(Decode::Permanent(reason)) => {
                return dead_letter(spec, deps, stats, &record, &format!("undecodable: {reason}"), None, 0, &mut stop)
                    .await;
            }
            Err(Decode::Transient(reason)) => {
                stats.error(reason);
                attempt += 1;
                if wait(spec.retry.backoff(attempt, jitter()), &mut stop).await {
                    return Outcome::Aborted;
                }
            }
        }
    };
    let mut body = body;
    for name in &spec.plugins {
        let Some(plugin) = deps.plugins.get(name).filter(|p| p.implements(Hooks::CONSUME)) else { continue };
        let mut waited = 0;
        let decision = loop {
            let (_, decision) = plugin.consume(vec![plugin_event(&record, body.clone())]).await;
            match decision {
                // Not called (at its limit of calls at once, or its breaker open): not the
                // event's fault, so it waits instead of being dead-lettered.
                Err(error) if error.is_unavailable() => {
                    waited += 1;
                    if wait(spec.retry.backoff(waited, jitter()), &mut stop).await {
                        return Outcome::Aborted;
                    }
                }
                other => break other.map(|mut d| d.remove(0)),
            }
        };
        match decision {
            Ok(PluginDelivery::Deliver) => {}
            Ok(PluginDelivery::Modify(changes)) => {
                if let Some(value) = changes.value {
                    body = value;
                }
            }
            Ok(PluginDelivery::Skip(_)) => {
                stats.handled(&spec.name, Handled::Skipped);
                return Outcome::Done;
            }
            Ok(PluginDelivery::DeadLetter(reason)) => {
                return dead_letter(spec, deps, stats, &record, &format!("{name}: {reason}"), None, 0, &mut stop).await;
            }
            // A failing consume plugin must not lose the event: it goes to the dead letter topic.
            Err(error) => return dead_letter(spec, deps, stats, &record, &error.to_string(), None, 0, &mut stop).await,
        }
    }

    let id = webhook_id(&spec.name, generation, record.topic(), record.partition(), record.offset());
    let failure_hook =
        spec.plugins.iter().filter_map(|name| deps.plugins.get(name)).find(|p| p.implements(Hooks::FAILURE));
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let sent = Instant::now();
        let posted = post(spec, deps, target, &id, &record, &context, &body).await;
        attempt_metrics(&spec.name, sent.elapsed(), &posted);
        let (status, error, retry_after) = match posted {
            Ok(_) => {
                stats.handled(&spec.name, Handled::Delivered);
                if let Some(written) = record.timestamp().to_millis() {
                    let age = crate::telemetry::now_ms().saturating_sub(written);
                    crate::telemetry::metrics::metrics()
                        .delivered_after(&spec.name, Duration::from_millis(u64::try_from(age).unwrap_or(0)));
                }
                return Outcome::Done;
            }
            Err(Failed::Gone) => return Outcome::Gone(format!("{} answered 410 Gone", spec.url)),
            Err(Failed::Status { status, retry_after }) => (Some(status), format!("HTTP {status}"), retry_after),
            Err(Failed::Request(error)) => (None, error, None),
        };
        stats.failed_attempts.fetch_add(1, Atomic::Relaxed);
        stats.error(format!("{id}: {error}"));
        tracing::debug!(
            subscription = spec.name,
            webhook_id = id,
            attempt = attempts,
            error,
            "delivery attempt failed"
        );
        let exhausted = attempts >= spec.retry.max_attempts
            || started.elapsed() >= Duration::from_millis(spec.retry.max_elapsed_ms);
        let decision = match &failure_hook {
            Some(plugin) if !exhausted => plugin
                .failure(Failure {
                    event: plugin_event(&record, body.clone()),
                    attempt: attempts,
                    status,
                    error: error.clone(),
                })
                .await
                .unwrap_or_else(|e| match e {
                    // The hook could not be asked: retry as if it had no opinion.
                    e if e.is_unavailable() => Decision::RetryAfter(0),
                    e => Decision::DeadLetter(format!("failure hook failed: {e}")),
                }),
            _ if exhausted => Decision::DeadLetter(format!("gave up after {attempts} attempts: {error}")),
            _ => Decision::RetryAfter(0),
        };
        match decision {
            Decision::RetryAfter(ms) => {
                let delay = match (retry_after, ms) {
                    // The subscriber knows best when it can take more; bounded by the time the
                    // event may spend in retries at all.
                    (Some(server), _) => server.min(Duration::from_millis(spec.retry.max_elapsed_ms)),
                    (None, 0) => spec.retry.backoff(attempts, jitter()),
                    (None, ms) => Duration::from_millis(u64::from(ms)),
                };
                if wait(delay, &mut stop).await {
                    return Outcome::Aborted;
                }
            }
            Decision::DeadLetter(reason) => {
                return dead_letter(spec, deps, stats, &record, &reason, status, attempts, &mut stop).await;
            }
            Decision::Drop(_) => {
                stats.handled(&spec.name, Handled::Dropped);
                return Outcome::Done;
            }
        }
    }
}

enum Decode {
    Permanent(String),
    Transient(String),
}

/// The JSON body for a record: `None` for a tombstone (nothing to deliver).
async fn decode(deps: &Deps, record: &OwnedMessage) -> Result<Option<Vec<u8>>, Decode> {
    let Some(payload) = record.payload() else { return Ok(None) };
    match crate::codec::wire::split(payload) {
        Ok((id, body)) => {
            let codec = deps.schemas.by_id(id).await.map_err(|e| match e {
                crate::registry::RegistryError::Unavailable(reason) => Decode::Transient(reason),
                other => Decode::Permanent(format!("schema {id}: {other}")),
            })?;
            codec.decode_to_json(body).map(Some).map_err(|e| Decode::Permanent(format!("schema {id}: {e}")))
        }
        Err(_) => {
            serde_json::from_slice::<serde::de::IgnoredAny>(payload)
                .map_err(|e| Decode::Permanent(format!("neither Confluent-framed nor JSON: {e}")))?;
            Ok(Some(payload.to_vec()))
        }
    }
}

fn plugin_event(record: &OwnedMessage, value: Vec<u8>) -> Event {
    let headers = record
        .headers()
        .map(|h| {
            h.iter().map(|h| Header { key: h.key.to_owned(), value: h.value.unwrap_or_default().to_vec() }).collect()
        })
        .unwrap_or_default();
    Event {
        topic: record.topic().to_owned(),
        key: record.key().map(<[u8]>::to_vec),
        value,
        headers,
        timestamp_ms: record.timestamp().to_millis().unwrap_or(0),
    }
}

fn attempt_metrics(subscription: &str, took: Duration, result: &Result<u16, Failed>) {
    use crate::telemetry::metrics::{AttemptLabels, SubscriptionLabels, metrics};
    let status = match result {
        Ok(status) => status.to_string(),
        Err(Failed::Gone) => "410".to_owned(),
        Err(Failed::Status { status, .. }) => status.to_string(),
        Err(Failed::Request(_)) => "error".to_owned(),
    };
    let metrics = metrics();
    metrics.delivery_attempts.get_or_create(&AttemptLabels { subscription: subscription.to_owned(), status }).inc();
    let labels = SubscriptionLabels { subscription: subscription.to_owned() };
    metrics.delivery_duration.get_or_create(&labels).observe(took.as_secs_f64());
}

enum Failed {
    Gone,
    Status { status: u16, retry_after: Option<Duration> },
    Request(String),
}

async fn post(
    spec: &SubscriptionSpec,
    deps: &Deps,
    target: &Target,
    id: &str,
    record: &OwnedMessage,
    parent: &opentelemetry::Context,
    body: &[u8],
) -> Result<u16, Failed> {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut request = deps
        .http
        .post(target.url.clone())
        .timeout(Duration::from_millis(spec.timeout_ms))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature(&target.secrets, id, timestamp, body))
        .header("sluice-topic", record.topic())
        .header("sluice-partition", record.partition().to_string())
        .header("sluice-offset", record.offset().to_string());
    // The record's trace context (from the produce request), through this attempt's span.
    let context = deps.tracing.start(
        format!("deliver {}", spec.name),
        SpanKind::Client,
        parent,
        vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("sluice.subscription", spec.name.clone()),
            KeyValue::new("messaging.destination.name", record.topic().to_owned()),
            KeyValue::new("messaging.kafka.offset", record.offset()),
        ],
    );
    for (name, value) in trace::inject(&context) {
        request = request.header(name, value);
    }
    if let Some(key) = record.key() {
        match std::str::from_utf8(key) {
            Ok(text) if text.chars().all(|c| !c.is_control()) => request = request.header("sluice-key", text),
            _ => {
                use base64::Engine as _;
                request = request.header("sluice-key-base64", base64::engine::general_purpose::STANDARD.encode(key));
            }
        }
    }
    let sent = request.body(body.to_vec()).send().await;
    let span = context.span();
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            span.set_status(opentelemetry::trace::Status::error(error.to_string()));
            return Err(Failed::Request(format!("{error:#}")));
        }
    };
    let status = response.status();
    span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
    if !status.is_success() {
        span.set_status(opentelemetry::trace::Status::error(status.to_string()));
    }
    if status.is_success() {
        // Read (and discard) a short body so the connection can be reused; a longer one is not
        // waited for: the connection is dropped instead.
        let mut response = response;
        let mut read = 0;
        while read <= MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        return Ok(status.as_u16());
    }
    if status == reqwest::StatusCode::GONE {
        return Err(Failed::Gone);
    }
    let retry_after = if matches!(status.as_u16(), 429 | 503) {
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    } else {
        None
    };
    Err(Failed::Status { status: status.as_u16(), retry_after })
}

/// Sends a record to the dead letter topic (retrying until Kafka takes it), with headers
/// saying why and from where.
#[allow(clippy::too_many_arguments)]
async fn dead_letter(
    spec: &SubscriptionSpec,
    deps: &Deps,
    stats: &Stats,
    record: &OwnedMessage,
    reason: &str,
    status: Option<u16>,
    attempts: u32,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    let mut retry = 0;
    loop {
        let mut headers = OwnedHeaders::new();
        if let Some(original) = record.headers() {
            for header in original.iter() {
                headers = headers.insert(header);
            }
        }
        let fields = [
            ("sluice-dlq-reason", reason.to_owned()),
            ("sluice-dlq-status", status.map(|s| s.to_string()).unwrap_or_default()),
            ("sluice-dlq-attempts", attempts.to_string()),
            ("sluice-dlq-subscription", spec.name.clone()),
            ("sluice-dlq-topic", record.topic().to_owned()),
            ("sluice-dlq-partition", record.partition().to_string()),
            ("sluice-dlq-offset", record.offset().to_string()),
        ];
        for (key, value) in &fields {
            headers = headers.insert(rdkafka::message::Header { key, value: Some(value.as_str()) });
        }
        let sent = match deps.producer.send(
            &spec.dead_letter_topic,
            record.key(),
            record.payload().unwrap_or_default(),
            Some(headers),
        ) {
            Ok(delivery) => deps.producer.delivered(delivery).await,
            Err(error) => Err(error),
        };
        match sent {
            Ok(_) => {
                stats.handled(&spec.name, Handled::DeadLettered);
                tracing::warn!(
                    subscription = spec.name,
                    topic = record.topic(),
                    offset = record.offset(),
                    reason,
                    "event dead-lettered"
                );
                return Outcome::Done;
            }
            Err(error) => {
                stats.error(format!("dead letter topic {}: {error}", spec.dead_letter_topic));
                retry += 1;
                if wait(spec.retry.backoff(retry, jitter()), stop).await {
                    return Outcome::Aborted;
                }
            }
        }
    }
}

/// Sleeps, unless told to stop first (then true).
async fn wait(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(delay) => None,
        _ = stop.wait_for(|stopped| *stopped) => Some(true),
    };
    stopped.unwrap_or_else(|| *stop.borrow())
}

/// A number in [0, 1) for backoff jitter, without a random number crate: the clock's nanoseconds.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}
