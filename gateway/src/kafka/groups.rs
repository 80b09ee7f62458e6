//! Consumer-group administration: moving a group's committed offsets (a replay), and reading how
//! far behind it is. Each call blocks on Kafka: callers run them off the async runtime.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::client_config;
use crate::config::KafkaConfig;

const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`move_group`] waits for the group's members to leave.
const EMPTY_GROUP_WAIT: Duration = Duration::from_secs(60);

/// Where a group's offsets move to.
#[derive(Debug, Clone)]
pub enum Positions {
    /// Milliseconds since the epoch: each partition from its first record at or after it.
    Time(i64),
    /// Offsets by topic and partition (partitions not named start from the earliest record).
    Offsets(BTreeMap<String, BTreeMap<i32, i64>>),
}

/// Why a group operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("group {0} still has members after 60 s")]
    Busy(String),
    #[error("{0}")]
    Kafka(String),
}

fn kafka(context: &str) -> impl Fn(rdkafka::error::KafkaError) -> GroupError + '_ {
    move |e| GroupError::Kafka(format!("{context}: {e}"))
}

fn admin_consumer(config: &KafkaConfig, group: &str) -> Result<BaseConsumer, GroupError> {
    let mut client = client_config(config);
    client.set("group.id", group).set("enable.auto.commit", "false");
    client.create().map_err(kafka("cannot create a consumer"))
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, GroupError> {
    let metadata =
        consumer.fetch_metadata(Some(topic), KAFKA_TIMEOUT).map_err(kafka(&format!("metadata of {topic}")))?;
    Ok(metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect())
}

/// Waits until the group has no members, then commits the positions for every partition of
/// its topics.
pub fn move_group(
    config: &KafkaConfig,
    group: &str,
    topics: &[String],
    positions: &Positions,
) -> Result<(), GroupError> {
    let consumer = admin_consumer(config, group)?;
    let deadline = Instant::now() + EMPTY_GROUP_WAIT;
    loop {
        let groups = consumer
            .fetch_group_list(Some(group), KAFKA_TIMEOUT)
            .map_err(kafka(&format!("cannot describe group {group}")))?;
        if groups.groups().iter().all(|g| g.members().is_empty()) {
            break;
        }
        if Instant::now() > deadline {
            return Err(GroupError::Busy(group.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut list = TopicPartitionList::new();
    for topic in topics {
        for partition in partitions(&consumer, topic)? {
            let offset = match positions {
                Positions::Time(ms) => Offset::Offset(*ms),
                Positions::Offsets(offsets) => {
                    Offset::Offset(offsets.get(topic).and_then(|p| p.get(&partition)).copied().unwrap_or(0))
                }
            };
            list.add_partition_offset(topic, partition, offset).map_err(kafka("a partition offset"))?;
        }
    }
    let list = match positions {
        // The first offset at or after the time, per partition (the end where there is none).
        Positions::Time(_) => {
            let mut found = consumer.offsets_for_times(list, KAFKA_TIMEOUT).map_err(kafka("offsets for the time"))?;
            for element in found.clone().elements() {
                if element.offset() == Offset::End {
                    let (_, high) = consumer
                        .fetch_watermarks(element.topic(), element.partition(), KAFKA_TIMEOUT)
                        .map_err(kafka("watermarks"))?;
                    found
                        .set_partition_offset(element.topic(), element.partition(), Offset::Offset(high))
                        .map_err(kafka("a partition offset"))?;
                }
            }
            found
        }
        Positions::Offsets(_) => list,
    };
    consumer.assign(&list).map_err(kafka("assign"))?;
    consumer.commit(&list, CommitMode::Sync).map_err(kafka("cannot commit the positions"))
}

/// For a group and one topic: (partition, committed offset or earliest, end) per partition.
pub fn pending_to_end(config: &KafkaConfig, group: &str, topic: &str) -> Result<Vec<(i32, i64, i64)>, GroupError> {
    let consumer = admin_consumer(config, group)?;
    let parts = partitions(&consumer, topic)?;
    let mut list = TopicPartitionList::new();
    for partition in &parts {
        list.add_partition(topic, *partition);
    }
    let committed = consumer.committed_offsets(list, KAFKA_TIMEOUT).map_err(kafka("committed offsets"))?;
    let mut out = Vec::new();
    for partition in parts {
        let (low, high) = consumer.fetch_watermarks(topic, partition, KAFKA_TIMEOUT).map_err(kafka("watermarks"))?;
        let from = committed
            .find_partition(topic, partition)
            .and_then(|p| p.offset().to_raw())
            .filter(|o| *o >= 0)
            .unwrap_or(low);
        out.push((partition, from, high));
    }
    Ok(out)
}

/// Records between the group's committed offsets and the ends of its topics.
pub fn lag(
    config: &KafkaConfig,
    group: &str,
    topics: &[String],
) -> Result<BTreeMap<String, BTreeMap<i32, i64>>, GroupError> {
    let mut out = BTreeMap::new();
    for topic in topics {
        let pending = pending_to_end(config, group, topic)?;
        out.insert(topic.clone(), pending.into_iter().map(|(p, from, to)| (p, (to - from).max(0))).collect());
    }
    Ok(out)
}
