//! `/v1/subscriptions`: create, list, show, delete, pause, resume, replay and redrive webhook
//! subscriptions. Secrets go in when a subscription is created and never come out.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::AppState;
use super::body::{Form, check_content_type, read_limited};
use super::problem::Problem;
use crate::auth::{Permission, Principal};
use crate::config::subscription::SubscriptionSpec;
use crate::deliver::{ReplayFrom, SubscriptionError};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/subscriptions", get(list).post(create))
        .route("/v1/subscriptions/{name}", get(show).delete(delete))
        .route("/v1/subscriptions/{name}/pause", post(pause))
        .route("/v1/subscriptions/{name}/resume", post(resume))
        .route("/v1/subscriptions/{name}/replay", post(replay))
        .route("/v1/subscriptions/{name}/redrive", post(redrive))
}

fn problem(error: SubscriptionError) -> Problem {
    match error {
        SubscriptionError::Invalid(problems) => {
            let errors: Vec<_> = problems
                .iter()
                .map(|(field, message)| json!({"pointer": format!("/{field}"), "message": message}))
                .collect();
            let detail = problems.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; ");
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-subscription", "Invalid subscription", detail)
                .with("errors", errors)
        }
        SubscriptionError::UrlNotAllowed(detail) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "url-not-allowed", "Subscriber URL not allowed", detail)
                .with("errors", vec![json!({"pointer": "/url", "message": "resolves to an internal address"})])
        }
        SubscriptionError::Exists(_) => {
            Problem::new(StatusCode::CONFLICT, "subscription-exists", "Subscription exists", error.to_string())
        }
        SubscriptionError::Declared(_) => Problem::new(
            StatusCode::CONFLICT,
            "subscription-declared",
            "Declared in the configuration",
            error.to_string(),
        ),
        SubscriptionError::NotFound(_) => {
            Problem::new(StatusCode::NOT_FOUND, "unknown-subscription", "Unknown subscription", error.to_string())
        }
        SubscriptionError::TooMany(_) => {
            Problem::new(StatusCode::CONFLICT, "too-many-subscriptions", "Too many subscriptions", error.to_string())
        }
        SubscriptionError::BadRequest(detail) => {
            Problem::new(StatusCode::BAD_REQUEST, "invalid-body", "Invalid body", detail)
        }
        SubscriptionError::Unavailable(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "subscriptions-unavailable",
            "Subscriptions unavailable",
            error.to_string(),
        )
        .retry_after(5),
    }
}

/// A JSON request body, with the same checks and errors as the produce endpoint.
async fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body, limit: usize) -> Result<T, Problem> {
    if check_content_type(headers)? != Form::Events {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send a subscription as application/json",
        ));
    }
    let bytes = read_limited(body, headers, limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let (status, slug, title) = if e.is_data() {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid-subscription", "Invalid subscription")
        } else {
            (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON")
        };
        Problem::new(status, slug, title, e.to_string()).with("line", e.line()).with("column", e.column())
    })
}

/// Whether the principal may subscribe to every one of these topics.
fn may_subscribe(principal: &Principal, topics: &[String]) -> Result<(), Problem> {
    for topic in topics {
        principal.require(Permission::Subscribe(topic))?;
    }
    Ok(())
}

/// Whether the principal may see and manage a subscription: an admin may; anyone else only
/// one it owns (created through the API, or named its `owner` in the configuration file), and
/// only while it may still subscribe to all of its topics.
fn owns(principal: &Principal, spec: &SubscriptionSpec) -> bool {
    principal.allows(Permission::Admin)
        || (spec.owner.as_deref() == Some(principal.name.as_str())
            && spec.topics.iter().all(|t| principal.allows(Permission::Subscribe(t))))
}

fn may_manage(app: &AppState, principal: &Principal, name: &str) -> Result<(), Problem> {
    let spec = app.deliveries.spec(name).map_err(problem)?;
    if owns(principal, &spec) {
        Ok(())
    } else {
        Err(Problem::from(crate::auth::AuthError::Forbidden {
            principal: principal.name.clone(),
            needed: format!("admin, or to own subscription '{name}'"),
        }))
    }
}

async fn create(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let mut spec: SubscriptionSpec = json_body(&headers, body, app.http.max_body_bytes).await?;
    may_subscribe(&principal, &spec.topics)?;
    spec.owner = Some(principal.name.clone());
    // The gateway writes the dead letters in the caller's name: a key must not reach a topic
    // it could not produce to through a subscription's dead letter topic.
    principal.require(Permission::Produce(&spec.dead_letter_topic))?;
    let name = spec.name.clone();
    app.deliveries.create(spec).await.map_err(problem)?;
    let status = app.deliveries.status(&name, false).await.map_err(problem)?;
    Ok((StatusCode::CREATED, axum::Json(status)).into_response())
}

async fn list(State(app): State<Arc<AppState>>, Extension(principal): Extension<Arc<Principal>>) -> Response {
    let mut subscriptions = app.deliveries.list().await;
    subscriptions.retain(|s| owns(&principal, &s.spec));
    axum::Json(json!({ "subscriptions": subscriptions })).into_response()
}

async fn show(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    may_manage(&app, &principal, &name)?;
    Ok(axum::Json(app.deliveries.status(&name, true).await.map_err(problem)?).into_response())
}

async fn delete(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    may_manage(&app, &principal, &name)?;
    app.deliveries.delete(&name).await.map_err(problem)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn pause(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    may_manage(&app, &principal, &name)?;
    app.deliveries.pause(&name).await.map_err(problem)?;
    Ok(axum::Json(app.deliveries.status(&name, false).await.map_err(problem)?).into_response())
}

async fn resume(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    may_manage(&app, &principal, &name)?;
    app.deliveries.resume(&name).await.map_err(problem)?;
    Ok(axum::Json(app.deliveries.status(&name, false).await.map_err(problem)?).into_response())
}

async fn replay(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    may_manage(&app, &principal, &name)?;
    let from: ReplayFrom = json_body(&headers, body, app.http.max_body_bytes).await?;
    let generation = app.deliveries.replay(&name, from).await.map_err(problem)?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "name": name, "generation": generation }))).into_response())
}

async fn redrive(
    State(app): State<Arc<AppState>>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    may_manage(&app, &principal, &name)?;
    let records = app.deliveries.redrive(&name).await.map_err(problem)?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "name": name, "records": records }))).into_response())
}
