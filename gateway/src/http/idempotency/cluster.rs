//! `Idempotency-Key` honoured by every replica: outcomes live in Kafka, written in the same
//! transaction as the request's events.
//!
//! # The claim protocol
//! Every key hashes to one partition of a compacted topic (`exactly_once.idempotency_topic`). A
//! request with a key:
//! 1. begins a transaction and writes a *claim* record (key hash, body fingerprint) to the key's
//!    partition, learning the claim's offset `c`;
//! 2. waits until the partition's last stable offset reaches `c`: every transaction that wrote
//!    to the partition before the claim has committed or aborted (Kafka's transaction
//!    coordinator decides; a transaction of a replica that died is aborted when that replica
//!    comes back under the same `replica_id` or when it times out);
//! 3. reads, `read_committed`, everything on the partition below `c`. The earliest committed
//!    claim for the key wins. A claim is committed only together with its request's events and
//!    its *outcome* record (the answer), so a committed earlier claim means the request was
//!    already served: this request aborts its transaction (its claim disappears) and replays the
//!    winner's answer, or answers 422 when its body differs. With no earlier committed claim,
//!    this request wins:
//! 4. it writes its events and its outcome in the transaction and commits. Claims, events and
//!    outcome become visible together, or (on any failure, or a crash) not at all.
//!
//! Two requests racing with the same key on two replicas are ordered by their claims' offsets;
//! the later one waits for the earlier one's transaction, then either replays its answer (it
//! committed) or wins (it aborted). Failure cases:
//! - The winner's replica dies mid-request: its transaction stays open, and later claims on the
//!   partition wait (bounded by `CLAIM_WAIT`, then 503 with `Retry-After`) until the broker
//!   aborts it — at once when the replica restarts and fences its transactional ids, else after
//!   `exactly_once.transaction_timeout_ms` — after which a retry wins and writes the events once.
//! - A commit whose outcome is unknown (the coordinator did not answer in time) is answered 503;
//!   a retry with the same key either replays the answer (it did commit) or runs (it did not).
//! - Answers older than `http.idempotency_window_s` are forgotten (and the topic deletes
//!   them after twice the window): a retry after the window is a new request.
//! - Answers beyond `http.idempotency_max_bytes` in memory are forgotten oldest first, even
//!   within the window; a warning says so.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use super::{Id, Stored};
use crate::http::problem::Problem;
use crate::kafka::log;
use crate::kafka::transactions::{Transaction, Transactions};

/// Longest a claim waits for earlier transactions on its partition before 503.
const CLAIM_WAIT: Duration = Duration::from_secs(5);
/// Longest a loser waits to read the winner's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);
/// Outcomes hold whole answers (up to 1,000 results).
const MAX_RECORD_BYTES: &str = "4194304";

/// What the topic holds, keyed by the hash of the request's id.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Claim {
        request: String,
        fingerprint: String,
        at_ms: u64,
    },
    Outcome {
        request: String,
        fingerprint: String,
        at_ms: u64,
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
}

/// What this replica knows of one key, from committed records.
struct Entry {
    /// Offset of the earliest committed claim (or outcome) in the window.
    offset: i64,
    request: String,
    fingerprint: String,
    at_ms: u64,
    answer: Option<Arc<Stored>>,
}

#[derive(Default)]
struct State {
    entries: HashMap<[u8; 32], Entry>,
    /// Keys by the time of their entry, oldest first, for expiry and the memory cap.
    order: VecDeque<(u64, [u8; 32])>,
    bytes: usize,
}

impl State {
    fn cost(entry: &Entry) -> usize {
        160 + entry.answer.as_ref().map_or(0, |a| a.body.len())
    }

