//! The embedded registry's HTTP API: the part of Confluent's Schema Registry REST API that
//! serializers, `SchemaRegistryClient`s and CI tools use, with Confluent's error bodies
//! (`{"error_code", "message"}`), so Confluent clients pointed at `http://<gateway>/registry`
//! work unchanged. Unknown query parameters (`normalize`, `format`, …) are accepted and ignored.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::EmbeddedRegistry;
use crate::registry::compat::Mode;
use crate::registry::types::{RegistryError, Schema, VersionSpec};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Routes to nest under `/registry`; request bodies larger than `max_body_bytes` are refused
/// with 413 before more of them is read.
pub fn router(registry: Arc<EmbeddedRegistry>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(subject_version).delete(delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(subject_version_schema))
        .route("/subjects/{subject}/versions/{version}/referencedby", get(referenced_by))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_by_id_raw))
        .route("/schemas/types", get(|| async { ok(&["AVRO", "JSON"]) }))
        .route("/config", get(global_config).put(set_global_config))
        .route("/config/{subject}", get(subject_config).put(set_subject_config).delete(delete_subject_config))
        .route("/compatibility/subjects/{subject}/versions", post(compatibility_all))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility_one))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(registry)
}

/// A request body, read up to the router's limit; refusals in Confluent's error format.
struct Body(Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state).await.map(Body).map_err(|rejection| ApiError {
            status: rejection.status(),
            code: u32::from(rejection.status().as_u16()),
            message: rejection.body_text(),
        })
    }
}

type Shared = State<Arc<EmbeddedRegistry>>;
type Params = Query<HashMap<String, String>>;

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
            RegistryError::SubjectNotSoftDeleted(_) => (StatusCode::NOT_FOUND, 40405),
            RegistryError::VersionNotSoftDeleted { .. } => (StatusCode::NOT_FOUND, 40407),
            RegistryError::SubjectConfigNotFound(_) => (StatusCode::NOT_FOUND, 40408),
            RegistryError::Incompatible { .. } => (StatusCode::CONFLICT, 409),
            RegistryError::InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            RegistryError::InvalidCompatibility(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            RegistryError::ReferencedBy { .. } => (StatusCode::UNPROCESSABLE_ENTITY, 42206),
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
        let body = json!({"error_code": self.code, "message": self.message});
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

/// A boolean query parameter: absent is false; `true` or `false` (any case), else 422.
fn flag(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None => Ok(false),
        Some(value) if value.eq_ignore_ascii_case("true") => Ok(true),
        Some(value) if value.eq_ignore_ascii_case("false") => Ok(false),
        Some(value) => Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: 422,
            message: format!("query parameter '{name}' must be true or false, not '{value}'"),
        }),
    }
}

async fn subjects(State(registry): Shared, Query(params): Params) -> Result<Response, ApiError> {
    Ok(ok(&registry.subjects(flag(&params, "deleted")?)))
}

async fn versions(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    Ok(ok(&registry.versions(&subject, flag(&params, "deleted")?)?))
}

async fn register(
    State(registry): Shared,
    Path(subject): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let schema: Schema = parse(&body)?;
    let id = registry.register(&subject, schema).await?;
    Ok(ok(&json!({ "id": id })))
}

async fn lookup(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let schema: Schema = parse(&body)?;
    Ok(ok(&registry.lookup(&subject, &schema, flag(&params, "deleted")?)?))
}

async fn subject_version(
    State(registry): Shared,
    Path((subject, v)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    Ok(ok(&registry.subject_version_including_deleted(&subject, version(&v)?, flag(&params, "deleted")?)?))
}

async fn subject_version_schema(
    State(registry): Shared,
    Path((subject, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let found = registry.subject_version(&subject, version(&v)?)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], found.schema).into_response())
}

async fn referenced_by(
    State(registry): Shared,
    Path((subject, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(&registry.referenced_by(&subject, version(&v)?)?))
}

async fn delete_version(
    State(registry): Shared,
    Path((subject, v)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    Ok(ok(&registry.delete_version(&subject, version(&v)?, flag(&params, "permanent")?).await?))
}

async fn delete_subject(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    Ok(ok(&registry.delete_subject(&subject, flag(&params, "permanent")?).await?))
}

/// An id that is not a number (or too large for one) names no schema: 40403, as for an unknown
/// number, rather than the router's plain-text rejection.
fn schema_id(text: &str) -> Result<u32, ApiError> {
    text.parse().map_err(|_| ApiError {
        status: StatusCode::NOT_FOUND,
        code: 40403,
        message: format!("Schema {text} not found"),
    })
}

async fn schema_by_id(State(registry): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok(&registry.schema_by_id(schema_id(&id)?)?))
}

async fn schema_by_id_raw(State(registry): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], registry.schema_by_id(schema_id(&id)?)?.schema).into_response())
}

/// `PUT /config` bodies: `{"compatibility": "FULL"}` (`compatibilityLevel` is accepted too).
fn requested_mode(body: &[u8]) -> Result<Mode, ApiError> {
    let value: serde_json::Value = parse(body)?;
    let level =
        value.get("compatibility").or_else(|| value.get("compatibilityLevel")).and_then(|v| v.as_str()).ok_or_else(
            || ApiError::from(RegistryError::InvalidCompatibility("the body needs a 'compatibility' level".into())),
        )?;
    level.parse().map_err(|e| ApiError::from(RegistryError::InvalidCompatibility(e)))
}

async fn global_config(State(registry): Shared) -> Response {
    ok(&json!({"compatibilityLevel": registry.mode(None).as_str()}))
}

async fn set_global_config(State(registry): Shared, Body(body): Body) -> Result<Response, ApiError> {
    let mode = requested_mode(&body)?;
    registry.set_mode(None, mode).await?;
    Ok(ok(&json!({"compatibility": mode.as_str()})))
}

async fn subject_config(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let default_to_global = flag(&params, "defaultToGlobal")?;
    let mode = match registry.subject_mode(&subject) {
        Some(mode) => mode,
        None if default_to_global => registry.mode(None),
        None => return Err(RegistryError::SubjectConfigNotFound(subject).into()),
    };
    Ok(ok(&json!({"compatibilityLevel": mode.as_str()})))
}

async fn set_subject_config(
    State(registry): Shared,
    Path(subject): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let mode = requested_mode(&body)?;
    registry.set_mode(Some(&subject), mode).await?;
    Ok(ok(&json!({"compatibility": mode.as_str()})))
}

async fn delete_subject_config(State(registry): Shared, Path(subject): Path<String>) -> Result<Response, ApiError> {
    let previous = registry.delete_subject_mode(&subject).await?;
    Ok(ok(&json!({"compatibilityLevel": previous.as_str()})))
}

fn compatibility_answer(messages: Vec<String>, verbose: bool) -> Response {
    let mut body = json!({"is_compatible": messages.is_empty()});
    if verbose {
        body["messages"] = json!(messages);
    }
    ok(&body)
}

async fn compatibility_one(
    State(registry): Shared,
    Path((subject, v)): Path<(String, String)>,
    Query(params): Params,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let schema: Schema = parse(&body)?;
    let messages = registry.check_compatibility(&subject, &schema, Some(version(&v)?))?;
    Ok(compatibility_answer(messages, flag(&params, "verbose")?))
}

async fn compatibility_all(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let schema: Schema = parse(&body)?;
    let messages = registry.check_compatibility(&subject, &schema, None)?;
    Ok(compatibility_answer(messages, flag(&params, "verbose")?))
}
