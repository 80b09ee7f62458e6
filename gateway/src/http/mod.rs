//! The HTTP API: routes, the shared state, health endpoints and the problem-response type.

mod access;
pub mod admin;
mod body;
mod cloudevents;
mod confluent;
mod envelope;
mod idempotency;
pub mod problem;
mod produce;
mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use self::problem::Problem;
use crate::config::HttpConfig;
use crate::produce::Pipeline;
use crate::registry::Registry;
use crate::registry::embedded::EmbeddedRegistry;
use crate::route::Routes;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    pub http: HttpConfig,
    pub routes: Arc<Routes>,
    pub pipeline: Pipeline,
    pub registry: Registry,
    pub plugins: Arc<crate::plugin::store::Plugins>,
    pub deliveries: Arc<crate::deliver::Deliveries>,
    pub gate: Arc<Gate>,
    /// Where `Idempotency-Key` outcomes are kept (`None`: the header is ignored).
    pub idempotency: Option<Keys>,
    /// The `[[transforms]]` running in this replica (stopped when the state is dropped).
    pub transforms: Arc<crate::transform::Transforms>,
}

/// Where `Idempotency-Key` outcomes are kept.
#[derive(Debug, Clone)]
pub enum Keys {
    /// In Kafka, in the same transaction as the events: honoured by every replica.
    Cluster(Arc<Claims>),
    /// In this replica's memory.
    Replica(Arc<Idempotency>),
}

pub use self::access::{Gate, Limits};
pub use self::body::{Form, parse_events, parse_incoming, parse_topic_events};
pub use self::confluent::fuzz_bodies as fuzz_confluent_bodies;
pub use self::idempotency::Idempotency;
pub use self::idempotency::cluster::Claims;

/// The public router; testable without a socket (`app(state).oneshot(request)`).
pub fn app(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/v1/topics/{topic}/events", post(produce::produce))
        .route("/v1/events", post(produce::produce_many))
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(subscriptions::routes());
    if state.http.confluent_api {
        router = router.merge(confluent::routes(&state.http.confluent_prefix));
    }
    if let Registry::Embedded(embedded) = &state.registry {
        router = router.nest("/registry", embedded_registry(embedded.clone(), state.http.max_body_bytes));
    }
    router
        .fallback(|uri: Uri| async move { Problem::not_found(uri.path()) })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        // The request body is limited per route by the produce handler (413 before reading).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(state.gate.clone(), access::gate))
        .layer(axum::middleware::from_fn(count_requests))
        .with_state(state)
}

/// Counts and times every request by its matched route (not its path: bounded labels).
async fn count_requests(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = metric_method(request.method()).to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let metrics = crate::telemetry::metrics::metrics();
    let status = response.status().as_u16();
    metrics
        .http_duration
        .get_or_create(&crate::telemetry::metrics::RouteLabels { route: route.clone(), method: method.clone() })
        .observe(started.elapsed().as_secs_f64());
    metrics.http_requests.get_or_create(&crate::telemetry::metrics::HttpLabels { route, method, status }).inc();
    response
}

/// A method as a label value: extension methods are as many as clients care to make up.
fn metric_method(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The OpenAPI 3.1 document of this API (`openapi.json` beside this file; a test keeps it in
/// step with the router).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Prometheus metrics (OpenMetrics text).
async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    let metrics = crate::telemetry::metrics::metrics();
    metrics.producer_queue.set(i64::try_from(app.pipeline.producer.in_flight()).unwrap_or(i64::MAX));
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        metrics.encode(),
    )
        .into_response()
}

fn embedded_registry(registry: Arc<EmbeddedRegistry>, max_body_bytes: usize) -> Router<Arc<AppState>> {
    crate::registry::embedded::api::router(registry, max_body_bytes).with_state(())
}

/// `GET /readyz`: 200 when Kafka and the registry answer; missing topics are reported but do
/// not make the replica unready (every replica would be equally unable to serve them).
async fn ready(State(app): State<Arc<AppState>>) -> Response {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let producer = app.pipeline.producer.clone();
    // Metadata of one topic proves a broker answers without listing a large cluster's topics.
    let probe = app.routes.names().min().map(str::to_owned);
    let kafka = tokio::task::spawn_blocking(move || producer.fetch_metadata(probe.as_deref(), TIMEOUT).map(|_| ()))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let registry = match tokio::time::timeout(TIMEOUT, app.registry.ping()).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    let status = if kafka.is_ok() && registry.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let check = |r: &Result<(), String>| match r {
        Ok(()) => json!("ok"),
        Err(e) => json!(e),
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "unavailable" },
        "kafka": check(&kafka),
        "registry": check(&registry),
        "topics_missing": app.pipeline.topics.missing(),
        "events_in_flight": app.pipeline.producer.in_flight(),
    });
    (status, axum::Json(body)).into_response()
}