    /// Folds in one committed record (folding the same record twice changes nothing).
    fn apply(&mut self, key: &[u8], offset: i64, value: &[u8], window_ms: u64) {
        let Ok(key) = <[u8; 32]>::try_from(key) else { return };
        let Ok(record) = serde_json::from_slice::<Record>(value) else {
            tracing::warn!(offset, "skipping an unreadable idempotency record");
            return;
        };
        let now = now_ms();
        let (request, fingerprint, at_ms, answer) = match record {
            Record::Claim { request, fingerprint, at_ms } => (request, fingerprint, at_ms, None),
            Record::Outcome { request, fingerprint, at_ms, status, headers, body } => {
                let stored = Stored {
                    status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                    headers: headers
                        .iter()
                        .filter_map(|(n, v)| Some((HeaderName::try_from(n).ok()?, HeaderValue::try_from(v).ok()?)))
                        .collect(),
                    body: body.into(),
                };
                (request, fingerprint, at_ms, Some(Arc::new(stored)))
            }
        };
        if now.saturating_sub(at_ms) >= window_ms {
            return;
        }
        match self.entries.get_mut(&key) {
            // Still in the window: the earliest claim stays the winner; its outcome completes it.
            Some(entry) if now.saturating_sub(entry.at_ms) < window_ms => {
                if entry.request == request && entry.answer.is_none() && answer.is_some() {
                    self.bytes -= Self::cost(entry);
                    entry.answer = answer;
                    self.bytes += Self::cost(entry);
                }
            }
            _ => {
                let entry = Entry { offset, request, fingerprint, at_ms, answer };
                self.bytes += Self::cost(&entry);
                if let Some(old) = self.entries.insert(key, entry) {
                    self.bytes -= Self::cost(&old);
                }
                self.order.push_back((at_ms, key));
            }
        }
    }

    fn evict(&mut self, window_ms: u64, max_bytes: usize) {
        let now = now_ms();
        while let Some(&(at_ms, key)) = self.order.front() {
            let expired = now.saturating_sub(at_ms) >= window_ms;
            if !expired && self.bytes <= max_bytes {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|e| e.at_ms == at_ms)
                && let Some(entry) = self.entries.remove(&key)
            {
                self.bytes -= Self::cost(&entry);
                if !expired {
                    tracing::warn!(
                        "an Idempotency-Key answer was forgotten before its window ended (http.idempotency_max_bytes is full)"
                    );
                }
            }
        }
    }
}

/// The cluster-wide `Idempotency-Key` store.
pub struct Claims {
    topic: String,
    partitions: i32,
    window_ms: u64,
    transactions: Arc<Transactions>,
    state: Arc<Mutex<State>>,
    /// The reader's next offset per partition.
    positions: watch::Receiver<Vec<i64>>,
    /// For last stable offsets.
    meta: Arc<BaseConsumer>,
    reader_config: ClientConfig,
    scanners: Mutex<Vec<BaseConsumer>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl Drop for Claims {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a request with a key does, once its claim is decided.
enum Decision {
    Won,
    Replay(Arc<Stored>),
    /// An earlier request won: replay its answer once read (after aborting this claim, which
    /// holds back the reader of the partition while it is open).
    Lost {
        winner: String,
    },
    Reused,
}

impl Claims {
    /// Creates the topic if needed and starts reading it from the beginning.
    pub async fn start(
        client: &ClientConfig,
        topic: &str,
        partitions: i32,
        window: Duration,
        max_bytes: usize,
        transactions: Arc<Transactions>,
    ) -> Result<Arc<Self>, String> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        // Compacted, and deleting records older than twice the window.
        let retention = window_ms.saturating_mul(2).to_string();
        let settings = [
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", retention.as_str()),
            ("max.message.bytes", MAX_RECORD_BYTES),
        ];
        let partitions = log::ensure_topic(client, topic, partitions, &settings).await.map_err(|e| e.to_string())?;
        let mut reader_config = client.clone();
        reader_config
            .set("group.id", "sluice-idempotency-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "10")
            .set("fetch.message.max.bytes", MAX_RECORD_BYTES);
        let reader: BaseConsumer = reader_config.create().map_err(|e| e.to_string())?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment.add_partition_offset(topic, partition, Offset::Beginning).map_err(|e| e.to_string())?;
        }
        reader.assign(&assignment).map_err(|e| e.to_string())?;
        let state = Arc::new(Mutex::new(State::default()));
        let (positions_tx, positions) = watch::channel(vec![-1; usize::try_from(partitions).unwrap_or(0)]);
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (state, stop, topic) = (state.clone(), stop.clone(), topic.to_owned());
            std::thread::Builder::new()
                .name("sluice-idempotency".into())
                .spawn(move || read_loop(&reader, &topic, &state, &positions_tx, &stop, window_ms, max_bytes))
                .map_err(|e| e.to_string())?;
        }
        let mut scanner_config = reader_config.clone();
        scanner_config.set("enable.partition.eof", "true").set("fetch.wait.max.ms", "1");
        let claims = Arc::new(Self {
            topic: topic.to_owned(),
            partitions,
            window_ms,
            transactions,
            state,
            positions,
            meta: Arc::new(reader_config.create().map_err(|e| e.to_string())?),
            reader_config: scanner_config,
            scanners: Mutex::new(Vec::new()),
            stop,
        });
        Ok(claims)
    }

