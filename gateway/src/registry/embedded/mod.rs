//! Sluice's own schema registry, stored in a compacted single-partition Kafka topic (see
//! [`crate::kafka::log`] for how replicas read and write it without a leader).

pub mod api;
pub mod state;

use std::sync::RwLockReadGuard;

use self::state::{ConfigRecord, IdRecord, RecordKey, SchemaRecord, State};
use super::types::{RegistryError, Schema, SubjectVersion, VersionSpec};
use crate::codec::Codec;
use crate::config::KafkaConfig;
use crate::kafka::client_config;
use crate::kafka::log::{self, CompactedLog, Fold, LogError, Outcome, Plan};
use crate::registry::compat::{self, Mode, Parsed};

impl Fold for State {
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        State::apply(self, key, value)
    }
}

impl From<LogError> for RegistryError {
    fn from(error: LogError) -> Self {
        RegistryError::Unavailable(error.0)
    }
}

/// The embedded registry of one gateway process.
#[derive(Debug)]
pub struct EmbeddedRegistry {
    log: CompactedLog<State>,
}

impl EmbeddedRegistry {
    /// Creates the topic if needed and reads it whole.
    pub async fn start(kafka: &KafkaConfig, topic: &str) -> Result<std::sync::Arc<Self>, RegistryError> {
        let log = CompactedLog::<State>::start(&client_config(kafka), topic).await?;
        let subjects = log.read().subjects(false).len();
        tracing::info!(topic, subjects, "embedded schema registry loaded");
        Ok(std::sync::Arc::new(Self { log }))
    }

    /// Waits until every record committed so far has been read.
    pub async fn catch_up(&self) -> Result<(), RegistryError> {
        Ok(self.log.catch_up().await?)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.log.read()
    }

    /// Registers a schema under a subject, returning its id (the existing one if the subject
    /// already has this schema). Refused if it breaks the subject's compatibility level.
    pub async fn register(&self, subject: &str, schema: Schema) -> Result<u32, RegistryError> {
        // Known already: answered from memory, without the writer (serializers with
        // `auto.register.schemas` register on every start).
        if let Some(existing) = self.read().lookup(subject, &schema, false) {
            return Ok(existing.id);
        }
        self.log
            .write(|state| {
                let references = state.reference_texts(&schema.references)?;
                let parsed = Parsed::parse(schema.schema_type, &schema.schema, &references)
                    .map_err(RegistryError::InvalidSchema)?;
                Codec::compile_with_references(schema.schema_type, &schema.schema, &references)
                    .map_err(RegistryError::InvalidSchema)?;
                let record = match state.plan_register(subject, &schema) {
                    Ok(record) => record,
                    Err(existing) => return Ok(Outcome::Nothing(existing.id)),
                };
                let mode = state.mode(Some(subject));
                let findings = compat::check(mode, &parsed, &parse_versions(state, &state.live_versions(subject))?);
                if !findings.is_empty() {
                    return Err(RegistryError::Incompatible {
                        subject: subject.to_owned(),
                        mode: mode.to_string(),
                        findings: findings.iter().map(ToString::to_string).collect(),
                    });
                }
                let (id, version) = (record.id, record.version);
                let mut records = vec![entry(&RecordKey::schema(subject, version), Some(&record))?];
                if id > state.max_id() {
                    records.push(entry(&RecordKey::id_counter(), Some(&IdRecord { max_id: id }))?);
                }
                tracing::info!(subject, version, id, "registering schema");
                let subject = subject.to_owned();
                Ok(Outcome::Write(Plan {
                    records,
                    result: id,
                    applied: Box::new(move |s: &State| s.version_state(&subject, version).is_some()),
                }))
            })
            .await
    }

    /// Whether a schema would be accepted by a subject: against `version`, or (`None`) against
    /// the versions its level checks. Returns the reasons it would not.
    pub fn check_compatibility(
        &self,
        subject: &str,
        schema: &Schema,
        version: Option<VersionSpec>,
    ) -> Result<Vec<String>, RegistryError> {
        let state = self.read();
        let references = state.reference_texts(&schema.references)?;
        let parsed =
            Parsed::parse(schema.schema_type, &schema.schema, &references).map_err(RegistryError::InvalidSchema)?;
        let mode = state.mode(Some(subject));
        let findings = match version {
            None => compat::check(mode, &parsed, &parse_versions(&state, &state.live_versions(subject))?),
            Some(spec) => {
                let against = self.version_of(&state, subject, spec)?;
                // One named version: the level's direction, without transitivity.
                let single = match mode {
                    Mode::BackwardTransitive => Mode::Backward,
                    Mode::ForwardTransitive => Mode::Forward,
                    Mode::FullTransitive => Mode::Full,
                    other => other,
                };
                compat::check(single, &parsed, &parse_versions(&state, &[against])?)
            }
        };
        Ok(findings.iter().map(ToString::to_string).collect())
    }

