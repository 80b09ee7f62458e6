//! The admin API, on its own listener, behind the admin bearer token from `[admin]` (or, with
//! `[auth]`, an API key or token carrying the `admin` scope): upload, list, activate and roll
//! back plugin versions.
//!
//! - `GET /admin/plugins`, `GET /admin/plugins/{name}`: declared plugins, the active version,
//!   uploaded versions and the rollback history;
//! - `PUT /admin/plugins/{name}` with the component as the body: checks it against the plugin
//!   world (422 with the reason if it does not fit), stores it and makes it active (201);
//! - `POST /admin/plugins/{name}/versions/{version}/activate`, `POST /admin/plugins/{name}/rollback`;
//! - `GET /admin/transforms`; `PUT /admin/transforms/{name}` with a `[[transforms]]` entry as JSON
//!   (201 created, 200 replaced, 422 with every problem); `DELETE /admin/transforms/{name}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;

use super::problem::Problem;
use crate::auth::{Auth, Permission};
use crate::plugin::store::{Plugins, StoreError};
use crate::transform::{TransformError, Transforms};

#[derive(Clone)]
struct Admin {
    plugins: Arc<Plugins>,
    transforms: Arc<Transforms>,
    token: Arc<str>,
    auth: Arc<Auth>,
}

/// The admin router; every request needs `Authorization: Bearer <token>` (the admin token, or
/// a credential of `auth` with the `admin` scope).
pub fn router(
    plugins: Arc<Plugins>,
    transforms: Arc<Transforms>,
    token: &str,
    auth: Arc<Auth>,
    max_upload_bytes: usize,
) -> Router {
    let admin = Admin { plugins, transforms, token: token.into(), auth };
    Router::new()
        .route("/admin/transforms", get(list_transforms))
        .route("/admin/transforms/{name}", put(put_transform).delete(delete_transform))
        .route("/admin/plugins", get(list))
        .route("/admin/plugins/{name}", get(show).put(upload))
        .route("/admin/plugins/{name}/versions/{version}/activate", post(activate))
        .route("/admin/plugins/{name}/rollback", post(rollback))
        .layer(DefaultBodyLimit::max(max_upload_bytes))
        .route_layer(middleware::from_fn_with_state(admin.clone(), authorize))
        .fallback(|uri: axum::http::Uri| async move { Problem::not_found(uri.path()) })
        .with_state(admin)
}

