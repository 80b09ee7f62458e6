//! A client for the Confluent Schema Registry REST API, as served by Confluent, Karapace,
//! Redpanda and Apicurio (`/apis/ccompat/v7`).

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::types::{RegistryError, Schema, SubjectVersion, VersionSpec};
use crate::codec::SchemaType;
use crate::config::RegistryAuth;

const ACCEPT: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5";

/// A remote registry at a base URL.
#[derive(Debug, Clone)]
pub struct RemoteRegistry {
    http: reqwest::Client,
    base: Url,
    auth: Option<RegistryAuth>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<i64>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct IdBody {
    id: u32,
}

impl RemoteRegistry {
    pub fn new(base: &str, timeout: Duration, auth: Option<RegistryAuth>) -> Result<Self, RegistryError> {
        let mut base = Url::parse(base).map_err(|e| RegistryError::Unavailable(format!("bad registry URL: {e}")))?;
        // Joining path segments below needs a base without a trailing slash.
        let trimmed = base.path().trim_end_matches('/').to_owned();
        base.set_path(&trimmed);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
        Ok(Self { http, base, auth })
    }

    /// `GET /schemas/ids/{id}`
    pub async fn schema_by_id(&self, id: u32) -> Result<Schema, RegistryError> {
        self.call(Method::GET, &["schemas", "ids", &id.to_string()], None, |code| match code {
            40403 => Some(RegistryError::SchemaNotFound(id)),
            _ => None,
        })
        .await
    }

    /// `GET /schemas/ids/{id}/versions`: the (subject, version) pairs that use schema `id`.
    pub async fn versions_of_id(&self, id: u32) -> Result<Vec<(String, u32)>, RegistryError> {
        #[derive(Deserialize)]
        struct Pair {
            subject: String,
            version: u32,
        }
        let pairs: Vec<Pair> = self
            .call(Method::GET, &["schemas", "ids", &id.to_string(), "versions"], None, |code| match code {
                40403 => Some(RegistryError::SchemaNotFound(id)),
                _ => None,
            })
            .await?;
        Ok(pairs.into_iter().map(|p| (p.subject, p.version)).collect())
    }

    /// `GET /subjects/{subject}/versions/{version}`
    pub async fn subject_version(&self, subject: &str, version: VersionSpec) -> Result<SubjectVersion, RegistryError> {
        self.call(Method::GET, &["subjects", subject, "versions", &version.to_string()], None, |code| match code {
            40401 => Some(RegistryError::SubjectNotFound(subject.to_owned())),
            40402 => Some(RegistryError::VersionNotFound { subject: subject.to_owned(), version }),
            _ => None,
        })
        .await
    }

    /// `POST /subjects/{subject}/versions`: registers a schema and returns its id.
    pub async fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let body = serde_json::to_vec(schema).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
        let id: IdBody = self
            .call(Method::POST, &["subjects", subject, "versions"], Some(body), |code| match code {
                42201 | 42200 => Some(RegistryError::InvalidSchema(format!("refused by the registry ({code})"))),
                _ => None,
            })
            .await?;
        Ok(id.id)
    }

    /// `GET /subjects/{subject}/versions`; an unknown subject has none.
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let found = self
            .call(Method::GET, &["subjects", subject, "versions"], None, |code| match code {
                40401 => Some(RegistryError::SubjectNotFound(subject.to_owned())),
                _ => None,
            })
            .await;
        match found {
            Err(RegistryError::SubjectNotFound(_)) => Ok(Vec::new()),
            other => other,
        }
    }

    /// The compatibility level that applies to a subject: its own, else the global one.
    pub async fn compatibility_level(&self, subject: &str) -> Result<String, RegistryError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Level {
            compatibility_level: String,
        }
        let own: Result<Level, _> = self
            .call(Method::GET, &["config", subject], None, |code| match code {
                40401 | 40408 => Some(RegistryError::SubjectNotFound(subject.to_owned())),
                _ => None,
            })
            .await;
        match own {
            Ok(level) => Ok(level.compatibility_level),
            Err(RegistryError::SubjectNotFound(_) | RegistryError::Unexpected { status: 404, .. }) => {
                let global: Level = self.call(Method::GET, &["config"], None, |_| None).await?;
                Ok(global.compatibility_level)
            }
            Err(other) => Err(other),
        }
    }

    /// `GET /subjects`: the cheapest call that proves the registry answers.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let _: Vec<String> = self.call(Method::GET, &["subjects"], None, |_| None).await?;
        Ok(())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
        known: impl Fn(i64) -> Option<RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| RegistryError::Unavailable("registry URL cannot have a path".into()))?
            .extend(segments);
        let mut request = self.http.request(method, url.clone()).header(reqwest::header::ACCEPT, ACCEPT);
        if let Some(body) = body {
            request =
                request.header(reqwest::header::CONTENT_TYPE, "application/vnd.schemaregistry.v1+json").body(body);
        }
        match &self.auth {
            Some(RegistryAuth { bearer_token: Some(token), .. }) => request = request.bearer_auth(token),
            Some(RegistryAuth { username: Some(user), password, .. }) => {
                request = request.basic_auth(user, password.as_ref())
            }
            _ => {}
        }
        let response = request.send().await.map_err(|e| RegistryError::Unavailable(format!("{url}: {e}")))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| RegistryError::Unavailable(format!("{url}: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| RegistryError::Unexpected {
                status: status.as_u16(),
                message: format!("unreadable answer: {e}"),
            });
        }
        let error: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let code = error.as_ref().and_then(|e| e.error_code).unwrap_or(0);
        if let Some(known) = known(code) {
            return Err(known);
        }
        let message = error.and_then(|e| e.message).unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            RegistryError::Unavailable(format!("{url} answered {status}: {message}"))
        } else {
            RegistryError::Unexpected { status: status.as_u16(), message }
        })
    }
}

impl Schema {
    /// A schema without references.
    pub fn new(schema_type: SchemaType, schema: impl Into<String>) -> Self {
        Self { schema: schema.into(), schema_type, references: Vec::new() }
    }
}
