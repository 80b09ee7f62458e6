//! The embedded registry's HTTP API: Confluent Schema Registry's REST API, endpoint for endpoint
//! as its serializers, `SchemaRegistryClient`s, the Maven plugin and CI tools call it, with
//! Confluent's request parameters, answers, content negotiation and errors ([`super::errors`]),
//! so Confluent clients pointed at `http://<gateway>/registry` work unchanged. README's
//! conformance table lists every endpoint of Confluent's API and what Sluice does with it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

use super::EmbeddedRegistry;
use super::errors::ApiError;
use super::state::AccessMode;
use crate::codec::SchemaType;
use crate::registry::compat::Mode;
use crate::registry::types::{Reference, RegistryError, Schema, SubjectVersion, VersionSpec};

/// The media types the registry answers with, in its order of preference (Confluent's).
pub mod content_type {
    pub const DEFAULT: &str = "application/vnd.schemaregistry.v1+json";
    pub const COMBINED: &str = "application/vnd.schemaregistry+json";
    pub const JSON: &str = "application/json";
    pub const ALL: [&str; 3] = [DEFAULT, COMBINED, JSON];
}

/// `GET /schemas` answers at most this many schemas unless `limit` asks for fewer (Confluent's
/// `schema.search.default.limit`).
const SCHEMA_SEARCH_LIMIT: usize = 1000;

/// Routes to nest under `/registry`; request bodies larger than `max_body_bytes` are refused
/// with 413 before more of them is read.
pub fn router(registry: Arc<EmbeddedRegistry>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/", get(|| async { ok(&json!({})) }).post(|| async { ok(&json!({})) }))
        .route("/contexts", get(|| async { ok(&["."]) }))
        .route("/schemas", get(schemas))
        .route("/schemas/types", get(|| async { ok(&["JSON", "PROTOBUF", "AVRO"]) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_by_id_raw))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(subject_version).delete(delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(subject_version_schema))
        .route("/subjects/{subject}/versions/{version}/referencedby", get(referenced_by))
        .route("/config", get(global_config).put(set_global_config).delete(delete_global_config))
        .route("/config/{subject}", get(subject_config).put(set_subject_config).delete(delete_subject_config))
        .route("/mode", get(global_mode).put(set_global_mode).delete(delete_global_mode))
        .route("/mode/{subject}", get(subject_mode).put(set_subject_mode).delete(delete_subject_mode))
        .route("/compatibility/subjects/{subject}/versions", post(compatibility_all))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility_one))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(negotiate))
        .with_state(registry)
}

/// Content negotiation as Confluent's registry does it: the first of its media types the
/// request's `Accept` allows (any, with no `Accept`), or 406.
async fn negotiate(request: Request, next: Next) -> Response {
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(chosen) = chosen_type(accept.as_deref()) else {
        return ApiError::not_acceptable().into_response();
    };
    let mut response = next.run(request).await;
    if chosen != content_type::DEFAULT
        && let Some(current) = response.headers().get(header::CONTENT_TYPE)
        && current.as_bytes() == content_type::DEFAULT.as_bytes()
    {
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(chosen));
    }
    response
}

fn chosen_type(accept: Option<&str>) -> Option<&'static str> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Some(content_type::DEFAULT) };
    let ranges: Vec<&str> = accept
        .split(',')
        .filter(|range| !range.split(';').skip(1).any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000")))
        .map(|range| range.split(';').next().unwrap_or_default().trim())
        .collect();
    content_type::ALL.into_iter().find(|offered| {
        ranges.iter().any(|range| {
            range.eq_ignore_ascii_case(offered) || *range == "*/*" || range.eq_ignore_ascii_case("application/*")
        })
    })
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
            messages: Vec::new(),
        })
    }
}

type Shared = State<Arc<EmbeddedRegistry>>;
type Params = Query<HashMap<String, String>>;

fn ok<T: Serialize + ?Sized>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, content_type::DEFAULT)], body).into_response(),
        Err(e) => ApiError::from(RegistryError::Unavailable(e.to_string())).into_response(),
    }
}

/// A schema's text as is (the `…/schema` endpoints), under the negotiated JSON type.
fn raw(text: String) -> Response {
    ([(header::CONTENT_TYPE, content_type::DEFAULT)], text).into_response()
}

/// A JSON request body: malformed JSON is 400, anything but an object 422 (Confluent's answers).
fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::unprocessable(format!("the request body must be a JSON object, not {other}"))),
        Err(e) => Err(ApiError::malformed_body(e)),
    }
}