    /// The version of a subject holding this schema (`POST /subjects/{subject}`).
    pub fn lookup(
        &self,
        subject: &str,
        schema: &Schema,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let state = self.read();
        if !state.has_subject(subject, include_deleted) {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        state.lookup(subject, schema, include_deleted).ok_or(RegistryError::SchemaNotFound(0))
    }

    /// Sets the global (`None`) or a subject's compatibility level.
    pub async fn set_mode(&self, subject: Option<&str>, mode: Mode) -> Result<(), RegistryError> {
        let value = ConfigRecord { compatibility_level: mode.to_string() };
        let key = RecordKey::config(subject);
        let subject = subject.map(str::to_owned);
        self.log
            .write(|_| {
                let subject = subject.clone();
                Ok(Outcome::Write(Plan {
                    records: vec![entry(&key, Some(&value))?],
                    result: (),
                    applied: Box::new(move |s: &State| match &subject {
                        Some(subject) => s.subject_mode(subject) == Some(mode),
                        None => s.mode(None) == mode,
                    }),
                }))
            })
            .await
    }

    /// Removes a subject's own level, returning it; the global level applies again.
    pub async fn delete_subject_mode(&self, subject: &str) -> Result<Mode, RegistryError> {
        self.log
            .write(|state| {
                let previous = state
                    .subject_mode(subject)
                    .ok_or_else(|| RegistryError::SubjectConfigNotFound(subject.to_owned()))?;
                let subject = subject.to_owned();
                Ok(Outcome::Write(Plan {
                    records: vec![entry::<ConfigRecord>(&RecordKey::config(Some(&subject)), None)?],
                    result: previous,
                    applied: Box::new(move |s: &State| s.subject_mode(&subject).is_none()),
                }))
            })
            .await
    }

    /// The level that applies to a subject (or, for `None`, the global level).
    pub fn mode(&self, subject: Option<&str>) -> Mode {
        self.read().mode(subject)
    }

    /// A subject's own level, if it has one.
    pub fn subject_mode(&self, subject: &str) -> Option<Mode> {
        self.read().subject_mode(subject)
    }

    /// Deletes one version: soft (hidden, id still resolvable), or permanent once soft-deleted.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        self.log
            .write(|state| {
                let found = self.version_of(state, subject, spec).or_else(|error| match spec {
                    // A soft-deleted version can be named for its permanent delete.
                    VersionSpec::Number(n) if permanent => state.subject_version(subject, Some(n), true).ok_or(error),
                    _ => Err(error),
                })?;
                let version = found.version;
                let current = state
                    .version_state(subject, version)
                    .ok_or_else(|| RegistryError::VersionNotFound { subject: subject.to_owned(), version: spec })?;
                let referencing = state.referenced_by(subject, version);
                if !referencing.is_empty() {
                    return Err(RegistryError::ReferencedBy { subject: subject.to_owned(), version, ids: referencing });
                }
                let key = RecordKey::schema(subject, version);
                let subject_name = subject.to_owned();
                if permanent {
                    if !current.deleted {
                        return Err(RegistryError::VersionNotSoftDeleted { subject: subject.to_owned(), version });
                    }
                    return Ok(Outcome::Write(Plan {
                        records: vec![entry::<SchemaRecord>(&key, None)?],
                        result: version,
                        applied: Box::new(move |s: &State| s.version_state(&subject_name, version).is_none()),
                    }));
                }
                let record = soft_deleted(&found);
                Ok(Outcome::Write(Plan {
                    records: vec![entry(&key, Some(&record))?],
                    result: version,
                    applied: Box::new(move |s: &State| {
                        s.version_state(&subject_name, version).is_some_and(|v| v.deleted)
                    }),
                }))
            })
            .await
    }

