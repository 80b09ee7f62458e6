//! A subscription's Kafka consumer on one replica: its settings, its rebalance callbacks and its
//! commits.
//!
//! - When a partition is assigned and the group has no committed offset for it (a new
//!   subscription, or a topic's new partition), the position `start` names is committed before
//!   any record is read, whatever `start` says: from then on a restart, a deploy or a rebalance
//!   resumes from a committed offset, and records waiting for an outcome are never skipped.
//! - Before a partition is revoked, what has an outcome is committed (see [`super::offsets`]).
//! - Partitions move incrementally (the cooperative-sticky assignor): a replica joining or
//!   leaving does not pause the partitions that stay where they are.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::deps::Deps;
use super::offsets::{Offsets, TopicPartition};
use super::stats::Stats;
use crate::config::subscription::{Start, SubscriptionSpec};
use crate::kafka::client_config;

/// How long librdkafka may take for the metadata and offset requests of a rebalance.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);
/// How often librdkafka reports statistics, whose per-partition lag the metrics show.
const STATISTICS_INTERVAL: &str = "5000";

/// The callbacks' state: the subscription's offsets on this replica.
#[derive(Debug)]
pub struct Context {
    offsets: Arc<Mutex<Offsets>>,
    stats: Arc<Stats>,
    name: String,
    start: Start,
}

impl ClientContext for Context {
    /// The lag of the partitions this replica holds (librdkafka's high watermark minus the
    /// committed offset); the other replicas report theirs.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let held = self.stats.assigned.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let metrics = crate::telemetry::metrics::metrics();
        for (topic, details) in &statistics.topics {
            for (partition, p) in &details.partitions {
                if !held.contains(&(topic.clone(), *partition)) || p.hi_offset < 0 {
                    continue;
                }
                let behind = if p.committed_offset >= 0 { p.hi_offset - p.committed_offset } else { p.consumer_lag };
                metrics.consumer_lag(&self.name, topic, *partition, behind.max(0));
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(revoked) => {
                self.stats.track(revoked, false);
                let gone = partitions(revoked);
                let positions = self.offsets.lock().unwrap_or_else(PoisonError::into_inner).revoked(&gone);
                crate::telemetry::metrics::metrics().forget_lag(&self.name, &gone);
                if let Err(error) = commit_positions(consumer, &positions, CommitMode::Sync) {
                    tracing::warn!(
                        subscription = self.name,
                        error,
                        "commit at revoke failed; the records will be delivered again"
                    );
                }
                tracing::info!(subscription = self.name, partitions = gone.len(), "partitions revoked");
            }
            Rebalance::Assign(assigned) => {
                // Held (in the status) only once its start is committed: what is produced from
                // then on comes after it.
                self.start_positions(consumer, assigned);
                self.stats.track(assigned, true);
                tracing::info!(subscription = self.name, partitions = assigned.count(), "partitions assigned");
            }
            Rebalance::Error(_) => {}
        }
    }
}

