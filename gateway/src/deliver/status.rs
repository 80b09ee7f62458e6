//! A subscription as the API shows it: the spec (without secrets), its stored state, and this
//! replica's counters and partitions.

use std::collections::BTreeMap;
use std::sync::PoisonError;
use std::sync::atomic::Ordering as A;

use serde::Serialize;

use super::stats::WorkerState;
use super::store::RunState;
use super::{Deliveries, SubscriptionError};
use crate::config::subscription::SubscriptionSpec;
use crate::kafka::groups;

/// A subscription as the API shows it.
#[derive(Debug, Serialize)]
pub struct Status {
    #[serde(flatten)]
    pub spec: SubscriptionSpec,
    /// `config` or `api`.
    pub source: &'static str,
    pub state: RunState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What this replica's worker is doing: `running`, `holding` (a plugin it names has no
    /// loaded version yet) or `failed` (it could not start; retried with backoff).
    pub worker: WorkerState,
    pub generation: u64,
    /// On this replica.
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dead_lettered: u64,
    pub skipped: u64,
    pub in_flight: usize,
    /// Records taken from Kafka on this replica and waiting for an outcome.
    pub buffered: usize,
    /// Whether this replica stopped fetching because the subscriber is not keeping up.
    pub fetch_paused: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Partitions this replica delivers now, by topic (the group spreads them over replicas).
    pub assigned: BTreeMap<String, Vec<i32>>,
    /// Records not yet delivered, by topic and partition (whole group).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub lag: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl Deliveries {
    /// Every subscription, with its state and this replica's counters.
    pub async fn list(&self) -> Vec<Status> {
        let names: Vec<String> = self.specs(&self.log.read()).into_keys().collect();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Ok(status) = self.status(&name, false).await {
                out.push(status);
            }
        }
        out
    }

    /// One subscription; `lag` asks Kafka for the group's offsets (slower).
    pub async fn status(&self, name: &str, lag: bool) -> Result<Status, SubscriptionError> {
        let (spec, source, state) = {
            let current = self.log.read();
            let (spec, source) =
                self.specs(&current).remove(name).ok_or_else(|| SubscriptionError::NotFound(name.to_owned()))?;
            (spec, source, current.state(name))
        };
        let stats = self.running.lock().unwrap_or_else(PoisonError::into_inner).get(name).map(|r| r.stats.clone());
        let stats = stats.unwrap_or_default();
        let lag = if lag {
            let (kafka, spec) = (self.deps.kafka.clone(), spec.clone());
            tokio::task::spawn_blocking(move || groups::lag(&kafka, &spec.group_id(), &spec.topics))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        Ok(Status {
            source,
            state: state.state,
            reason: state.reason,
            worker: stats.worker_state(),
            generation: state.generation,
            delivered: stats.delivered.load(A::Relaxed),
            failed_attempts: stats.failed_attempts.load(A::Relaxed),
            dead_lettered: stats.dead_lettered.load(A::Relaxed),
            skipped: stats.skipped.load(A::Relaxed),
            in_flight: stats.in_flight.load(A::Relaxed),
            buffered: stats.buffered.load(A::Relaxed),
            fetch_paused: stats.paused.load(A::Relaxed),
            last_error: stats.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            assigned: stats.assignment(),
            lag,
            spec,
        })
    }
}