/// What a register, lookup or compatibility request carries.
struct SchemaRequest {
    schema: Schema,
    /// Import only: the id and version to register under.
    id: Option<u32>,
    version: Option<u32>,
}

fn schema_request(body: &[u8], normalize: bool) -> Result<SchemaRequest, ApiError> {
    let mut map = json_object(body)?;
    let text = match map.remove("schema") {
        Some(Value::String(text)) => text,
        Some(Value::Null) | None => return Err(ApiError::unprocessable("schema: field required")),
        Some(other) => return Err(ApiError::unprocessable(format!("schema must be a string, not {other}"))),
    };
    if text.is_empty() {
        return Err(RegistryError::EmptySchema.into());
    }
    let schema_type = match map.get("schemaType") {
        None | Some(Value::Null) => SchemaType::Avro,
        Some(Value::String(t)) if t == "AVRO" => SchemaType::Avro,
        Some(Value::String(t)) if t == "JSON" => SchemaType::Json,
        Some(Value::String(t)) if t == "PROTOBUF" => SchemaType::Protobuf,
        Some(Value::String(t)) => return Err(ApiError::invalid_schema_type(t)),
        Some(other) => return Err(ApiError::invalid_schema_type(&other.to_string())),
    };
    let references: Vec<Reference> = match map.remove("references") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => serde_json::from_value(value)
            .map_err(|e| ApiError::unprocessable(format!("references: {e} (each needs name, subject and version)")))?,
    };
    // Confluent's requests say "none" with -1 (or leave the field out).
    let number = |key: &str| -> Result<Option<u32>, ApiError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => match value.as_i64() {
                Some(n) if n < 0 => Ok(None),
                Some(n) => u32::try_from(n)
                    .map(Some)
                    .map_err(|_| ApiError::unprocessable(format!("{key} must be below 2^32, not {n}"))),
                None => Err(ApiError::unprocessable(format!("{key} must be a number, not {value}"))),
            },
        }
    };
    let (id, version) = (number("id")?, number("version")?);
    let text = if normalize { normalized(&text) } else { text };
    Ok(SchemaRequest { schema: Schema { schema: text, schema_type, references }, id, version })
}

/// Confluent's `normalize=true`: the schema in one canonical text (JSON without whitespace, keys
/// sorted), so that equivalent spellings register as one. Without it, schemas are kept as sent.
fn normalized(text: &str) -> String {
    serde_json::from_str::<Value>(text).map_or_else(|_| text.to_owned(), |value| sort_keys(value).to_string())
}

fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sort_keys(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// `latest` (any case), `-1`, or 1 to 2^31-1, as Confluent's registry takes a version.
fn version(text: &str) -> Result<VersionSpec, ApiError> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("latest") {
        return Ok(VersionSpec::Latest);
    }
    match trimmed.parse() {
        Ok(VersionSpec::Number(n)) if i32::try_from(n).is_err() => Err(ApiError::invalid_version(text)),
        Ok(spec) => Ok(spec),
        Err(_) => Err(ApiError::invalid_version(text)),
    }
}

/// A boolean query parameter: absent is false; `true` or `false` in any case (Confluent's Python
/// client sends `True`); anything else is refused with 422 rather than read as false, as
/// Confluent's registry would: a typo should not silently list fewer versions.
fn flag(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None => Ok(false),
        Some(value) if value.eq_ignore_ascii_case("true") => Ok(true),
        Some(value) if value.eq_ignore_ascii_case("false") => Ok(false),
        Some(value) => Err(ApiError::invalid_flag(name, value)),
    }
}

/// Either spelling of a parameter (`deletedOnly`, `deleted_only`).
fn flag_any(params: &HashMap<String, String>, names: &[&str]) -> Result<bool, ApiError> {
    for name in names {
        if flag(params, name)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `offset` and `limit` applied to a listing: a limit of 0 or less (or none) means all, or
/// `default_limit` where Confluent has one. An unparsable number is Confluent's 404.
fn page<T>(items: Vec<T>, params: &HashMap<String, String>, default_limit: usize) -> Result<Vec<T>, ApiError> {
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        params.get(name).map(|v| v.trim().parse::<i64>().map_err(|_| ApiError::no_such_path())).transpose()
    };
    let offset = usize::try_from(number("offset")?.unwrap_or(0).max(0)).unwrap_or(usize::MAX);
    let limit = match number("limit")? {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX).min(default_limit),
        _ => default_limit,
    };
    Ok(items.into_iter().skip(offset).take(limit).collect())
}

