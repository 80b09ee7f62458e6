//! One subscription's delivery on one replica: the wiring of the consume path's stages.
//!
//! The consumer ([`super::consumer`]) takes records from Kafka; each waits in its key's queue
//! ([`super::queues`]) and is handed to [`super::pipeline::handle`] when its key's previous
//! record has an outcome, up to the subscription's concurrency; outcomes come back here, are
//! counted, and let [`super::offsets`] move the commit position. Taking records stops while the
//! buffer is full (in records or bytes), and fetching pauses if it stays full.

use std::sync::atomic::Ordering as Atomic;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt as _;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Headers as _, OwnedMessage};
use tokio::sync::{mpsc, watch};
use tracing::Instrument as _;

use super::consumer;
use super::deps::Deps;
use super::offsets::{Offsets, TopicPartition};
use super::pipeline::{self, Incoming, RecordOutcome};
use super::queues::Queues;
use super::stats::{Stats, WorkerState};
use super::webhook::Target;
use crate::config::subscription::{Ordering, SubscriptionSpec};
use crate::telemetry::trace;

/// How long the buffer may stay full before the partitions are paused. Until then the consumer
/// is simply not polled (librdkafka's bounded prefetch queue holds what was fetched); pausing
/// throws that prefetch away and costs a refetch on resume, which stalled deliveries when done
/// on every brief fill, but a consumer that is not polled serves no rebalance and eventually
/// leaves its group — so a subscriber that stays slow gets its partitions paused instead.
const PAUSE_AFTER: Duration = Duration::from_secs(2);
/// How often done offsets are committed.
const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// Records taken from the consumer at once when more are ready.
const BATCH: usize = 256;
/// At shutdown, how long deliveries under way may take to finish (and be committed) before the
/// worker commits what has an outcome and leaves; the rest is delivered again by whoever takes
/// the partitions.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How often a subscription holding for a plugin looks again.
const PLUGIN_POLL: Duration = Duration::from_millis(500);

/// Why a worker stopped on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop.
    Stopped,
    /// The subscriber answered 410 Gone: the subscription must be disabled.
    Gone(String),
    /// It could not start; the manager tries again.
    Failed(String),
}

/// Which queue a record waits in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum QueueKey {
    Key(TopicPartition, Vec<u8>),
    Partition(TopicPartition),
    /// Keyless records: their own queue each.
    Single(TopicPartition, i64),
}

impl QueueKey {
    fn of(record: &OwnedMessage, ordering: Ordering) -> Self {
        let partition = (record.topic().to_owned(), record.partition());
        match (ordering, record.key()) {
            (Ordering::Partition, _) => QueueKey::Partition(partition),
            (Ordering::Key, Some(key)) => QueueKey::Key(partition, key.to_vec()),
            (Ordering::Key, None) => QueueKey::Single(partition, record.offset()),
        }
    }

    fn partition(&self) -> &TopicPartition {
        match self {
            QueueKey::Key(partition, _) | QueueKey::Partition(partition) | QueueKey::Single(partition, _) => partition,
        }
    }
}

