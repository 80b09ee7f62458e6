//! A real HTTP webhook receiver for the delivery tests: it records every request it gets and
//! answers as each path is told to (succeed, fail a number of times per message, always fail,
//! 410, be slow, or be slow for one key).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use tokio::sync::Notify;

/// How a path answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    Ok,
    /// Fail the first `times` attempts of each message (by `webhook-id`) with `status`.
    FailFirst {
        times: usize,
        status: u16,
        retry_after: Option<u64>,
    },
    Always(u16),
    Gone,
    /// Succeed after `delay`, every request: a subscriber that keeps deliveries in flight.
    Delay(Duration),
    /// Succeed, but only after `delay` for requests whose `sluice-key` is `key`.
    SlowKey {
        key: String,
        delay: Duration,
    },
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub status: u16,
    /// When the request arrived (before any deliberate delay).
    pub at: Instant,
    /// When the answer was sent.
    pub answered: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Inner {
    behaviours: HashMap<String, Behaviour>,
    attempts: HashMap<String, usize>,
    received: Vec<Received>,
}

/// A running receiver; it stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = (Arc<Mutex<Inner>>, Arc<Notify>);

impl Receiver {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner::default()));
        let arrived = Arc::new(Notify::new());
        let app = Router::new().route("/{*path}", post(handle)).with_state((inner.clone(), arrived.clone()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, inner, arrived, server })
    }

    /// The URL of a path on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn set(&self, path: &str, behaviour: Behaviour) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.behaviours.insert(path.trim_start_matches('/').to_owned(), behaviour);
    }

    /// Every request to a path so far, in arrival order.
    pub fn received(&self, path: &str) -> Vec<Received> {
        let path = path.trim_start_matches('/');
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.received.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits until `condition` holds for a path's requests, or `timeout` passes; returns them.
    pub async fn wait_until(
        &self,
        path: &str,
        timeout: Duration,
        condition: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let received = self.received(path);
            if condition(&received) || tokio::time::Instant::now() >= deadline {
                return received;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

async fn handle(
    State((inner, arrived)): State<Shared>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let at = Instant::now();
    let headers: HashMap<String, String> =
        headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned())).collect();
    let id = headers.get("webhook-id").cloned().unwrap_or_default();
    let (behaviour, attempt) = {
        let mut inner = inner.lock().unwrap_or_else(PoisonError::into_inner);
        let behaviour = inner.behaviours.get(&path).cloned().unwrap_or(Behaviour::Ok);
        let attempt = inner.attempts.entry(format!("{path}/{id}")).or_default();
        *attempt += 1;
        (behaviour, *attempt)
    };
    let (status, retry_after) = match &behaviour {
        Behaviour::Ok => (200, None),
        Behaviour::FailFirst { times, status, retry_after } if attempt <= *times => (*status, *retry_after),
        Behaviour::FailFirst { .. } => (200, None),
        Behaviour::Always(status) => (*status, None),
        Behaviour::Gone => (410, None),
        Behaviour::Delay(delay) => {
            tokio::time::sleep(*delay).await;
            (200, None)
        }
        Behaviour::SlowKey { key, delay } => {
            if headers.get("sluice-key") == Some(key) {
                tokio::time::sleep(*delay).await;
            }
            (200, None)
        }
    };
    let answered = Instant::now();
    inner.lock().unwrap_or_else(PoisonError::into_inner).received.push(Received {
        path,
        headers,
        body,
        status,
        at,
        answered,
    });
    arrived.notify_waiters();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = status.into_response();
    if let Some(seconds) = retry_after {
        response.headers_mut().insert("retry-after", seconds.into());
    }
    response
}
