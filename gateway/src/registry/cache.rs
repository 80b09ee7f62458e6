//! The schema cache between routes and the registry.
//!
//! - Compiled codecs are kept by schema id forever: an id's schema never changes.
//! - A pinned version's id is kept forever too.
//! - The latest version of a subject is trusted for the TTL. After that one request refreshes it
//!   while the others keep using the known version, and if the registry cannot be reached the
//!   known version stays in use (logged) rather than failing every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Registry, RegistryError, Schema, SubjectVersion, VersionSpec};
use crate::codec::Codec;

/// A route's schema, ready to encode with.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub id: u32,
    pub version: u32,
    pub codec: Arc<Codec>,
}

#[derive(Debug, Clone, Copy)]
struct Known {
    id: u32,
    version: u32,
    fetched: Instant,
    refreshing: bool,
}

/// Cache of compiled schemas in front of a [`Registry`].
#[derive(Debug)]
pub struct SchemaCache {
    registry: Registry,
    ttl: Duration,
    codecs: Mutex<HashMap<u32, Arc<Codec>>>,
    subjects: Mutex<HashMap<(String, VersionSpec), Known>>,
    /// Schemas requests chose: (subject, id) → version, for ids found under the subject.
    chosen: Mutex<HashMap<(String, u32), u32>>,
    /// Schema texts requests gave: (subject, text) → id, once registered.
    texts: Mutex<HashMap<(String, Schema), u32>>,
}

/// How many chosen schemas (and schema texts) are remembered; past it they are forgotten all at
/// once and looked up again. Clients choose schemas, so the maps must be bounded.
const MAX_CHOSEN: usize = 1000;

impl SchemaCache {
    pub fn new(registry: Registry, ttl: Duration) -> Self {
        Self {
            registry,
            ttl,
            codecs: Mutex::default(),
            subjects: Mutex::default(),
            chosen: Mutex::default(),
            texts: Mutex::default(),
        }
    }

    /// A schema a request chose by id for `subject` (the Confluent REST API's
    /// `value_schema_id`): one of the subject's versions, else `SchemaNotFound`; records of a
    /// topic stay readable as the topic's subject.
    pub async fn chosen_by_id(&self, subject: &str, id: u32) -> Result<Resolved, RegistryError> {
        let key = (subject.to_owned(), id);
        let known = lock(&self.chosen).get(&key).copied();
        let version = match known {
            Some(version) => version,
            None => {
                let pairs = self.registry.versions_of_id(id).await?;
                let Some((_, version)) = pairs.into_iter().find(|(s, _)| s == subject) else {
                    return Err(RegistryError::SchemaNotFound(id));
                };
                remember_bounded(&self.chosen, key, version);
                version
            }
        };
        let codec = self.by_id(id).await?;
        Ok(Resolved { id, version, codec })
    }

    /// A schema a request gave as text for `subject` (the Confluent REST API's `value_schema`):
    /// registered under it (the registry's compatibility rules decide; an identical schema keeps
    /// its id), then used like one chosen by id.
    pub async fn chosen_by_text(&self, subject: &str, schema: Schema) -> Result<Resolved, RegistryError> {
        let key = (subject.to_owned(), schema);
        let known = lock(&self.texts).get(&key).copied();
        let id = match known {
            Some(id) => id,
            None => {
                let id = self.registry.register(subject, key.1.clone()).await?;
                remember_bounded(&self.texts, key, id);
                id
            }
        };
        self.chosen_by_id(subject, id).await
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The schema a route should encode with now.
    pub async fn resolve(&self, subject: &str, version: VersionSpec) -> Result<Resolved, RegistryError> {
        let key = (subject.to_owned(), version);
        let known = {
            let mut subjects = lock(&self.subjects);
            match subjects.get_mut(&key) {
                Some(known)
                    if version != VersionSpec::Latest || known.fetched.elapsed() < self.ttl || known.refreshing =>
                {
                    Some((*known, false))
                }
                Some(known) => {
                    known.refreshing = true;
                    Some((*known, true))
                }
                None => None,
            }
        };
        // A stale entry being refreshed counts as a miss: it asks the registry.
        crate::telemetry::metrics::metrics().cache("subject", matches!(known, Some((_, false))));
        match known {
            Some((known, false)) => self.compiled(known.id, known.version, None).await,
            Some((stale, true)) => match self.registry.subject_version(subject, version).await {
                Ok(fresh) => self.remember(key, &fresh).await,
                Err(error) => {
                    tracing::warn!(subject, error = %error, id = stale.id, "registry refresh failed; keeping the known schema");
                    if let Some(known) = lock(&self.subjects).get_mut(&key) {
                        known.refreshing = false;
                    }
                    self.compiled(stale.id, stale.version, None).await
                }
            },
            None => {
                let fresh = self.registry.subject_version(subject, version).await?;
                self.remember(key, &fresh).await
            }
        }
    }

    /// A compiled codec by schema id (for records whose id is known, e.g. when consuming).
    pub async fn by_id(&self, id: u32) -> Result<Arc<Codec>, RegistryError> {
        let cached = lock(&self.codecs).get(&id).cloned();
        crate::telemetry::metrics::metrics().cache("id", cached.is_some());
        if let Some(codec) = cached {
            return Ok(codec);
        }
        let schema = self.registry.schema_by_id(id).await?;
        let references = self.registry.reference_texts(&schema.references).await?;
        let codec = Arc::new(
            Codec::compile_with_references(schema.schema_type, &schema.schema, &references)
                .map_err(RegistryError::InvalidSchema)?,
        );
        lock(&self.codecs).insert(id, codec.clone());
        Ok(codec)
    }

    async fn remember(&self, key: (String, VersionSpec), fresh: &SubjectVersion) -> Result<Resolved, RegistryError> {
        let resolved = self.compiled(fresh.id, fresh.version, Some(fresh)).await?;
        let previous = lock(&self.subjects).insert(
            key.clone(),
            Known { id: fresh.id, version: fresh.version, fetched: Instant::now(), refreshing: false },
        );
        if previous.is_some_and(|p| p.id != fresh.id) {
            tracing::info!(
                subject = key.0,
                version = fresh.version,
                id = fresh.id,
                "route now uses a new schema version"
            );
        }
        Ok(resolved)
    }

    async fn compiled(
        &self,
        id: u32,
        version: u32,
        source: Option<&SubjectVersion>,
    ) -> Result<Resolved, RegistryError> {
        if let Some(codec) = lock(&self.codecs).get(&id) {
            return Ok(Resolved { id, version, codec: codec.clone() });
        }
        let source = source.ok_or(RegistryError::SchemaNotFound(id))?;
        let references = self.registry.reference_texts(&source.references).await?;
        let codec = Arc::new(
            Codec::compile_with_references(source.schema_type, &source.schema, &references)
                .map_err(|e| RegistryError::InvalidSchema(format!("schema {id} cannot be used: {e}")))?,
        );
        lock(&self.codecs).insert(id, codec.clone());
        Ok(Resolved { id, version, codec })
    }
}

fn remember_bounded<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    let mut map = lock(map);
    if map.len() >= MAX_CHOSEN {
        map.clear();
    }
    map.insert(key, value);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Cache maps hold plain values: a panic elsewhere cannot leave one half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
