//! `Idempotency-Key` on produce requests: a retry of a request (same credential, topic, key and
//! body) within the window gets the first request's answer again instead of producing twice.
//!
//! This module keeps answers in this replica's memory (`exactly_once.idempotency = "replica"`): a
//! retry that reaches another replica is produced again. [`cluster`] keeps them in Kafka, for
//! every replica. Only final answers are kept (2xx, 207 and 4xx); after a 5xx the retry really retries.
//! A retry that arrives while the first request is still running waits for its answer. The
//! same key with a different body is refused (422 `idempotency-key-reused`), as is a key
//! reused for another topic (the key is scoped to the topic, so that is simply a new request).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::problem::Problem;

pub mod cluster;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on an answer that is a replay of an earlier one.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;
/// What an entry costs beyond its answer's body, roughly.
const ENTRY_OVERHEAD: usize = 160;

/// Who sent which key to where.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id {
    principal: String,
    topic: String,
    key: String,
}

/// A kept answer.
#[derive(Debug)]
pub struct Stored {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Stored {
    /// Keeps a response's status, body and the headers worth replaying; hands the response back.
    pub async fn capture(response: Response) -> (Stored, Response) {
        let (parts, body) = response.into_parts();
        // The body is already in memory (JSON built by the handler).
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| *name == axum::http::header::CONTENT_TYPE || *name == axum::http::header::RETRY_AFTER)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let stored = Stored { status: parts.status, headers, body: body.clone() };
        (stored, Response::from_parts(parts, axum::body::Body::from(body)))
    }

    fn cost(&self, id: &Id) -> usize {
        self.body.len() + id.principal.len() + id.topic.len() + id.key.len() + ENTRY_OVERHEAD
    }

    /// The answer again, marked as a replay.
    pub fn replay(&self) -> Response {
        let mut response = (self.status, self.body.clone()).into_response();
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(HeaderName::from_static(REPLAYED), HeaderValue::from_static("true"));
        response
    }
}

enum Slot {
    Running { fingerprint: [u8; 32], done: watch::Receiver<()> },
    Done { fingerprint: [u8; 32], at: Instant, answer: Arc<Stored> },
}

#[derive(Default)]
struct State {
    slots: HashMap<Id, Slot>,
    /// Finished entries, oldest first, for expiry and the memory cap.
    order: VecDeque<(Instant, Id)>,
    bytes: usize,
}

impl State {
    /// Drops finished entries older than the window, then the oldest while over the cap.
    fn evict(&mut self, now: Instant, window: Duration, max_bytes: usize) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < window && self.bytes <= max_bytes {
                break;
            }
            let Some((at, id)) = self.order.pop_front() else { break };
            // The slot may have been replaced since (expired, then used again): only its own
            // queue entry removes it.
            if let Some(Slot::Done { at: slot_at, answer, .. }) = self.slots.get(&id)
                && *slot_at == at
            {
                self.bytes -= answer.cost(&id);
                self.slots.remove(&id);
            }
        }
    }
}

/// What a request with a key does next.
#[derive(Debug)]
pub enum Begin {
    /// First of its kind: run it, then [`Claim::finish`].
    Fresh(Claim),
    /// Answered before: send this.
    Replay(Arc<Stored>),
    /// The key was used with a different body.
    Reused,
}

/// The kept answers.
pub struct Idempotency {
    window: Duration,
    max_bytes: usize,
    state: Mutex<State>,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency").field("window", &self.window).finish_non_exhaustive()
    }
}

impl Idempotency {
    /// `None` when the window is 0 (the header is then ignored).
    pub fn new(window: Duration, max_bytes: usize) -> Option<Arc<Self>> {
        (!window.is_zero()).then(|| Arc::new(Self { window, max_bytes, state: Mutex::default() }))
    }

    /// The request's identity, or a 400 for a key that is empty, too long or not visible ASCII.
    pub fn id(headers: &HeaderMap, principal: &str, topic: &str) -> Result<Option<Id>, Problem> {
        let Some(value) = headers.get(HEADER) else { return Ok(None) };
        let key = value.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN);
        let key = key.ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                format!("an Idempotency-Key is 1 to {MAX_KEY_LEN} visible ASCII characters"),
            )
        })?;
        Ok(Some(Id { principal: principal.to_owned(), topic: topic.to_owned(), key: key.to_owned() }))
    }

    /// Claims the id for this body, or says what to answer instead. Waits while a request with
    /// the same id and body runs.
    pub async fn begin(self: &Arc<Self>, id: Id, body: &[u8]) -> Begin {
        let fingerprint: [u8; 32] = Sha256::digest(body).into();
        loop {
            let mut running = match self.try_begin(&id, fingerprint, Instant::now()) {
                Ok(begin) => return begin,
                Err(running) => running,
            };
            // Wakes when the running request finishes or is abandoned (sender dropped).
            let _ = running.changed().await;
        }
    }

    fn try_begin(self: &Arc<Self>, id: &Id, fingerprint: [u8; 32], now: Instant) -> Result<Begin, watch::Receiver<()>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.evict(now, self.window, self.max_bytes);
        match state.slots.get(id) {
            Some(Slot::Done { fingerprint: kept, answer, .. }) => {
                Ok(if *kept == fingerprint { Begin::Replay(answer.clone()) } else { Begin::Reused })
            }
            Some(Slot::Running { fingerprint: kept, done }) => {
                if *kept == fingerprint {
                    Err(done.clone())
                } else {
                    Ok(Begin::Reused)
                }
            }
            None => {
                let (sender, done) = watch::channel(());
                state.slots.insert(id.clone(), Slot::Running { fingerprint, done });
                Ok(Begin::Fresh(Claim { store: self.clone(), id: id.clone(), fingerprint, running: sender }))
            }
        }
    }

    fn finish(&self, id: &Id, fingerprint: [u8; 32], answer: Option<Stored>, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match answer {
            Some(answer) => {
                let answer = Arc::new(answer);
                state.bytes += answer.cost(id);
                state.order.push_back((now, id.clone()));
                state.slots.insert(id.clone(), Slot::Done { fingerprint, at: now, answer });
                state.evict(now, self.window, self.max_bytes);
            }
            None => {
                state.slots.remove(id);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).slots.len()
    }
}