type Done = (QueueKey, TopicPartition, i64, RecordOutcome);

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
        return Exit::Failed(reason);
    }
    let target = match Target::new(&spec) {
        Ok(target) => Arc::new(target),
        Err(reason) => return Exit::Failed(reason),
    };
    if !hold_for_plugins(&spec, &deps, &stats, &mut stop).await {
        return Exit::Stopped;
    }
    // Shared by every delivery task: a clone per record would copy the Kafka settings.
    let deps = Arc::new(deps);
    let offsets = Arc::new(Mutex::new(Offsets::default()));
    let consumer = match consumer::create(&spec, &deps, offsets.clone(), stats.clone()) {
        Ok(consumer) => Arc::new(consumer),
        Err(reason) => return Exit::Failed(reason),
    };
    stats.set_worker(&spec.name, WorkerState::Running, None);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut queues: Queues<QueueKey, Arc<OwnedMessage>> = Queues::default();
    let mut paused = false;
    let mut full_since: Option<tokio::time::Instant> = None;
    let mut commit_tick = tokio::time::interval(COMMIT_EVERY);
    let mut exit = Exit::Stopped;
    let finish = |queues: &mut Queues<QueueKey, Arc<OwnedMessage>>, (key, partition, offset, outcome): Done| {
        queues.finished(&key);
        match outcome {
            RecordOutcome::Done(how) => {
                stats.handled(&spec.name, how);
                offsets.lock().unwrap_or_else(PoisonError::into_inner).done(&partition, offset);
                None
            }
            RecordOutcome::Gone(reason) => Some(reason),
            RecordOutcome::Aborted => None,
        }
    };

    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            Some(done) = done_rx.recv() => {
                if let Some(reason) = finish(&mut queues, done) {
                    exit = Exit::Gone(reason);
                    break;
                }
            }
            _ = tokio::time::sleep_until(full_since.unwrap_or_else(tokio::time::Instant::now) + PAUSE_AFTER),
                if full_since.is_some() && !paused =>
            {
                paused = consumer.assignment().and_then(|a| consumer.pause(&a)).is_ok();
                tracing::debug!(subscription = spec.name, buffered = queues.len(), "buffer full for {PAUSE_AFTER:?}: partitions paused");
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
                let room = deps.max_buffered.saturating_sub(queues.len()).clamp(1, BATCH);
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
                let mut taken = offsets.lock().unwrap_or_else(PoisonError::into_inner);
                for record in batch {
                    taken.taken(&(record.topic().to_owned(), record.partition()), record.offset());
                    let bytes = record.payload().map_or(0, <[u8]>::len) + record.key().map_or(0, <[u8]>::len);
                    queues.push(QueueKey::of(&record, spec.ordering), Arc::new(record), bytes);
                }
            }
            _ = commit_tick.tick() => consumer::commit(&consumer, &offsets, CommitMode::Async, &spec.name),
        }
        // Start deliveries for keys whose head is not in flight. A partition revoked meanwhile
        // belongs to another replica now, which delivers from the committed offset: what is
        // queued for it here is dropped.
        loop {
            let owned = |key: &QueueKey| offsets.lock().unwrap_or_else(PoisonError::into_inner).owns(key.partition());
            let Some((key, record)) = queues.next(spec.concurrency, owned) else { break };
            let record = record.clone();
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
                let outcome =
                    pipeline::handle(&spec, generation, &deps, &target, &stats, incoming, stop).instrument(span).await;
                let _ = done.send((key, partition, offset, outcome));
            });
        }
        stats.in_flight.store(queues.in_flight(), Atomic::Relaxed);
        stats.buffered.store(queues.len(), Atomic::Relaxed);
        // Back-pressure: stop taking records while too much is buffered (see `PAUSE_AFTER`).
        // `assignment()` is a round trip to librdkafka's main thread: only when needed.
        let full = queues.len() >= deps.max_buffered || queues.bytes() >= deps.max_buffered_bytes;
        if full {
            full_since.get_or_insert_with(tokio::time::Instant::now);
        } else if !paused {
            full_since = None;
        } else if queues.len() < deps.max_buffered / 2 && queues.bytes() < deps.max_buffered_bytes / 2 {
            paused = consumer.assignment().and_then(|a| consumer.resume(&a)).is_err();
            full_since = None;
        }
        stats.paused.store(paused, Atomic::Relaxed);
    }

    // Deliveries under way may finish (and be committed) for a moment; retries waiting for their
    // next attempt stop at once.
    let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while queues.in_flight() > 0 && exit == Exit::Stopped {
        match tokio::time::timeout_at(grace, done_rx.recv()).await {
            Ok(Some(done)) => {
                finish(&mut queues, done);
            }
            _ => break,
        }
    }
    let final_commit = {
        let (consumer, offsets, name) = (consumer.clone(), offsets.clone(), spec.name.clone());
        tokio::task::spawn_blocking(move || consumer::commit(&consumer, &offsets, CommitMode::Sync, &name))
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, final_commit).await.is_err() {
        tracing::warn!(
            subscription = spec.name,
            "the final commit did not finish in time; those records will be delivered again"
        );
    }
    drop(consumer);
    let held: Vec<TopicPartition> =
        std::mem::take(&mut *stats.assigned.lock().unwrap_or_else(PoisonError::into_inner)).into_iter().collect();
    crate::telemetry::metrics::metrics().forget_lag(&spec.name, &held);
    exit
}

/// Waits until every plugin the subscription names has a loaded version (a subscription must
/// not deliver without its redaction plugin, say); false if told to stop first.
async fn hold_for_plugins(
    spec: &SubscriptionSpec,
    deps: &Deps,
    stats: &Stats,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        let missing: Vec<&String> = spec.plugins.iter().filter(|name| deps.plugins.get(name).is_none()).collect();
        if missing.is_empty() {
            return true;
        }
        if stats.worker_state() != WorkerState::Holding {
            let reason = format!("holding delivery: plugin {} has no loaded version", missing[0]);
            tracing::warn!(subscription = spec.name, plugin = %missing[0], "holding delivery until the plugin is uploaded");
            stats.set_worker(&spec.name, WorkerState::Holding, Some(reason));
        }
        if pipeline::wait(PLUGIN_POLL, stop).await {
            return false;
        }
    }
}
