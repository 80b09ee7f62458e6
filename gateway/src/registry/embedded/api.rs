//! The embedded registry's HTTP API: the subset of Confluent's Schema Registry REST API that
//! serializers and the gateway use, with Confluent's error bodies (`{"error_code", "message"}`),
//! so Confluent clients pointed at `http://<gateway>/registry` work unchanged.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::EmbeddedRegistry;
use crate::registry::types::{RegistryError, Schema, VersionSpec};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Routes to nest under `/registry`.
pub fn router(registry: Arc<EmbeddedRegistry>) -> Router {
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(subject_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(subject_version_schema))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_by_id_raw))
        .route("/schemas/types", get(|| async { ok(&["AVRO", "JSON"]) }))
        .with_state(registry)
}

type Shared = State<Arc<EmbeddedRegistry>>;

/// A Confluent-style error answer.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        let (status, code) = match &error {
            RegistryError::SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
            RegistryError::VersionNotFound { .. } => (StatusCode::NOT_FOUND, 40402),
            RegistryError::SchemaNotFound(_) => (StatusCode::NOT_FOUND, 40403),
            RegistryError::InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            RegistryError::Unavailable(_) | RegistryError::Unexpected { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, 50001)
            }
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %error, "embedded registry request failed");
        }
        Self { status, code, message: error.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error_code": self.code, "message": self.message});
        (self.status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
    }
}

fn ok<T: Serialize + ?Sized>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: 50001, message: e.to_string() }.into_response()
        }
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: 42201,
        message: format!("unreadable request body: {e}"),
    })
}

fn version(text: &str) -> Result<VersionSpec, ApiError> {
    text.parse().map_err(|message| ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, code: 42202, message })
}

async fn subjects(State(registry): Shared) -> Response {
    ok(&registry.subjects())
}

async fn versions(State(registry): Shared, Path(subject): Path<String>) -> Result<Response, ApiError> {
    Ok(ok(&registry.versions(&subject)?))
}

async fn register(State(registry): Shared, Path(subject): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let schema: Schema = parse(&body)?;
    let id = registry.register(&subject, schema).await?;
    Ok(ok(&serde_json::json!({ "id": id })))
}

async fn subject_version(
    State(registry): Shared,
    Path((subject, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(&registry.subject_version(&subject, version(&v)?)?))
}

async fn subject_version_schema(
    State(registry): Shared,
    Path((subject, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let found = registry.subject_version(&subject, version(&v)?)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], found.schema).into_response())
}

async fn schema_by_id(State(registry): Shared, Path(id): Path<u32>) -> Result<Response, ApiError> {
    Ok(ok(&registry.schema_by_id(id)?))
}

async fn schema_by_id_raw(State(registry): Shared, Path(id): Path<u32>) -> Result<Response, ApiError> {
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], registry.schema_by_id(id)?.schema).into_response())
}
