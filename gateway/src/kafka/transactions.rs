//! Transactional producers, pooled per replica, for atomic batches and `Idempotency-Key`
//! ingest.
//!
//! Each slot of the pool has a stable `transactional.id`, `sluice-tx-{replica_id}-{n}`. The
//! first thing a replica does with each slot is `init_transactions`, which fences the slot's
//! previous holder — this replica before a crash or restart — and aborts whatever transaction it
//! left open, so a restarted replica frees what its dead incarnation held at once instead of after
//! the transaction timeout. A request holds one slot for its whole transaction; a slot whose
//! producer failed fatally (fenced by a second replica wrongly given the same `replica_id`, or its
//! state lost) gets a fresh producer on its next use.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, Producer as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::producer::{Delivered, ProduceError, classify, delivered, record};
use crate::config::{ExactlyOnceConfig, KafkaConfig};

/// How long `init_transactions`, commits and aborts may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// The pool of transactional producers.
pub struct Transactions {
    config: ClientConfig,
    prefix: String,
    /// Free slots, least recently used first: a producer that just committed is still
    /// completing its transaction on the broker, and beginning its next one at once makes
    /// librdkafka back off (`CONCURRENT_TRANSACTIONS`) for 20 ms.
    slots: Mutex<VecDeque<Slot>>,
    free: Arc<Semaphore>,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

struct Slot {
    index: usize,
    /// `None` until first used, and after a fatal error.
    producer: Option<FutureProducer>,
}

impl Transactions {
    pub fn new(kafka: &KafkaConfig, exactly_once: &ExactlyOnceConfig) -> Arc<Self> {
        Self::named(kafka, exactly_once, format!("sluice-tx-{}", exactly_once.replica_id), exactly_once.producers)
    }

    /// A pool of `producers` with ids `{prefix}-{n}`.
    pub fn named(kafka: &KafkaConfig, exactly_once: &ExactlyOnceConfig, prefix: String, producers: usize) -> Arc<Self> {
        let mut config = super::producer::producer_config(kafka);
        config
            .set("transaction.timeout.ms", exactly_once.transaction_timeout_ms.to_string())
            .set("message.timeout.ms", kafka.delivery_timeout_ms.min(exactly_once.transaction_timeout_ms).to_string())
            // A transaction waits for its records anyway; no point batching across requests.
            .set("linger.ms", "1");
        let slots = (0..producers).map(|index| Slot { index, producer: None }).collect();
        Arc::new(Self {
            config,
            prefix,
            slots: Mutex::new(slots),
            free: Arc::new(Semaphore::new(producers)),
            acquire_timeout: Duration::from_millis(exactly_once.acquire_timeout_ms),
        })
    }

    /// Initialises every slot now, in the background: fencing the previous incarnation of this
    /// replica aborts the transactions it left open, which `read_committed` readers (and other
    /// replicas' claims) would otherwise wait on until they time out.
    pub fn fence_previous(self: &Arc<Self>) {
        let pool = self.clone();
        tokio::spawn(async move {
            let count = pool.slots.lock().unwrap_or_else(PoisonError::into_inner).len();
            // One at a time, each back in the pool at once: requests are served meanwhile.
            for _ in 0..count {
                if let Err(error) = pool.acquire(Prefer::Uninitialised).await {
                    tracing::warn!(error = %error, "cannot initialise the transactional producers yet; retrying on use");
                    return;
                }
            }
            tracing::info!(prefix = pool.prefix, producers = count, "transactional producers ready");
        });
    }

    /// A slot with an initialised producer, waiting up to the acquire timeout for one.
    async fn acquire(self: &Arc<Self>, prefer: Prefer) -> Result<Held, ProduceError> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.free.clone().acquire_owned())
            .await
            .map_err(|_| ProduceError::Overloaded)?
            .map_err(|_| ProduceError::Unavailable("the gateway is shutting down".into()))?;
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let wanted = slots.iter().position(|s| s.producer.is_none() == (prefer == Prefer::Uninitialised));
            match wanted {
                Some(index) => slots.remove(index),
                None => slots.pop_front(),
            }
        };
        let Some(mut slot) = slot else {
            // The permits and the slots are one-to-one.
            return Err(ProduceError::Unavailable("no transactional producer is free".into()));
        };
        if slot.producer.is_none() {
            let mut config = self.config.clone();
            config.set("transactional.id", format!("{}-{}", self.prefix, slot.index));
            let created = tokio::task::spawn_blocking(move || -> Result<FutureProducer, KafkaError> {
                let producer: FutureProducer = config.create()?;
                producer.init_transactions(KAFKA_TIMEOUT)?;
                Ok(producer)
            })
            .await
            .map_err(|e| ProduceError::Unavailable(e.to_string()))
            .and_then(|r| r.map_err(|e| transaction_error(&e)));
            match created {
                Ok(producer) => slot.producer = Some(producer),
                Err(error) => {
                    self.release(slot);
                    return Err(error);
                }
            }
        }
        Ok(Held { pool: self.clone(), slot: Some(slot), _permit: permit })
    }

    fn release(&self, slot: Slot) {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).push_back(slot);
    }

    /// Begins a transaction on a free producer.
    pub async fn begin(self: &Arc<Self>) -> Result<Transaction, ProduceError> {
        let held = self.acquire(Prefer::Ready).await?;
        let producer = held.producer().clone();
        match tokio::task::spawn_blocking(move || producer.begin_transaction()).await {
            Ok(Ok(())) => Ok(Transaction { held: Some(held), open: true }),
            Ok(Err(error)) => {
                let error = transaction_error(&error);
                held.discard();
                Err(error)
            }
            Err(join) => Err(ProduceError::Unavailable(join.to_string())),
        }
    }
}