impl Context {
    /// Commits the start position of every assigned partition the group has no offset for, so
    /// that consumption (librdkafka fetches the committed offsets once assigned) starts there.
    fn start_positions(&self, consumer: &BaseConsumer<Self>, assigned: &TopicPartitionList) {
        let committed = match consumer.committed_offsets(assigned.clone(), KAFKA_TIMEOUT) {
            Ok(committed) => committed,
            Err(error) => {
                tracing::warn!(subscription = self.name, error = %error, "cannot read the committed offsets of assigned partitions");
                return;
            }
        };
        let mut missing = Vec::new();
        {
            let mut offsets = self.offsets.lock().unwrap_or_else(PoisonError::into_inner);
            for element in committed.elements() {
                let partition = (element.topic().to_owned(), element.partition());
                match element.offset() {
                    Offset::Offset(at) if at >= 0 => offsets.assigned(partition, at),
                    _ => missing.push(partition),
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        match self
            .resolve(consumer, &missing)
            .and_then(|positions| commit_positions(consumer, &positions, CommitMode::Sync).map(|()| positions))
        {
            Ok(positions) => {
                let mut offsets = self.offsets.lock().unwrap_or_else(PoisonError::into_inner);
                for (partition, at) in positions {
                    tracing::info!(
                        subscription = self.name,
                        topic = partition.0,
                        partition = partition.1,
                        offset = at,
                        "start position committed"
                    );
                    offsets.assigned(partition, at);
                }
            }
            // librdkafka falls back to auto.offset.reset, which says the same start.
            Err(error) => tracing::warn!(subscription = self.name, error, "cannot commit the start positions"),
        }
    }

    /// Where `start` puts each partition now.
    fn resolve(
        &self,
        consumer: &BaseConsumer<Self>,
        missing: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, i64)>, String> {
        let watermarks = |(topic, partition): &TopicPartition| {
            consumer
                .fetch_watermarks(topic, *partition, KAFKA_TIMEOUT)
                .map_err(|e| format!("watermarks of {topic}/{partition}: {e}"))
        };
        match self.start {
            Start::Earliest => missing.iter().map(|p| watermarks(p).map(|(low, _)| (p.clone(), low))).collect(),
            Start::Latest => missing.iter().map(|p| watermarks(p).map(|(_, high)| (p.clone(), high))).collect(),
            Start::Time(ms) => {
                let mut list = TopicPartitionList::new();
                for (topic, partition) in missing {
                    list.add_partition_offset(topic, *partition, Offset::Offset(ms)).map_err(|e| e.to_string())?;
                }
                let found = consumer
                    .offsets_for_times(list, KAFKA_TIMEOUT)
                    .map_err(|e| format!("offsets for the time: {e}"))?;
                found
                    .elements()
                    .iter()
                    .map(|element| {
                        let partition = (element.topic().to_owned(), element.partition());
                        match element.offset() {
                            Offset::Offset(at) => Ok((partition, at)),
                            // No record at or after the time: the end.
                            _ => watermarks(&partition).map(|(_, high)| (partition, high)),
                        }
                    })
                    .collect()
            }
        }
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect()
}

fn commit_positions<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    positions: &[(TopicPartition, i64)],
    mode: CommitMode,
) -> Result<(), String> {
    if positions.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), at) in positions {
        list.add_partition_offset(topic, *partition, Offset::Offset(*at)).map_err(|e| e.to_string())?;
    }
    consumer.commit(&list, mode).map_err(|e| e.to_string())
}

/// The subscription's consumer, subscribed to its topics.
pub fn create(
    spec: &SubscriptionSpec,
    deps: &Deps,
    offsets: Arc<Mutex<Offsets>>,
    stats: Arc<Stats>,
) -> Result<StreamConsumer<Context>, String> {
    let start = spec.start_position()?;
    let reset = match start {
        Start::Earliest | Start::Time(_) => "earliest",
        Start::Latest => "latest",
    };
    let mut config = client_config(&deps.kafka);
    config
        .set("group.id", spec.group_id())
        .set("partition.assignment.strategy", "cooperative-sticky")
        // Bounds memory per subscription; librdkafka caps its fetch requests to it as well.
        .set("queued.max.messages.kbytes", deps.max_prefetch_kbytes.to_string())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Only when the start position could not be committed at assignment.
        .set("auto.offset.reset", reset)
        .set("isolation.level", "read_committed")
        // A replica that dies loses its partitions to the others within this time.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        .set("statistics.interval.ms", STATISTICS_INTERVAL);
    let consumer: StreamConsumer<Context> = config
        .create_with_context(Context { offsets, stats, name: spec.name.clone(), start })
        .map_err(|e| format!("cannot create the consumer: {e}"))?;
    let topics: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|e| format!("cannot subscribe: {e}"))?;
    Ok(consumer)
}

/// Commits what has an outcome; a failed commit is offered again next time.
pub fn commit(consumer: &StreamConsumer<Context>, offsets: &Mutex<Offsets>, mode: CommitMode, name: &str) {
    let positions = offsets.lock().unwrap_or_else(PoisonError::into_inner).committable(None);
    if let Err(error) = commit_positions(consumer, &positions, mode) {
        tracing::warn!(subscription = name, error, "offset commit failed; will retry");
        offsets.lock().unwrap_or_else(PoisonError::into_inner).commit_failed(&positions);
    }
}