    /// Runs a request with an `Idempotency-Key` exactly once across replicas: `write` gets the
    /// open transaction to write the events in and answers; the answer is kept with the events.
    pub async fn run(&self, id: Id, body: &[u8], write: impl AsyncFnOnce(&Transaction) -> Response) -> Response {
        let key: [u8; 32] = Sha256::digest(format!("{}\0{}\0{}", id.principal, id.topic, id.key)).into();
        let fingerprint = hex(&Sha256::digest(body));
        // Answered before, and this replica has read it: no transaction needed.
        match self.known(&key, &fingerprint) {
            Some(Decision::Replay(answer)) => return answer.replay(),
            Some(Decision::Reused) => return super::reused(&id).into_response(),
            _ => {}
        }
        let partition =
            i32::try_from(u32::from_be_bytes([key[0], key[1], key[2], key[3]]) % self.partitions.unsigned_abs())
                .unwrap_or(0);
        let request = request_id();
        let tx = match self.transactions.begin().await {
            Ok(tx) => tx,
            Err(error) => return unavailable(&error.to_string()),
        };
        let claim = Record::Claim { request: request.clone(), fingerprint: fingerprint.clone(), at_ms: now_ms() };
        let offset = match self.send(&tx, partition, &key, &claim).await {
            Ok(offset) => offset,
            Err(error) => return unavailable(&error),
        };
        if let Err(error) = self.wait_stable(partition, offset).await {
            tx.abort().await;
            return unavailable(&error);
        }
        match self.decide(&key, &fingerprint, partition, offset).await {
            Err(error) => {
                tx.abort().await;
                unavailable(&error)
            }
            Ok(Decision::Reused) => {
                tx.abort().await;
                super::reused(&id).into_response()
            }
            Ok(Decision::Replay(answer)) => {
                tx.abort().await;
                answer.replay()
            }
            Ok(Decision::Lost { winner }) => {
                tx.abort().await;
                match self.answer_of(&key, &winner).await {
                    Ok(answer) => answer.replay(),
                    Err(error) => unavailable(&error),
                }
            }
            Ok(Decision::Won) => {
                // No earlier claim: this request's own, still in the transaction, is the winner.
                let response = write(&tx).await;
                if response.status().is_server_error() {
                    tx.abort().await;
                    return response;
                }
                let (stored, response) = Stored::capture(response).await;
                let outcome = Record::Outcome {
                    request,
                    fingerprint,
                    at_ms: now_ms(),
                    status: stored.status.as_u16(),
                    headers: stored
                        .headers
                        .iter()
                        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                        .collect(),
                    body: String::from_utf8_lossy(&stored.body).into_owned(),
                };
                if let Err(error) = self.send(&tx, partition, &key, &outcome).await {
                    tx.abort().await;
                    return unavailable(&error);
                }
                match tx.commit().await {
                    Ok(()) => response,
                    Err(error) => unavailable(&error.to_string()),
                }
            }
        }
    }