/// The right to run a request first; dropping it unfinished (the request was cancelled) lets
/// a waiting retry run instead.
#[derive(Debug)]
pub struct Claim {
    store: Arc<Idempotency>,
    id: Id,
    fingerprint: [u8; 32],
    /// Dropped when this claim ends, waking the retries that wait on it.
    running: watch::Sender<()>,
}

impl Claim {
    /// Keeps a final answer (not a 5xx) and hands the response back unchanged.
    pub async fn finish(self, response: Response) -> Response {
        if response.status().is_server_error() {
            return response;
        }
        let (stored, response) = Stored::capture(response).await;
        self.store.finish(&self.id, self.fingerprint, Some(stored), Instant::now());
        response
    }
}

impl Drop for Claim {
    /// Unfinished (cancelled, or a 5xx): the id is free again. Finished, the slot is no longer
    /// this claim's running one and stays.
    fn drop(&mut self) {
        let mut state = self.store.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Slot::Running { done, .. }) = state.slots.get(&self.id)
            && done.same_channel(&self.running.subscribe())
        {
            state.slots.remove(&self.id);
        }
    }
}

/// 422 for a key used with another body.
pub fn reused(key_id: &Id) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        format!(
            "the Idempotency-Key '{}' was used for a different request body to this topic; use a new key for a new request",
            key_id.key
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: &str) -> Id {
        Id { principal: "p".into(), topic: "t".into(), key: key.into() }
    }

    fn answer(body: &str) -> Stored {
        Stored { status: StatusCode::OK, headers: vec![], body: Bytes::from(body.to_owned()) }
    }

    fn fresh(begin: Result<Begin, watch::Receiver<()>>) -> Claim {
        match begin {
            Ok(Begin::Fresh(claim)) => claim,
            _ => panic!("expected a fresh claim"),
        }
    }

    #[test]
    fn answers_are_replayed_within_the_window_and_forgotten_after_it() {
        let store = Idempotency::new(Duration::from_secs(60), 1 << 20).unwrap();
        let start = Instant::now();
        let claim = fresh(store.try_begin(&id("a"), [1; 32], start));
        store.finish(&claim.id, claim.fingerprint, Some(answer("first")), start);
        let at = start + Duration::from_secs(59);
        assert!(matches!(store.try_begin(&id("a"), [1; 32], at), Ok(Begin::Replay(a)) if a.body == "first"));
        assert!(matches!(store.try_begin(&id("a"), [2; 32], at), Ok(Begin::Reused)));
        // After the window, the key is new again.
        let later = start + Duration::from_secs(61);
        assert!(matches!(store.try_begin(&id("a"), [2; 32], later), Ok(Begin::Fresh(_))));
    }

    #[test]
    fn a_retry_waits_while_the_first_runs_and_runs_itself_if_the_first_is_abandoned() {
        let store = Idempotency::new(Duration::from_secs(60), 1 << 20).unwrap();
        let now = Instant::now();
        let claim = fresh(store.try_begin(&id("a"), [1; 32], now));
        let Err(waiting) = store.try_begin(&id("a"), [1; 32], now) else { panic!("expected to wait") };
        assert!(matches!(store.try_begin(&id("a"), [9; 32], now), Ok(Begin::Reused)));
        drop(claim);
        assert!(waiting.has_changed().is_err(), "the waiter is woken");
        assert!(matches!(store.try_begin(&id("a"), [1; 32], now), Ok(Begin::Fresh(_))));
    }

    #[test]
    fn the_oldest_answers_go_first_when_memory_runs_out() {
        let body = "x".repeat(1000);
        let store = Idempotency::new(Duration::from_secs(60), 3 * (1000 + ENTRY_OVERHEAD + 3)).unwrap();
        let now = Instant::now();
        for key in ["a", "b", "c", "d"] {
            let claim = fresh(store.try_begin(&id(key), [1; 32], now));
            store.finish(&claim.id, claim.fingerprint, Some(answer(&body)), now);
        }
        assert_eq!(store.len(), 3);
        assert!(matches!(store.try_begin(&id("b"), [1; 32], now), Ok(Begin::Replay(_))));
        assert!(matches!(store.try_begin(&id("a"), [1; 32], now), Ok(Begin::Fresh(_))));
    }
}
