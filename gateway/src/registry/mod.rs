//! Schemas: a Confluent-API client for remote registries, the embedded registry, and the cache
//! that turns a route's subject and version into a compiled codec.

pub mod cache;
pub mod client;
pub mod compat;
pub mod embedded;
pub mod types;

use std::sync::Arc;

pub use cache::{Resolved, SchemaCache};
use client::RemoteRegistry;
use embedded::EmbeddedRegistry;
pub use types::{RegistryError, Schema, SubjectVersion, VersionSpec};

/// Where schemas come from.
#[derive(Debug, Clone)]
pub enum Registry {
    Remote(RemoteRegistry),
    Embedded(Arc<EmbeddedRegistry>),
}

impl Registry {
    pub async fn schema_by_id(&self, id: u32) -> Result<Schema, RegistryError> {
        match self {
            Registry::Remote(remote) => remote.schema_by_id(id).await,
            Registry::Embedded(embedded) => embedded.schema_by_id(id),
        }
    }

    pub async fn subject_version(&self, subject: &str, version: VersionSpec) -> Result<SubjectVersion, RegistryError> {
        match self {
            Registry::Remote(remote) => remote.subject_version(subject, version).await,
            Registry::Embedded(embedded) => embedded.subject_version(subject, version),
        }
    }

    pub async fn register(&self, subject: &str, schema: Schema) -> Result<u32, RegistryError> {
        match self {
            Registry::Remote(remote) => remote.register(subject, &schema).await,
            Registry::Embedded(embedded) => embedded.register(subject, schema).await,
        }
    }

    /// Whether the registry can answer now (for `/readyz`).
    pub async fn ping(&self) -> Result<(), RegistryError> {
        match self {
            Registry::Remote(remote) => remote.ping().await,
            Registry::Embedded(embedded) => embedded.catch_up().await,
        }
    }
}