/// An id in a path: not a number is Confluent's router's 404.
fn schema_id(text: &str) -> Result<u32, ApiError> {
    text.parse().map_err(|_| ApiError::no_such_path())
}

async fn schemas(State(registry): Shared, Query(params): Params) -> Result<Response, ApiError> {
    let prefix = params.get("subjectPrefix").map_or("", String::as_str);
    let found = registry.schemas(prefix, flag(&params, "deleted")?, flag(&params, "latestOnly")?);
    Ok(ok(&page(found, &params, SCHEMA_SEARCH_LIMIT)?))
}

async fn schema_by_id(
    State(registry): Shared,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let id = schema_id(&id)?;
    let mut schema = registry.schema_by_id(id)?;
    schema.schema = registry.formatted(&schema, params.get("format").map(String::as_str))?;
    let mut body = serde_json::to_value(&schema).map_err(|e| RegistryError::Unavailable(e.to_string()))?;
    if flag(&params, "fetchMaxId")? {
        body["maxId"] = json!(registry.max_id());
    }
    Ok(ok(&body))
}

/// Unlike Confluent's registry (which answers an unknown id here with a 500, an unchecked null),
/// an unknown id is the 40403 `GET /schemas/ids/{id}` gives.
async fn schema_by_id_raw(State(registry): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(raw(registry.schema_by_id(schema_id(&id)?)?.schema))
}

async fn subjects_of_id(
    State(registry): Shared,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let mut subjects: Vec<String> =
        versions_of_id_filtered(&registry, &id, &params)?.into_iter().map(|v| v.0).collect();
    subjects.dedup();
    Ok(ok(&page(subjects, &params, usize::MAX)?))
}

async fn versions_of_id(
    State(registry): Shared,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let pairs: Vec<Value> = versions_of_id_filtered(&registry, &id, &params)?
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(ok(&page(pairs, &params, usize::MAX)?))
}

/// The versions using an id, narrowed to `?subject=` when given.
fn versions_of_id_filtered(
    registry: &EmbeddedRegistry,
    id: &str,
    params: &HashMap<String, String>,
) -> Result<Vec<(String, u32)>, ApiError> {
    let id = schema_id(id)?;
    let mut found = registry.versions_of_id(id, flag(params, "deleted")?)?;
    if let Some(subject) = params.get("subject") {
        found.retain(|(s, _)| s == subject);
        if found.is_empty() {
            return Err(ApiError::schema_not_found());
        }
    }
    Ok(found)
}

async fn subjects(State(registry): Shared, Query(params): Params) -> Result<Response, ApiError> {
    let deleted_only = flag_any(&params, &["deletedOnly", "deleted_only"])?;
    let mut subjects = registry.subjects(deleted_only || flag(&params, "deleted")?);
    if deleted_only {
        let live = registry.subjects(false);
        subjects.retain(|s| !live.contains(s));
    }
    if let Some(prefix) = params.get("subjectPrefix").filter(|p| *p != ":*:") {
        subjects.retain(|s| s.starts_with(prefix.as_str()));
    }
    Ok(ok(&page(subjects, &params, usize::MAX)?))
}

async fn versions(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let deleted_only = flag_any(&params, &["deletedOnly", "deleted_only"])?;
    let mut versions = registry.versions(&subject, deleted_only || flag(&params, "deleted")?)?;
    if deleted_only {
        let live = registry.versions(&subject, false).unwrap_or_default();
        versions.retain(|v| !live.contains(v));
    }
    Ok(ok(&page(versions, &params, usize::MAX)?))
}

async fn register(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request = schema_request(&body, flag(&params, "normalize")?)?;
    let registered = registry.register_as(&subject, request.schema, request.id, request.version).await?;
    Ok(ok(&json!({ "id": registered.id })))
}

async fn lookup(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request = schema_request(&body, flag(&params, "normalize")?)?;
    let deleted = flag(&params, "deleted")?;
    match registry.lookup(&subject, &request.schema, deleted) {
        Err(RegistryError::SchemaNotFound(_)) => {
            // Not under the subject: a schema that does not even parse is the client's mistake.
            let references = registry.reference_texts(&request.schema.references).unwrap_or_default();
            if crate::registry::compat::Parsed::parse(request.schema.schema_type, &request.schema.schema, &references)
                .is_err()
            {
                return Err(ApiError::lookup_of_invalid_schema(&subject));
            }
            Err(RegistryError::SchemaNotFound(0).into())
        }
        found => Ok(ok(&found?)),
    }
}