/// Which slot to take when several are free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefer {
    /// One whose producer is initialised: no `init_transactions` round trips for a request.
    Ready,
    /// One not initialised yet (fencing at start).
    Uninitialised,
}

/// A slot taken from the pool; goes back when dropped.
struct Held {
    pool: Arc<Transactions>,
    slot: Option<Slot>,
    _permit: OwnedSemaphorePermit,
}

impl Held {
    fn producer(&self) -> &FutureProducer {
        self.slot.as_ref().and_then(|s| s.producer.as_ref()).expect("a held slot has a producer")
    }

    /// Drops the producer (its state is unusable); the slot gets a new one on its next use.
    fn discard(mut self) {
        if let Some(slot) = self.slot.as_mut() {
            slot.producer = None;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.pool.release(slot);
        }
    }
}

/// An open transaction. Dropped without [`commit`](Self::commit) (an error, a cancelled
/// request), it is aborted in the background before its producer is reused.
pub struct Transaction {
    held: Option<Held>,
    open: bool,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("open", &self.open).finish_non_exhaustive()
    }
}

impl Transaction {
    fn producer(&self) -> &FutureProducer {
        self.held.as_ref().expect("a transaction holds its slot until it ends").producer()
    }

    /// Queues one record in the transaction.
    pub fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: Option<rdkafka::message::OwnedHeaders>,
        timestamp_ms: Option<i64>,
    ) -> Result<DeliveryFuture, ProduceError> {
        let mut record = record(topic, key, payload, headers);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some(timestamp) = timestamp_ms {
            record = record.timestamp(timestamp);
        }
        self.producer().send_result(record).map_err(|(error, _)| classify(&error))
    }

    /// Waits for a queued record's acknowledgement (it is visible to `read_committed` readers
    /// only once the transaction commits).
    pub async fn delivered(&self, delivery: DeliveryFuture) -> Result<Delivered, ProduceError> {
        delivered(delivery).await
    }

    /// Adds a consumer's offsets to the transaction: they are committed for its group if, and
    /// only if, the transaction commits.
    pub async fn send_offsets(
        &self,
        offsets: rdkafka::TopicPartitionList,
        group: rdkafka::consumer::ConsumerGroupMetadata,
    ) -> Result<(), ProduceError> {
        let producer = self.producer().clone();
        tokio::task::spawn_blocking(move || producer.send_offsets_to_transaction(&offsets, &group, KAFKA_TIMEOUT))
            .await
            .map_err(|e| ProduceError::Unavailable(e.to_string()))?
            .map_err(|e| transaction_error(&e))
    }

    /// Commits: every record of the transaction becomes visible, or none does.
    pub async fn commit(mut self) -> Result<(), ProduceError> {
        let held = self.held.take().expect("a transaction holds its slot until it ends");
        self.open = false;
        let producer = held.producer().clone();
        let committed = tokio::task::spawn_blocking(move || producer.commit_transaction(KAFKA_TIMEOUT))
            .await
            .map_err(|e| e.to_string());
        match committed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                let produce_error = transaction_error(&error);
                tracing::warn!(error = %error, "a transaction did not commit; aborting it");
                end(held, &error);
                Err(produce_error)
            }
            Err(join) => {
                held.discard();
                Err(ProduceError::Unavailable(join))
            }
        }
    }

    /// Aborts: nothing of the transaction becomes visible.
    pub async fn abort(mut self) {
        self.open = false;
        if let Some(held) = self.held.take() {
            let _ = tokio::task::spawn_blocking(move || abort(held)).await;
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(held) = self.held.take()
            && self.open
        {
            // On a blocking thread: aborting waits for the coordinator.
            tokio::task::spawn_blocking(move || abort(held));
        }
    }
}

/// After a failed commit: abort when the transaction can still be aborted, else give up the
/// producer.
fn end(held: Held, error: &KafkaError) {
    match error {
        KafkaError::Transaction(e) if e.is_fatal() => held.discard(),
        _ => {
            tokio::task::spawn_blocking(move || abort(held));
        }
    }
}

/// Aborts the held producer's transaction (blocking); a producer that cannot abort is replaced.
fn abort(held: Held) {
    if let Err(error) = held.producer().abort_transaction(KAFKA_TIMEOUT) {
        tracing::warn!(error = %error, "cannot abort a transaction; replacing its producer");
        held.discard();
    }
}

/// What a transaction error means for the request.
fn transaction_error(error: &KafkaError) -> ProduceError {
    match error {
        KafkaError::Transaction(e) if e.is_fatal() => {
            ProduceError::Unavailable(format!("the transactional producer failed: {e}"))
        }
        KafkaError::Transaction(e) => ProduceError::Unavailable(format!("the transaction failed: {e}")),
        other => classify(other),
    }
}