    /// What this replica already knows about a key.
    fn known(&self, key: &[u8; 32], fingerprint: &str) -> Option<Decision> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = state.entries.get(key)?;
        if now_ms().saturating_sub(entry.at_ms) >= self.window_ms {
            return None;
        }
        if entry.fingerprint != fingerprint {
            return Some(Decision::Reused);
        }
        entry.answer.clone().map(Decision::Replay)
    }

    async fn send(&self, tx: &Transaction, partition: i32, key: &[u8; 32], record: &Record) -> Result<i64, String> {
        let value = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        let delivery =
            tx.send(&self.topic, Some(partition), Some(key), Some(&value), None, None).map_err(|e| e.to_string())?;
        tx.delivered(delivery).await.map(|d| d.offset).map_err(|e| e.to_string())
    }

    /// A partition's first offset and last stable offset (the reader is `read_committed`).
    async fn watermarks(&self, partition: i32) -> Result<(i64, i64), String> {
        let (meta, topic) = (self.meta.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || meta.fetch_watermarks(&topic, partition, KAFKA_TIMEOUT))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Waits until every transaction that wrote to `partition` before `offset` has ended.
    async fn wait_stable(&self, partition: i32, offset: i64) -> Result<(), String> {
        let deadline = Instant::now() + CLAIM_WAIT;
        let mut pause = Duration::from_millis(1);
        loop {
            let stable = self.watermarks(partition).await?.1;
            if stable >= offset {
                return Ok(());
            }
            if Instant::now() + pause > deadline {
                return Err("an earlier request with a key on the same partition is still open".into());
            }
            tokio::time::sleep(pause).await;
            // The wait is usually for one earlier transaction's commit: a few milliseconds.
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Decides a claim at `offset` once every committed record below it can be read.
    async fn decide(&self, key: &[u8; 32], fingerprint: &str, partition: i32, offset: i64) -> Result<Decision, String> {
        self.read_below(partition, offset).await?;
        let earlier = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state
                .entries
                .get(key)
                .filter(|e| e.offset < offset && now_ms().saturating_sub(e.at_ms) < self.window_ms)
                .map(|e| (e.fingerprint != fingerprint, e.request.clone()))
        };
        match earlier {
            None => Ok(Decision::Won),
            Some((true, _)) => Ok(Decision::Reused),
            Some((false, winner)) => Ok(Decision::Lost { winner }),
        }
    }

    /// Makes sure every committed record of `partition` below `offset` is folded in: the reader
    /// usually is there already; if its position stopped short (aborted records just below the
    /// claim move no position), a fresh consumer reads the gap up to the partition's end.
    async fn read_below(&self, partition: i32, offset: i64) -> Result<(), String> {
        let index = usize::try_from(partition).unwrap_or(0);
        let mut positions = self.positions.clone();
        // The reader is usually a marker behind at most; a scan costs a fetch.
        let reached = tokio::time::timeout(
            Duration::from_millis(5),
            positions.wait_for(|p| p.get(index).is_some_and(|next| *next >= offset)),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if reached {
            return Ok(());
        }
        let mut from = self.positions.borrow().get(index).copied().unwrap_or(-1);
        if from < 0 {
            // Nothing read yet: from the first offset the partition still has (an explicit
            // offset answers at once; "beginning" costs a lookup and its backoff).
            from = self.watermarks(partition).await?.0;
        }
        if from >= offset {
            return Ok(());
        }
        let scanner = self.scanners.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let scanner = match scanner {
            Some(scanner) => scanner,
            None => self.reader_config.create::<BaseConsumer>().map_err(|e| e.to_string())?,
        };
        let (topic, state, window_ms) = (self.topic.clone(), self.state.clone(), self.window_ms);
        let (scanner, result) = tokio::task::spawn_blocking(move || {
            let result = scan(&scanner, &topic, partition, from, offset, &state, window_ms);
            (scanner, result)
        })
        .await
        .map_err(|e| e.to_string())?;
        self.scanners.lock().unwrap_or_else(PoisonError::into_inner).push(scanner);
        result
    }

    /// The winner's answer, once the reader has it.
    async fn answer_of(&self, key: &[u8; 32], winner: &str) -> Result<Arc<Stored>, String> {
        let mut positions = self.positions.clone();
        let wait = async {
            loop {
                {
                    let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(answer) =
                        state.entries.get(key).filter(|e| e.request == winner).and_then(|e| e.answer.clone())
                    {
                        return Ok(answer);
                    }
                }
                if positions.changed().await.is_err() {
                    return Err("the idempotency reader stopped".to_owned());
                }
            }
        };
        tokio::time::timeout(ANSWER_WAIT, wait)
            .await
            .map_err(|_| "the answer of an earlier request with this key was not read in time".to_owned())?
    }
}

/// Reads `partition` from `from` (the reader's position) to its last stable offset, folding
/// committed records below `below` in.
fn scan(
    scanner: &BaseConsumer,
    topic: &str,
    partition: i32,
    from: i64,
    below: i64,
    state: &Mutex<State>,
    window_ms: u64,
) -> Result<(), String> {
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(from)).map_err(|e| e.to_string())?;
    scanner.assign(&assignment).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + KAFKA_TIMEOUT;
    while Instant::now() < deadline {
        match scanner.poll(Duration::from_millis(50)) {
            Some(Ok(message)) if message.offset() < below => {
                if let (Some(key), Some(value)) = (message.key(), message.payload()) {
                    state.lock().unwrap_or_else(PoisonError::into_inner).apply(key, message.offset(), value, window_ms);
                }
            }
            Some(Ok(_)) => return Ok(()),
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => return Ok(()),
            Some(Err(error)) => tracing::debug!(error = %error, "idempotency scan"),
            None => {}
        }
    }
    Err(format!("{topic} partition {partition} was not read up to offset {below} in time"))
}

fn read_loop(
    reader: &BaseConsumer,
    topic: &str,
    state: &Mutex<State>,
    positions: &watch::Sender<Vec<i64>>,
    stop: &AtomicBool,
    window_ms: u64,
    max_bytes: usize,
) {
    let mut last_evict = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Short: a transaction marker moves the position without returning a message, and a
        // claim waits for the position to pass the markers below it.
        match reader.poll(Duration::from_millis(5)) {
            Some(Ok(message)) => {
                if let (Some(key), Some(value)) = (message.key(), message.payload()) {
                    state.lock().unwrap_or_else(PoisonError::into_inner).apply(key, message.offset(), value, window_ms);
                }
                let (partition, next) = (message.partition(), message.offset() + 1);
                positions.send_if_modified(|p| advance(p, partition, next));
            }
            Some(Err(error)) => tracing::warn!(topic, error = %error, "idempotency reader error"),
            None => {}
        }
        // Read committed skips transaction markers; the position moves past them as well.
        if let Ok(assigned) = reader.position() {
            positions.send_if_modified(|p| {
                let mut moved = false;
                for element in assigned.elements_for_topic(topic) {
                    if let Offset::Offset(next) = element.offset() {
                        moved |= advance(p, element.partition(), next);
                    }
                }
                moved
            });
        }
        if last_evict.elapsed() > Duration::from_secs(1) {
            state.lock().unwrap_or_else(PoisonError::into_inner).evict(window_ms, max_bytes);
            last_evict = Instant::now();
        }
    }
}