async fn subject_version(
    State(registry): Shared,
    Path((subject, v)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let mut found = registry.subject_version_including_deleted(&subject, version(&v)?, flag(&params, "deleted")?)?;
    found.schema = registry.formatted(&found.clone().into(), params.get("format").map(String::as_str))?;
    Ok(ok(&found))
}

async fn subject_version_schema(
    State(registry): Shared,
    Path((subject, v)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let found: SubjectVersion =
        registry.subject_version_including_deleted(&subject, version(&v)?, flag(&params, "deleted")?)?;
    Ok(raw(found.schema))
}

async fn referenced_by(
    State(registry): Shared,
    Path((subject, v)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    Ok(ok(&page(registry.referenced_by(&subject, version(&v)?)?, &params, SCHEMA_SEARCH_LIMIT)?))
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

/// `PUT /config` bodies: `{"compatibility": "FULL"}` (`compatibilityLevel` is accepted too).
fn requested_level(body: &[u8]) -> Result<Mode, ApiError> {
    let map = json_object(body)?;
    let level = map
        .get("compatibility")
        .or_else(|| map.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .ok_or_else(ApiError::invalid_compatibility)?;
    level.parse().map_err(|_| ApiError::invalid_compatibility())
}

async fn global_config(State(registry): Shared) -> Response {
    ok(&json!({"compatibilityLevel": registry.mode(None).as_str()}))
}

async fn set_global_config(State(registry): Shared, Body(body): Body) -> Result<Response, ApiError> {
    let level = requested_level(&body)?;
    registry.set_mode(None, level).await?;
    Ok(ok(&json!({"compatibility": level.as_str()})))
}

async fn delete_global_config(State(registry): Shared) -> Result<Response, ApiError> {
    let previous = registry.delete_subject_mode(None).await?;
    Ok(ok(&json!({"compatibilityLevel": previous.as_str()})))
}

async fn subject_config(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let default_to_global = flag(&params, "defaultToGlobal")?;
    let level = match registry.subject_mode(&subject) {
        Some(level) => level,
        None if default_to_global => registry.mode(None),
        None => return Err(RegistryError::SubjectConfigNotFound(subject).into()),
    };
    Ok(ok(&json!({"compatibilityLevel": level.as_str()})))
}

async fn set_subject_config(
    State(registry): Shared,
    Path(subject): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let level = requested_level(&body)?;
    registry.set_mode(Some(&subject), level).await?;
    Ok(ok(&json!({"compatibility": level.as_str()})))
}

async fn delete_subject_config(State(registry): Shared, Path(subject): Path<String>) -> Result<Response, ApiError> {
    let previous = registry.delete_subject_mode(Some(&subject)).await?;
    Ok(ok(&json!({"compatibilityLevel": previous.as_str()})))
}

/// `PUT /mode` bodies: `{"mode": "READONLY"}`, in any case.
fn requested_mode(body: &[u8]) -> Result<AccessMode, ApiError> {
    let map = json_object(body)?;
    map.get("mode").and_then(Value::as_str).and_then(|m| m.parse().ok()).ok_or_else(ApiError::invalid_mode)
}

async fn global_mode(State(registry): Shared) -> Response {
    ok(&json!({"mode": registry.access(None).as_str()}))
}

async fn set_global_mode(
    State(registry): Shared,
    Query(params): Params,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let mode = requested_mode(&body)?;
    registry.set_access(None, mode, flag(&params, "force")?).await?;
    Ok(ok(&json!({"mode": mode.as_str()})))
}

async fn delete_global_mode(State(registry): Shared) -> Result<Response, ApiError> {
    Ok(ok(&json!({"mode": registry.delete_access(None).await?.as_str()})))
}

async fn subject_mode(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let default_to_global = flag(&params, "defaultToGlobal")?;
    let mode = match registry.subject_access(&subject) {
        Some(mode) => mode,
        None if default_to_global => registry.access(None),
        None => return Err(RegistryError::SubjectModeNotFound(subject).into()),
    };
    Ok(ok(&json!({"mode": mode.as_str()})))
}

async fn set_subject_mode(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let mode = requested_mode(&body)?;
    registry.set_access(Some(&subject), mode, flag(&params, "force")?).await?;
    Ok(ok(&json!({"mode": mode.as_str()})))
}

async fn delete_subject_mode(State(registry): Shared, Path(subject): Path<String>) -> Result<Response, ApiError> {
    Ok(ok(&json!({"mode": registry.delete_access(Some(&subject)).await?.as_str()})))
}

/// `{"is_compatible": …}`, with the reasons in `messages` when asked (`verbose`) or when there
/// are any (Confluent lists them only with `verbose`; clients ignore the field otherwise).
fn compatibility_answer(result: Result<Vec<String>, RegistryError>, verbose: bool) -> Result<Response, ApiError> {
    let messages = match result {
        Ok(messages) => messages,
        // Confluent answers a schema that does not parse as incompatible when asked for reasons.
        Err(RegistryError::InvalidSchema(detail)) if verbose => vec![detail],
        Err(error) => return Err(error.into()),
    };
    let mut body = json!({"is_compatible": messages.is_empty()});
    if verbose || !messages.is_empty() {
        body["messages"] = json!(messages);
    }
    Ok(ok(&body))
}

async fn compatibility_one(
    State(registry): Shared,
    Path((subject, v)): Path<(String, String)>,
    Query(params): Params,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let version = version(&v)?;
    let request = schema_request(&body, flag(&params, "normalize")?)?;
    compatibility_answer(
        registry.check_compatibility(&subject, &request.schema, Some(version)),
        flag(&params, "verbose")?,
    )
}

async fn compatibility_all(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request = schema_request(&body, flag(&params, "normalize")?)?;
    compatibility_answer(registry.check_compatibility(&subject, &request.schema, None), flag(&params, "verbose")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_answer_type_as_confluents_registry_does() {
        assert_eq!(chosen_type(None), Some(content_type::DEFAULT));
        assert_eq!(chosen_type(Some("*/*")), Some(content_type::DEFAULT));
        assert_eq!(chosen_type(Some("application/json")), Some(content_type::JSON));
        assert_eq!(chosen_type(Some("application/vnd.schemaregistry+json")), Some(content_type::COMBINED));
        assert_eq!(chosen_type(Some("text/html, application/json;q=0.9")), Some(content_type::JSON));
        assert_eq!(chosen_type(Some("application/vnd.schemaregistry.v2+json")), None);
        assert_eq!(chosen_type(Some("application/json;q=0")), None);
    }

    #[test]
    fn request_bodies_are_refused_as_confluent_refuses_them() {
        let refusal = |body: &str| schema_request(body.as_bytes(), false).err().map(|e| (e.status.as_u16(), e.code));
        assert_eq!(refusal("{"), Some((400, 400)), "malformed JSON");
        assert_eq!(refusal("\"text\""), Some((422, 422)), "not an object");
        assert_eq!(refusal("{}"), Some((422, 422)), "no schema");
        assert_eq!(refusal(r#"{"schema": ""}"#), Some((422, 42201)), "an empty schema");
        assert_eq!(refusal(r#"{"schema": "\"int\"", "schemaType": "AVROO"}"#), Some((422, 422)), "unknown type");
        assert_eq!(
            refusal(r#"{"schema": "\"int\"", "schemaType": "avro"}"#),
            Some((422, 422)),
            "types are case-sensitive"
        );
        let request = schema_request(br#"{"schema": "\"int\"", "id": 7, "version": -1, "extra": 1}"#, false).unwrap();
        assert_eq!((request.id, request.version), (Some(7), None), "-1 means none; unknown fields are ignored");
    }

    #[test]
    fn normalize_spells_equivalent_schemas_one_way_and_is_otherwise_off() {
        let body = r#"{"schema": "{ \"type\": \"string\", \"doc\" : \"x\" }"}"#;
        assert_eq!(schema_request(body.as_bytes(), true).unwrap().schema.schema, r#"{"doc":"x","type":"string"}"#);
        assert_eq!(
            schema_request(body.as_bytes(), false).unwrap().schema.schema,
            r#"{ "type": "string", "doc" : "x" }"#
        );
    }

    #[test]
    fn versions_are_parsed_as_confluents_registry_parses_them() {
        assert_eq!(version("latest").unwrap(), VersionSpec::Latest);
        assert_eq!(version("-1").unwrap(), VersionSpec::Latest);
        assert_eq!(version("3").unwrap(), VersionSpec::Number(3));
        for bad in ["0", "-2", "abc", "2147483648"] {
            let error = version(bad).unwrap_err();
            assert_eq!((error.code, error.message.contains(&format!("'{bad}'"))), (42202, true), "{bad}");
        }
    }
}
