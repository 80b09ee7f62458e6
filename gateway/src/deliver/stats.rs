//! A subscription's counters and state on this replica, for the status API and the metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use rdkafka::TopicPartitionList;
use serde::Serialize;

use super::offsets::TopicPartition;
use super::pipeline::Handled;

/// What this replica's worker is doing, beyond the stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    #[default]
    Running,
    /// A plugin the subscription names has no loaded version: nothing is delivered until it has.
    Holding,
    /// The worker could not start (a URL that does not resolve, a consumer that cannot be
    /// created); it is tried again with backoff.
    Failed,
}

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
    pub worker: Mutex<WorkerState>,
    /// The subscription's metric series, looked up at its first use.
    series: std::sync::OnceLock<crate::telemetry::metrics::SubscriptionSeries>,
}

impl Stats {
    /// Counts an outcome here (for the status API) and in the metrics.
    pub fn handled(&self, subscription: &str, how: Handled) {
        let (counter, label) = match how {
            Handled::Delivered => (&self.delivered, "delivered"),
            Handled::Skipped => (&self.skipped, "skipped"),
            Handled::Dropped => (&self.skipped, "dropped"),
            Handled::DeadLettered => (&self.dead_lettered, "dead_lettered"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.series(subscription).outcome(label);
    }

    /// The subscription's delivery series in the metrics.
    pub fn series(&self, subscription: &str) -> &crate::telemetry::metrics::SubscriptionSeries {
        self.series.get_or_init(|| crate::telemetry::metrics::metrics().subscription(subscription))
    }

    pub fn error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    /// A delivery attempt that failed.
    pub fn attempt_failed(&self, error: String) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        self.error(error);
    }

    pub fn worker_state(&self) -> WorkerState {
        *self.worker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets what the worker is doing, with the reason when it is not running.
    pub fn set_worker(&self, subscription: &str, state: WorkerState, reason: Option<String>) {
        *self.worker.lock().unwrap_or_else(PoisonError::into_inner) = state;
        if let Some(reason) = reason {
            self.error(reason);
        }
        let label = match state {
            WorkerState::Running => "active",
            WorkerState::Holding => "holding",
            WorkerState::Failed => "failed",
        };
        crate::telemetry::metrics::metrics().subscription_state(subscription, label);
    }

    /// The partitions this replica holds now, by topic.
    pub fn assignment(&self) -> BTreeMap<String, Vec<i32>> {
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in self.assigned.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            by_topic.entry(topic.clone()).or_default().push(*partition);
        }
        by_topic
    }

    pub fn track(&self, list: &TopicPartitionList, held: bool) {
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
