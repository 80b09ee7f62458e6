//! The gate of the public API: every request but health, metrics and the API document passes a
//! concurrency limit, authentication, the global and per-key rate limits and a time limit, in
//! that order, each refusing with its own problem — 503 `overloaded`, 401 `unauthorized`,
//! 403 `forbidden`, 429 `rate-limited` (with `Retry-After`), 503 `timeout`.
//!
//! The principal goes into the request's extensions; handlers that know what a request touches
//! (a topic, a subscription's topics) check its scopes themselves.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use super::problem::Problem;
use crate::auth::{Auth, AuthError, Permission, Principal};
use crate::config::LimitsConfig;

/// What the gate checks requests against.
#[derive(Debug)]
pub struct Gate {
    pub auth: Arc<Auth>,
    pub limits: Limits,
}

/// Paths anyone may call, without limits: probes, scrapes and the API's description.
const PUBLIC: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// Keyed limiters forget idle keys this often.
const FORGET_EVERY: u64 = 10_000;

/// The listener's limits.
#[derive(Debug)]
pub struct Limits {
    concurrency: Arc<Semaphore>,
    timeout: Duration,
    global: Option<DefaultDirectRateLimiter>,
    /// Principals without a rate of their own (token subjects, keys without an override).
    per_key: Option<DefaultKeyedRateLimiter<String>>,
    /// Keys with a rate of their own.
    own: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
    checks: std::sync::atomic::AtomicU64,
    /// Made once: a quanta clock calibrates itself when created, far too slow per request.
    clock: DefaultClock,
}

fn quota(per_second: u32) -> Option<Quota> {
    NonZeroU32::new(per_second).map(Quota::per_second)
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            concurrency: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            timeout: Duration::from_millis(config.request_timeout_ms),
            global: quota(config.requests_per_second).map(RateLimiter::direct),
            per_key: quota(config.per_key_requests_per_second).map(RateLimiter::keyed),
            own: Mutex::default(),
            checks: std::sync::atomic::AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    /// `Err` is the wait before a request would be allowed.
    fn admit(&self, principal: &Principal) -> Result<(), (Duration, &'static str)> {
        // The time is only needed to say how long to wait.
        let wait = |later: governor::NotUntil<_>, whose| (later.wait_time_from(self.clock.now()), whose);
        if let Some(global) = &self.global {
            global.check().map_err(|later| wait(later, "the gateway's"))?;
        }
        if let Some(rate) = principal.requests_per_second {
            let limiter = {
                let mut own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
                own.entry(principal.name.clone())
                    .or_insert_with(|| {
                        Arc::new(RateLimiter::direct(quota(rate).unwrap_or(Quota::per_second(NonZeroU32::MIN))))
                    })
                    .clone()
            };
            return limiter.check().map_err(|later| wait(later, "this key's"));
        }
        if let Some(per_key) = &self.per_key {
            if self.checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(FORGET_EVERY) {
                per_key.retain_recent();
            }
            per_key.check_key(&principal.name).map_err(|later| wait(later, "this key's"))?;
        }
        Ok(())
    }
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        match &error {
            AuthError::Missing | AuthError::Invalid(_) => {
                Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", error.to_string())
            }
            AuthError::Forbidden { needed, .. } => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", error.to_string())
                    .with("scope", needed.clone())
            }
        }
    }
}

/// Whether a registry request changes something. Looking a schema up (`POST /subjects/{s}`) and
/// testing compatibility (`POST /compatibility/…`) are reads, as serializers that never register
/// do them; registering (`POST /subjects/{s}/versions`), config changes and deletes are writes.
fn registry_write(method: &Method, path: &str) -> bool {
    match *method {
        Method::PUT | Method::DELETE => true,
        Method::POST => path.starts_with("/registry/subjects/") && path.ends_with("/versions"),
        _ => false,
    }
}

/// The middleware.
pub async fn gate(State(app): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if PUBLIC.contains(&path) {
        return next.run(request).await;
    }
    let Ok(_permit) = app.limits.concurrency.clone().try_acquire_owned() else {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Overloaded",
            "the gateway is handling as many requests as it may; try again shortly",
        )
        .retry_after(1)
        .into_response();
    };
    let principal = match app.auth.authenticate(request.headers()).await {
        Ok(principal) => principal,
        Err(error) => {
            let mut response = Problem::from(error).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    if path.starts_with("/registry/") || path == "/registry" {
        let needed =
            if registry_write(request.method(), path) { Permission::RegistryWrite } else { Permission::RegistryRead };
        if let Err(error) = principal.require(needed) {
            return Problem::from(error).into_response();
        }
    }
    if let Err((wait, whose)) = app.limits.admit(&principal) {
        let seconds = u32::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(u32::MAX).max(1);
        return Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!("{whose} rate limit is reached; retry after {seconds} s"),
        )
        .retry_after(seconds)
        .into_response();
    }
    request.extensions_mut().insert(principal);
    match tokio::time::timeout(app.limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "Timed out",
            format!(
                "the request took longer than {} ms; for a produce request, its events may or may not be stored",
                app.limits.timeout.as_millis()
            ),
        )
        .retry_after(1)
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A router behind the gate: `/slow` takes 500 ms, `/fast` answers at once.
    async fn serve(limits: LimitsConfig) -> String {
        let gate = Arc::new(Gate { auth: Arc::new(Auth::new(None).await.unwrap()), limits: Limits::new(&limits) });
        let app = axum::Router::new()
            .route("/slow", axum::routing::get(|| async { tokio::time::sleep(Duration::from_millis(500)).await }))
            .route("/fast", axum::routing::get(|| async {}))
            .route("/healthz", axum::routing::get(|| async {}))
            .layer(axum::middleware::from_fn_with_state(gate, super::gate));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    async fn problem(response: reqwest::Response) -> (u16, Option<String>, String) {
        let status = response.status().as_u16();
        let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        (status, retry, body["type"].as_str().unwrap_or_default().to_owned())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn too_many_at_once_get_503_and_slow_requests_time_out() {
        let base =
            serve(LimitsConfig { max_concurrent_requests: 1, request_timeout_ms: 200, ..Default::default() }).await;
        let http = reqwest::Client::new();
        let slow = tokio::spawn({
            let (http, url) = (http.clone(), format!("{base}/slow"));
            async move { http.get(url).send().await.unwrap() }
        });
        // The slow request holds the only slot until its time limit: the next is refused.
        let mut refused = None;
        for _ in 0..100 {
            let (status, retry, kind) = problem(http.get(format!("{base}/fast")).send().await.unwrap()).await;
            if status == 503 {
                refused = Some((retry, kind));
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(refused, Some((Some("1".into()), "urn:sluice:problem:overloaded".into())));
        assert_eq!(problem(slow.await.unwrap()).await, (503, Some("1".into()), "urn:sluice:problem:timeout".into()));
        // Health checks pass the gate untouched.
        assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_global_rate_limit_answers_429_with_retry_after() {
        let base = serve(LimitsConfig { requests_per_second: 1, ..Default::default() }).await;
        let http = reqwest::Client::new();
        assert_eq!(http.get(format!("{base}/fast")).send().await.unwrap().status(), 200);
        let (status, retry, kind) = problem(http.get(format!("{base}/fast")).send().await.unwrap()).await;
        assert_eq!((status, kind.as_str()), (429, "urn:sluice:problem:rate-limited"));
        assert_eq!(retry.as_deref(), Some("1"));
    }
}