async fn authorize(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if same(token.as_bytes(), admin.token.as_bytes()) => next.run(request).await,
        Some(_) if admin.auth.enabled() => match admin.auth.authenticate(request.headers()).await {
            Ok(principal) => match principal.require(Permission::Admin) {
                Ok(()) => next.run(request).await,
                Err(error) => Problem::from(error).into_response(),
            },
            Err(error) => {
                let mut response = Problem::from(error).into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
        },
        _ => {
            let detail = if presented.is_some() {
                "the bearer token is not valid"
            } else {
                "send Authorization: Bearer <admin token>"
            };
            let mut response =
                Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// Compares in time independent of where the inputs differ, so the token cannot be guessed
/// byte by byte from response times (a few lines, not worth a dependency).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn problem(error: StoreError) -> Problem {
    let (status, slug, title) = match &error {
        StoreError::Undeclared(_) => (StatusCode::NOT_FOUND, "unknown-plugin", "Unknown plugin"),
        StoreError::UnknownVersion { .. } => {
            (StatusCode::NOT_FOUND, "unknown-plugin-version", "Unknown plugin version")
        }
        StoreError::NothingToRollBack(_) => (StatusCode::CONFLICT, "nothing-to-roll-back", "Nothing to roll back to"),
        StoreError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-plugin", "Invalid plugin"),
        StoreError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "plugin-store-unavailable", "Plugin store unavailable")
        }
    };
    let problem = Problem::new(status, slug, title, error.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE { problem.retry_after(5) } else { problem }
}

async fn list(State(admin): State<Admin>) -> Response {
    axum::Json(json!({ "plugins": admin.plugins.status() })).into_response()
}

async fn show(State(admin): State<Admin>, Path(name): Path<String>) -> Result<Response, Problem> {
    if !admin.plugins.is_declared(&name) {
        return Err(problem(StoreError::Undeclared(name)));
    }
    Ok(axum::Json(admin.plugins.status_of(&name)).into_response())
}

async fn upload(State(admin): State<Admin>, Path(name): Path<String>, body: Bytes) -> Result<Response, Problem> {
    if !admin.plugins.is_declared(&name) {
        return Err(problem(StoreError::Undeclared(name)));
    }
    if body.is_empty() {
        return Err(problem(StoreError::Invalid("the body is empty; send the component's bytes".into())));
    }
    let meta = admin.plugins.upload(&name, body.to_vec()).await.map_err(problem)?;
    tracing::info!(plugin = name, version = meta.version, size = meta.size, "plugin version uploaded and active");
    Ok((StatusCode::CREATED, axum::Json(json!({ "name": name, "active": true, "version": meta }))).into_response())
}

async fn activate(
    State(admin): State<Admin>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, Problem> {
    admin.plugins.activate(&name, &version).await.map_err(problem)?;
    Ok(axum::Json(admin.plugins.status_of(&name)).into_response())
}

async fn rollback(State(admin): State<Admin>, Path(name): Path<String>) -> Result<Response, Problem> {
    let version = admin.plugins.rollback(&name).await.map_err(problem)?;
    tracing::info!(plugin = name, version, "plugin rolled back");
    Ok(axum::Json(admin.plugins.status_of(&name)).into_response())
}

async fn list_transforms(State(admin): State<Admin>) -> Response {
    let transforms: Vec<serde_json::Value> = admin
        .transforms
        .list()
        .into_iter()
        .map(|(config, source)| {
            let mut value = serde_json::to_value(config).unwrap_or_default();
            value["source"] = serde_json::to_value(source).unwrap_or_default();
            value
        })
        .collect();
    axum::Json(json!({ "transforms": transforms })).into_response()
}

async fn put_transform(State(admin): State<Admin>, Path(name): Path<String>, body: Bytes) -> Result<Response, Problem> {
    let invalid = |detail: String| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-transform", "Invalid transform", detail)
    };
    let mut value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    let Some(object) = value.as_object_mut() else {
        return Err(invalid("the body must be a JSON object".into()));
    };
    match object.get("name") {
        Some(given) if *given != json!(name) => return Err(invalid("the body's name differs from the path's".into())),
        _ => {
            object.insert("name".into(), json!(name));
        }
    }
    let config: crate::config::TransformConfig =
        serde_json::from_value(value).map_err(|e| invalid(format!("not a transform: {e}")))?;
    let created = admin.transforms.put(config.clone()).await.map_err(transform_problem)?;
    tracing::info!(transform = name, created, "transform stored");
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(config)).into_response())
}

async fn delete_transform(State(admin): State<Admin>, Path(name): Path<String>) -> Result<Response, Problem> {
    admin.transforms.delete(&name).await.map_err(transform_problem)?;
    tracing::info!(transform = name, "transform deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn transform_problem(error: TransformError) -> Problem {
    let (status, slug, title) = match &error {
        TransformError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-transform", "Invalid transform"),
        TransformError::Declared(_) => (StatusCode::CONFLICT, "declared-transform", "Declared in the configuration"),
        TransformError::NotFound(_) => (StatusCode::NOT_FOUND, "unknown-transform", "Unknown transform"),
        TransformError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "transform-store-unavailable", "Transform store unavailable")
        }
    };
    let mut problem = Problem::new(status, slug, title, error.to_string());
    if let TransformError::Invalid(problems) = &error {
        let errors: Vec<serde_json::Value> =
            problems.iter().map(|(field, message)| json!({"field": field, "message": message})).collect();
        problem = problem.with("errors", errors);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE { problem.retry_after(5) } else { problem }
}
