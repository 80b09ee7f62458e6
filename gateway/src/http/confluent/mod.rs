//! Confluent REST Proxy's produce and metadata API, so its clients can point at Sluice: v2
//! (`POST /topics/{topic}`, embedded formats), v3 records (streaming), and the metadata both
//! call first. Requests go through the same routes, auth, plugins, validation and metrics as
//! Sluice's own API; only the request and answer shapes are Confluent's.
//!
//! Where Sluice decides differently from Confluent's proxy (and why) is said where it happens:
//! a topic's embedded format must be its route's, a schema chosen by id must belong to the
//! route's subject, and no 2xx answer says a record is stored when it is not.

mod metadata;
mod records;
mod v2;
mod v3;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::AppState;
use super::problem::Problem;
use crate::produce::{EventError, EventErrorKind};

/// The v2 API's media type, of every v2 answer.
pub const V2_MEDIA_TYPE: &str = "application/vnd.kafka.v2+json";

/// The Confluent API's routes, under `prefix` (empty: the root paths its clients use).
pub fn routes(prefix: &str) -> Router<Arc<AppState>> {
    let at = |path: &str| format!("{prefix}{path}");
    Router::new()
        .route(&at("/topics"), get(metadata::v2_topics))
        .route(&at("/topics/{topic}"), get(metadata::v2_topic).post(v2::produce))
        .route(&at("/topics/{topic}/partitions"), get(metadata::v2_partitions))
        .route(
            &at("/topics/{topic}/partitions/{partition}"),
            get(metadata::v2_partition).post(v2::produce_to_partition),
        )
        .route(&at("/v3/clusters"), get(metadata::v3_clusters))
        .route(&at("/v3/clusters/{cluster}"), get(metadata::v3_cluster))
        .route(&at("/v3/clusters/{cluster}/topics"), get(metadata::v3_topics))
        .route(&at("/v3/clusters/{cluster}/topics/{topic}"), get(metadata::v3_topic))
        .route(&at("/v3/clusters/{cluster}/topics/{topic}/partitions"), get(metadata::v3_partitions))
        .route(&at("/v3/clusters/{cluster}/topics/{topic}/partitions/{partition}"), get(metadata::v3_partition))
        .route(&at("/v3/clusters/{cluster}/topics/{topic}/records"), post(v3::produce))
}

/// For the `body` fuzz target: v2 and v3 request bodies.
pub fn fuzz_bodies(data: &[u8]) {
    v2::fuzz(data);
    v3::fuzz(data);
}

/// An error as Confluent's proxy answers it: `{"error_code", "message"}`, where the code is
/// Confluent's (an HTTP status, or a five-digit code starting with it). Sluice adds what
/// its own problems say where it knows more (`index`, `pointer`, `errors`).
#[derive(Debug, Clone, Serialize)]
pub struct ConfluentError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error_code: u32,
    pub message: String,
    /// v2 answers carry the v2 media type; v3 answers `application/json`.
    #[serde(skip)]
    pub v2: bool,
    #[serde(skip)]
    pub retry_after_s: Option<u32>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ConfluentError {
    pub fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        Self { status, error_code, message: message.into(), v2: false, retry_after_s: None, extra: Default::default() }
    }

    /// An error named only by its HTTP status, as Confluent's framework answers them.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, u32::from(status.as_u16()), message)
    }

    pub fn topic_not_found(topic: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, 40401, format!("Topic not found: no route serves topic '{topic}'."))
    }

    pub fn unsupported_media_type(detail: impl std::fmt::Display) -> Self {
        Self::status(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("HTTP 415 Unsupported Media Type: {detail}"))
    }

    pub fn v2(self) -> Self {
        Self { v2: true, ..self }
    }

    pub fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(name.to_owned(), value.into());
        self
    }
}

impl From<Problem> for ConfluentError {
    /// Sluice's own problems (auth, body limits, overload) in Confluent's shape: the code is
    /// the status, as Confluent's framework gives for the same failures.
    fn from(problem: Problem) -> Self {
        let error_code = match (problem.status, problem.slug) {
            (StatusCode::FORBIDDEN, _) => 40301,
            (StatusCode::UNAUTHORIZED, _) => 40101,
            (status, _) => u32::from(status.as_u16()),
        };
        let mut error = Self::new(problem.status, error_code, problem.detail);
        error.retry_after_s = problem.retry_after;
        error.extra.insert("type".into(), format!("urn:sluice:problem:{}", problem.slug).into());
        for (name, value) in *problem.extra {
            error.extra.insert(name, value);
        }
        error
    }
}

impl From<crate::auth::AuthError> for ConfluentError {
    fn from(error: crate::auth::AuthError) -> Self {
        Problem::from(error).into()
    }
}

impl IntoResponse for ConfluentError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let media = if self.v2 { V2_MEDIA_TYPE } else { "application/json" };
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
        if let Some(seconds) = self.retry_after_s {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Confluent's code for an event Sluice refused or could not store, and the HTTP status that
/// goes with it.
pub fn event_code(error: &EventError) -> (StatusCode, u32) {
    use EventErrorKind as K;
    let status = StatusCode::from_u16(error.kind.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let code = match error.kind {
        K::UnknownPartition => 40402,
        K::KafkaTopicMissing => 40401,
        K::ForbiddenTarget => 40301,
        K::RecordTooLarge => 413,
        kind if kind.is_retriable() => 50003,
        // Schema violations, bad keys, plugin refusals: Confluent's "conversion of JSON failed".
        kind if kind.status() == 422 => 42203,
        // Kafka's or a plugin's failure: Confluent's non-retriable Kafka error.
        _ => 50002,
    };
    (status, code)
}

/// A per-event error's JSON, as Sluice's own API writes it in `errors[]`.
pub fn event_error_json(index: Option<usize>, error: &EventError) -> serde_json::Value {
    let mut out = serde_json::json!({"type": error.kind.slug(), "message": error.message});
    if let Some(index) = index {
        out["index"] = index.into();
    }
    if let Some(pointer) = &error.pointer {
        out["pointer"] = pointer.as_str().into();
    }
    if let Some(plugin) = &error.plugin {
        out["plugin"] = plugin.as_str().into();
    }
    out
}
