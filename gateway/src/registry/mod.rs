//! Schemas: a Confluent-API client for remote registries, the embedded registry, and the cache
//! that turns a route's subject and version into a compiled codec.

pub mod cache;
pub mod check;
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

    /// The (subject, version) pairs that use schema `id`.
    pub async fn versions_of_id(&self, id: u32) -> Result<Vec<(String, u32)>, RegistryError> {
        match self {
            Registry::Remote(remote) => remote.versions_of_id(id).await,
            Registry::Embedded(embedded) => {
                embedded.versions_of_id(id, false).map_err(|_| RegistryError::SchemaNotFound(id))
            }
        }
    }

    pub async fn register(&self, subject: &str, schema: Schema) -> Result<u32, RegistryError> {
        match self {
            Registry::Remote(remote) => remote.register(subject, &schema).await,
            Registry::Embedded(embedded) => embedded.register(subject, schema).await,
        }
    }

    /// The schemas `references` name (recursively), dependencies first.
    pub async fn reference_texts(
        &self,
        references: &[types::Reference],
    ) -> Result<Vec<types::ReferencedSchema>, RegistryError> {
        match self {
            Registry::Embedded(embedded) => embedded.reference_texts(references),
            Registry::Remote(remote) => {
                let mut out = Vec::new();
                // Depth-first, iteratively: (reference, whether its own references are done).
                let mut stack: Vec<(types::Reference, bool)> =
                    references.iter().rev().cloned().map(|r| (r, false)).collect();
                let mut steps = 0;
                while let Some((reference, expanded)) = stack.pop() {
                    steps += 1;
                    if steps > 1000 {
                        return Err(RegistryError::InvalidSchema("schema references are too deep or cyclic".into()));
                    }
                    let found =
                        remote.subject_version(&reference.subject, VersionSpec::Number(reference.version)).await?;
                    if expanded || found.references.is_empty() {
                        if !out.iter().any(|r: &types::ReferencedSchema| r.schema == found.schema) {
                            out.push(types::ReferencedSchema { name: reference.name.clone(), schema: found.schema });
                        }
                    } else {
                        stack.push((reference, true));
                        stack.extend(found.references.iter().rev().cloned().map(|r| (r, false)));
                    }
                }
                Ok(out)
            }
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
