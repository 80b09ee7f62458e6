//! Which routed topics exist in the cluster: checked at start-up and again on demand.
//!
//! Sluice never creates topics on the produce path (the broker's auto-creation is disabled for
//! its producer). A route whose topic is missing answers 404 `kafka-topic-missing` and is listed
//! by `/readyz`; once someone creates the topic, the next request after the re-check interval
//! finds it, with no restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;

use super::producer::{ProduceError, Producer};

#[derive(Debug, Clone, Copy)]
enum State {
    Present,
    Missing { checked: Instant },
}

/// Topics whose existence is remembered, present or missing.
const MAX_REMEMBERED: usize = 10_000;

/// Existence of the topics routes produce to.
#[derive(Debug)]
pub struct Topics {
    producer: Producer,
    state: Mutex<HashMap<String, State>>,
    recheck: Duration,
    timeout: Duration,
}

impl Topics {
    pub fn new(producer: Producer, recheck: Duration) -> Self {
        Self { producer, state: Mutex::new(HashMap::new()), recheck, timeout: Duration::from_secs(5) }
    }

    /// Looks up every name at once; names that exist are remembered as present.
    pub async fn check(&self, names: &[String]) -> Result<Vec<String>, ProduceError> {
        let found = self.lookup(None).await?;
        let now = Instant::now();
        let mut state = self.lock();
        let mut missing = Vec::new();
        for name in names {
            if found.contains_key(name) {
                state.insert(name.clone(), State::Present);
            } else {
                state.insert(name.clone(), State::Missing { checked: now });
                missing.push(name.clone());
            }
        }
        Ok(missing)
    }

    /// Ok if the topic exists; re-asks the cluster about a missing topic at most once per
    /// re-check interval.
    pub async fn ensure(&self, name: &str) -> Result<(), ProduceError> {
        let current = self.lock().get(name).copied();
        match current {
            Some(State::Present) => return Ok(()),
            Some(State::Missing { checked }) if checked.elapsed() < self.recheck => {
                return Err(ProduceError::UnknownTopic);
            }
            _ => {}
        }
        let found = self.lookup(Some(name.to_owned())).await?;
        let exists = found.contains_key(name);
        let mut state = self.lock();
        // Pattern routes let clients name topics: forget missing ones rather than grow without
        // bound (a forgotten one is looked up again on its next request).
        if state.len() >= MAX_REMEMBERED {
            state.retain(|_, s| matches!(s, State::Present));
        }
        state.insert(name.to_owned(), if exists { State::Present } else { State::Missing { checked: Instant::now() } });
        drop(state);
        if exists { Ok(()) } else { Err(ProduceError::UnknownTopic) }
    }

    /// Records that a delivery said the topic is gone (deleted while running).
    pub fn mark_missing(&self, name: &str) {
        self.lock().insert(name.to_owned(), State::Missing { checked: Instant::now() });
    }

    /// Topics known to be missing, sorted.
    pub fn missing(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.lock().iter().filter(|(_, s)| matches!(s, State::Missing { .. })).map(|(n, _)| n.clone()).collect();
        names.sort();
        names
    }

    /// Partition counts by topic name, from one metadata request (blocking, so off the runtime).
    async fn lookup(&self, topic: Option<String>) -> Result<HashMap<String, usize>, ProduceError> {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        let metadata = tokio::task::spawn_blocking(move || producer.fetch_metadata(topic.as_deref(), timeout))
            .await
            .map_err(|e| ProduceError::Unavailable(format!("metadata task failed: {e}")))?
            .map_err(|e| ProduceError::Unavailable(format!("metadata request failed: {e}")))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| {
                t.error().is_none_or(|e| RDKafkaErrorCode::from(e) != RDKafkaErrorCode::UnknownTopicOrPartition)
                    && !t.partitions().is_empty()
            })
            .map(|t| (t.name().to_owned(), t.partitions().len()))
            .collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        // The map holds plain values; a panic elsewhere cannot leave it half-updated.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