fn advance(positions: &mut [i64], partition: i32, next: i64) -> bool {
    match usize::try_from(partition).ok().and_then(|i| positions.get_mut(i)) {
        Some(current) if next > *current => {
            *current = next;
            true
        }
        _ => false,
    }
}

fn unavailable(why: &str) -> Response {
    tracing::warn!(error = why, "an Idempotency-Key request could not be decided");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "idempotency-unavailable",
        "Idempotency-Key outcome unavailable",
        "the outcome of this Idempotency-Key could not be recorded or read; nothing was written, retry with the same key",
    )
    .retry_after(1)
    .into_response()
}

fn now_ms() -> u64 {
    u64::try_from(crate::telemetry::now_ms()).unwrap_or(0)
}

/// A random name for one request's claim (its outcome names it too).
fn request_id() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness the time still tells requests apart; a clash only costs a replay.
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&now_ms().to_be_bytes());
    }
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(request: &str, fingerprint: &str, at_ms: u64) -> Vec<u8> {
        serde_json::to_vec(&Record::Claim { request: request.into(), fingerprint: fingerprint.into(), at_ms }).unwrap()
    }

    fn outcome(request: &str, at_ms: u64, body: &str) -> Vec<u8> {
        serde_json::to_vec(&Record::Outcome {
            request: request.into(),
            fingerprint: "f".into(),
            at_ms,
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        })
        .unwrap()
    }

    #[test]
    fn the_earliest_claim_wins_and_its_outcome_completes_it() {
        let now = now_ms();
        let mut state = State::default();
        let key = [7; 32];
        state.apply(&key, 3, &claim("a", "f", now), 60_000);
        // A later committed claim (another request, e.g. folded by a scan) does not replace it.
        state.apply(&key, 9, &claim("b", "f", now), 60_000);
        state.apply(&key, 10, &outcome("b", now, "wrong"), 60_000);
        assert!(state.entries[&key].answer.is_none());
        state.apply(&key, 12, &outcome("a", now, "{\"results\":[]}"), 60_000);
        let entry = &state.entries[&key];
        assert_eq!((entry.offset, entry.request.as_str()), (3, "a"));
        assert_eq!(entry.answer.as_ref().unwrap().body, "{\"results\":[]}");
        // Folding the same records again changes nothing.
        state.apply(&key, 3, &claim("a", "f", now), 60_000);
        assert_eq!(state.entries[&key].offset, 3);
    }

    #[test]
    fn records_outside_the_window_are_ignored_and_expired_entries_replaced() {
        let now = now_ms();
        let mut state = State::default();
        let key = [1; 32];
        state.apply(&key, 1, &claim("old", "f", now - 120_000), 60_000);
        assert!(state.entries.is_empty(), "a record older than the window is not kept");
        state.apply(&key, 2, &claim("a", "f", now - 59_000), 1_000);
        assert!(state.entries.is_empty());
        state.apply(&key, 3, &claim("b", "f", now), 60_000);
        state.evict(60_000, usize::MAX);
        assert_eq!(state.entries[&key].request, "b");
        state.evict(0, usize::MAX);
        assert!(state.entries.is_empty() && state.bytes == 0);
    }

    #[test]
    fn unreadable_records_are_skipped() {
        let mut state = State::default();
        state.apply(&[1; 32], 1, b"not json", 60_000);
        state.apply(b"short", 1, &claim("a", "f", now_ms()), 60_000);
        assert!(state.entries.is_empty());
    }
}