    /// Deletes every version of a subject: soft, or permanent once all are soft-deleted. Returns
    /// the versions deleted.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>, RegistryError> {
        self.log
            .write(|state| {
                let all =
                    state.versions(subject, true).ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
                let live = state.versions(subject, false).unwrap_or_default();
                for version in &all {
                    let referencing = state.referenced_by(subject, *version);
                    if !referencing.is_empty() {
                        return Err(RegistryError::ReferencedBy {
                            subject: subject.to_owned(),
                            version: *version,
                            ids: referencing,
                        });
                    }
                }
                let subject_name = subject.to_owned();
                if permanent {
                    if !live.is_empty() {
                        return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
                    }
                    let mut records = all
                        .iter()
                        .map(|v| entry::<SchemaRecord>(&RecordKey::schema(subject, *v), None))
                        .collect::<Result<Vec<_>, _>>()?;
                    if state.subject_mode(subject).is_some() {
                        records.push(entry::<ConfigRecord>(&RecordKey::config(Some(subject)), None)?);
                    }
                    return Ok(Outcome::Write(Plan {
                        records,
                        result: all,
                        applied: Box::new(move |s: &State| !s.has_subject(&subject_name, true)),
                    }));
                }
                if live.is_empty() {
                    return Err(RegistryError::SubjectNotFound(subject.to_owned()));
                }
                let records = live
                    .iter()
                    .filter_map(|v| state.subject_version(subject, Some(*v), false))
                    .map(|found| entry(&RecordKey::schema(subject, found.version), Some(&soft_deleted(&found))))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Outcome::Write(Plan {
                    records,
                    result: live,
                    applied: Box::new(move |s: &State| !s.has_subject(&subject_name, false)),
                }))
            })
            .await
    }

    pub fn schema_by_id(&self, id: u32) -> Result<Schema, RegistryError> {
        self.read().schema(id).cloned().ok_or(RegistryError::SchemaNotFound(id))
    }

    pub fn subject_version(&self, subject: &str, version: VersionSpec) -> Result<SubjectVersion, RegistryError> {
        self.version_of(&self.read(), subject, version)
    }

    /// Like [`Self::subject_version`], optionally finding soft-deleted versions.
    pub fn subject_version_including_deleted(
        &self,
        subject: &str,
        version: VersionSpec,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let state = self.read();
        match version {
            VersionSpec::Number(n) if include_deleted => {
                state.subject_version(subject, Some(n), true).ok_or_else(|| not_found(&state, subject, version))
            }
            _ => self.version_of(&state, subject, version),
        }
    }

    fn version_of(&self, state: &State, subject: &str, version: VersionSpec) -> Result<SubjectVersion, RegistryError> {
        let number = match version {
            VersionSpec::Latest => None,
            VersionSpec::Number(n) => Some(n),
        };
        state.subject_version(subject, number, false).ok_or_else(|| not_found(state, subject, version))
    }

    pub fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.read().subjects(include_deleted)
    }

    pub fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<u32>, RegistryError> {
        self.read().versions(subject, include_deleted).ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))
    }

    /// Ids of live schemas that reference a version (`GET …/referencedby`).
    pub fn referenced_by(&self, subject: &str, version: VersionSpec) -> Result<Vec<u32>, RegistryError> {
        let state = self.read();
        let found = self.version_of(&state, subject, version)?;
        Ok(state.referenced_by(subject, found.version))
    }

    /// The texts of the schemas a reference list names, dependencies first.
    pub fn reference_texts(
        &self,
        references: &[crate::registry::types::Reference],
    ) -> Result<Vec<String>, RegistryError> {
        self.read().reference_texts(references)
    }
}

/// One registry record, keyed like Confluent's `_schemas` topic.
fn entry<V: serde::Serialize>(key: &RecordKey, value: Option<&V>) -> Result<(Vec<u8>, Option<Vec<u8>>), RegistryError> {
    Ok(log::record(key, value)?)
}

fn soft_deleted(found: &SubjectVersion) -> SchemaRecord {
    SchemaRecord {
        subject: found.subject.clone(),
        version: found.version,
        id: found.id,
        schema: found.schema.clone(),
        schema_type: found.schema_type,
        references: found.references.clone(),
        deleted: true,
    }
}

fn not_found(state: &State, subject: &str, version: VersionSpec) -> RegistryError {
    if state.has_subject(subject, false) {
        RegistryError::VersionNotFound { subject: subject.to_owned(), version }
    } else {
        RegistryError::SubjectNotFound(subject.to_owned())
    }
}

/// Parses versions for a compatibility check, with their references.
fn parse_versions(state: &State, versions: &[SubjectVersion]) -> Result<Vec<(u32, Parsed)>, RegistryError> {
    versions
        .iter()
        .map(|v| {
            let references = state.reference_texts(&v.references)?;
            Parsed::parse(v.schema_type, &v.schema, &references).map(|parsed| (v.version, parsed)).map_err(|e| {
                RegistryError::InvalidSchema(format!(
                    "stored version {} of '{}' no longer parses: {e}",
                    v.version, v.subject
                ))
            })
        })
        .collect()
}
