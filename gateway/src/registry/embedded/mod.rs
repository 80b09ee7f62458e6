//! Sluice's own schema registry, stored in a compacted single-partition Kafka topic (see
//! [`crate::kafka::log`] for how replicas read and write it without a leader).

pub mod api;
pub mod errors;
pub mod state;

use std::sync::RwLockReadGuard;

use self::state::{AccessMode, ConfigRecord, IdRecord, ModeRecord, RecordKey, SchemaRecord, State, fingerprint};
use super::types::{RegistryError, Schema, SubjectVersion, VersionSpec};
use crate::codec::{Codec, SchemaType};
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
    /// `registry.strict_avro_defaults`.
    strict_avro_defaults: bool,
}

impl EmbeddedRegistry {
    /// Creates the topic if needed and reads it whole. With `strict_avro_defaults`, new Avro
    /// schemas must give each union's default in its first branch.
    pub async fn start(
        kafka: &KafkaConfig,
        topic: &str,
        strict_avro_defaults: bool,
    ) -> Result<std::sync::Arc<Self>, RegistryError> {
        let log = CompactedLog::<State>::start(&client_config(kafka), topic).await?;
        let subjects = log.read().subjects(false).len();
        tracing::info!(topic, subjects, "embedded schema registry loaded");
        Ok(std::sync::Arc::new(Self { log, strict_avro_defaults }))
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
        self.register_as(subject, schema, None, None).await.map(|registered| registered.id)
    }

    /// [`Self::register`] with the id and version an import gives (`IMPORT` mode only), returning
    /// the version registered (or found).
    pub async fn register_as(
        &self,
        subject: &str,
        schema: Schema,
        id: Option<u32>,
        version: Option<u32>,
    ) -> Result<SubjectVersion, RegistryError> {
        let schema = self.as_text(schema);
        // Known already: answered from memory, without the writer (serializers with
        // `auto.register.schemas` register on every start), and in any mode, as Confluent does.
        if let Some(existing) = self.read().lookup(subject, &schema, false)
            && id.is_none_or(|id| id == existing.id)
            && version.is_none_or(|v| v == existing.version)
        {
            return Ok(existing);
        }
        self.log
            .write(|state| {
                let access = state.access(Some(subject));
                if access.read_only() {
                    return Err(errors::read_only(Some(subject)));
                }
                match (access, id) {
                    (AccessMode::Import, None) => return Err(errors::not_read_write_mode(subject)),
                    (AccessMode::Import, Some(id)) => {
                        if state.schema(id).is_some_and(|taken| fingerprint(taken) != fingerprint(&schema)) {
                            return Err(errors::id_taken(id));
                        }
                    }
                    (_, Some(_)) => return Err(errors::not_import_mode(subject)),
                    (_, None) => {}
                }
                let references = state.reference_texts(&schema.references)?;
                let parsed = Parsed::parse(schema.schema_type, &schema.schema, &references)
                    .map_err(RegistryError::InvalidSchema)?;
                // Imports keep another registry's history as it is.
                if self.strict_avro_defaults && schema.schema_type == SchemaType::Avro && id.is_none() {
                    crate::codec::avro::check_union_defaults_on_first_branch(&schema.schema)
                        .map_err(RegistryError::InvalidSchema)?;
                }
                Codec::compile_with_references(schema.schema_type, &schema.schema, &references)
                    .map_err(RegistryError::InvalidSchema)?;
                let record = match state.plan_import(subject, &schema, id, version) {
                    Ok(record) => record,
                    Err(existing) => return Ok(Outcome::Nothing(existing)),
                };
                // An import copies another registry's history as it is: no compatibility check.
                if access != AccessMode::Import {
                    let mode = state.mode(Some(subject));
                    let earlier = state.live_versions(subject);
                    let findings = compat::check(mode, &parsed, &parse_versions(state, &earlier)?);
                    if !findings.is_empty() {
                        return Err(RegistryError::Incompatible {
                            subject: subject.to_owned(),
                            mode: mode.to_string(),
                            findings: confluent_messages(&findings, &earlier, mode),
                        });
                    }
                }
                let (id, version) = (record.id, record.version);
                let mut records = vec![entry(&RecordKey::schema(subject, version), Some(&record))?];
                if id > state.max_id() {
                    records.push(entry(&RecordKey::id_counter(), Some(&IdRecord { max_id: id }))?);
                }
                tracing::info!(subject, version, id, "registering schema");
                let registered = SubjectVersion {
                    subject: subject.to_owned(),
                    version,
                    id,
                    schema: record.schema.clone(),
                    schema_type: record.schema_type,
                    references: record.references.clone(),
                };
                let subject = subject.to_owned();
                Ok(Outcome::Write(Plan {
                    records,
                    result: registered,
                    applied: Box::new(move |s: &State| {
                        s.version_state(&subject, version).is_some_and(|v| v.id == id && !v.deleted)
                    }),
                }))
            })
            .await
    }

    /// Whether a schema would be accepted by a subject: against `version`, or (`None`) against
    /// the versions its level checks. Returns the reasons it would not, as Confluent words them.
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
        let (mode, against) = match version {
            None => (mode, state.live_versions(subject)),
            // The latest of a subject with no versions: nothing to be incompatible with.
            Some(VersionSpec::Latest) if !state.has_subject(subject, false) => return Ok(Vec::new()),
            Some(spec) => {
                // A missing version answers 40402 even when the whole subject is missing.
                let against = self
                    .version_of(&state, subject, spec)
                    .map_err(|_| RegistryError::VersionNotFound { subject: subject.to_owned(), version: spec })?;
                // One named version: the level's direction, without transitivity.
                let single = match mode {
                    Mode::BackwardTransitive => Mode::Backward,
                    Mode::ForwardTransitive => Mode::Forward,
                    Mode::FullTransitive => Mode::Full,
                    other => other,
                };
                (single, vec![against])
            }
        };
        let findings = compat::check(mode, &parsed, &parse_versions(&state, &against)?);
        Ok(if findings.is_empty() { Vec::new() } else { confluent_messages(&findings, &against, mode) })
    }

    /// The version of a subject holding this schema (`POST /subjects/{subject}`).
    pub fn lookup(
        &self,
        subject: &str,
        schema: &Schema,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let schema = self.as_text(schema.clone());
        let state = self.read();
        if !state.has_subject(subject, include_deleted) {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        state.lookup(subject, &schema, include_deleted).ok_or(RegistryError::SchemaNotFound(0))
    }

    /// A Protobuf schema sent as a base64 descriptor, as `.proto` text (see
    /// `codec::protobuf::as_text`); other schemas as they are.
    fn as_text(&self, mut schema: Schema) -> Schema {
        if schema.schema_type == SchemaType::Protobuf
            && crate::codec::protobuf::serialized_descriptor(&schema.schema).is_some()
            && let Ok(references) = self.reference_texts(&schema.references)
        {
            schema.schema = crate::codec::protobuf::as_text(&schema.schema, &references);
        }
        schema
    }

    /// Sets the global (`None`) or a subject's compatibility level.
    pub async fn set_mode(&self, subject: Option<&str>, mode: Mode) -> Result<(), RegistryError> {
        let value = ConfigRecord { compatibility_level: mode.to_string() };
        let key = RecordKey::config(subject);
        let subject = subject.map(str::to_owned);
        self.log
            .write(|state| {
                if state.access(subject.as_deref()).read_only() {
                    return Err(errors::read_only(subject.as_deref()));
                }
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

    /// Removes a subject's own level (the global level applies again), or resets the global
    /// level to the default (`None`); returns the level removed.
    pub async fn delete_subject_mode(&self, subject: Option<&str>) -> Result<Mode, RegistryError> {
        let subject = subject.map(str::to_owned);
        self.log
            .write(|state| {
                if state.access(subject.as_deref()).read_only() {
                    return Err(errors::read_only(subject.as_deref()));
                }
                let previous = match &subject {
                    // Confluent answers a subject without a level of its own as an unknown subject.
                    Some(name) => {
                        state.subject_mode(name).ok_or_else(|| RegistryError::SubjectNotFound(name.clone()))?
                    }
                    None => state.mode(None),
                };
                let subject = subject.clone();
                Ok(Outcome::Write(Plan {
                    records: vec![entry::<ConfigRecord>(&RecordKey::config(subject.as_deref()), None)?],
                    result: previous,
                    applied: Box::new(move |s: &State| match &subject {
                        Some(subject) => s.subject_mode(subject).is_none(),
                        None => s.mode(None) == Mode::default(),
                    }),
                }))
            })
            .await
    }

    /// The mode (`READWRITE`, `READONLY`, `IMPORT`) that applies to a subject or, for `None`,
    /// globally.
    pub fn access(&self, subject: Option<&str>) -> AccessMode {
        self.read().access(subject)
    }

    /// A subject's own mode, if it has one.
    pub fn subject_access(&self, subject: &str) -> Option<AccessMode> {
        self.read().subject_access(subject)
    }

    /// Sets the global (`None`) or a subject's mode. Switching to `IMPORT` is refused while the
    /// scope has live subjects, unless `force`: imported ids could clash with theirs.
    pub async fn set_access(&self, subject: Option<&str>, mode: AccessMode, force: bool) -> Result<(), RegistryError> {
        let subject = subject.map(str::to_owned);
        let value = ModeRecord { mode: mode.as_str().to_owned() };
        self.log
            .write(|state| {
                let scope = subject.as_deref();
                if mode == AccessMode::Import && state.access(scope) != AccessMode::Import && !force {
                    let occupied = match scope {
                        Some(subject) => state.has_subject(subject, false),
                        None => state.has_live_subjects(),
                    };
                    if occupied {
                        return Err(errors::subjects_exist());
                    }
                }
                let subject = subject.clone();
                Ok(Outcome::Write(Plan {
                    records: vec![entry(&RecordKey::mode(subject.as_deref()), Some(&value))?],
                    result: (),
                    applied: Box::new(move |s: &State| match &subject {
                        Some(subject) => s.subject_access(subject) == Some(mode),
                        None => s.access(None) == mode,
                    }),
                }))
            })
            .await
    }

    /// Removes a subject's own mode, or resets the global one to `READWRITE`; returns the mode
    /// removed.
    pub async fn delete_access(&self, subject: Option<&str>) -> Result<AccessMode, RegistryError> {
        let subject = subject.map(str::to_owned);
        self.log
            .write(|state| {
                let previous = match &subject {
                    Some(name) => {
                        state.subject_access(name).ok_or_else(|| RegistryError::SubjectNotFound(name.clone()))?
                    }
                    None => state.access(None),
                };
                let subject = subject.clone();
                Ok(Outcome::Write(Plan {
                    records: vec![entry::<ModeRecord>(&RecordKey::mode(subject.as_deref()), None)?],
                    result: previous,
                    applied: Box::new(move |s: &State| match &subject {
                        Some(subject) => s.subject_access(subject).is_none(),
                        None => s.access(None) == AccessMode::ReadWrite,
                    }),
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
                if state.access(Some(subject)).read_only() {
                    return Err(errors::read_only(Some(subject)));
                }
                if let VersionSpec::Number(n) = spec
                    && !permanent
                    && state.version_state(subject, n).is_some_and(|v| v.deleted)
                    && state.has_subject(subject, false)
                {
                    return Err(RegistryError::VersionSoftDeleted { subject: subject.to_owned(), version: n });
                }
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
                if state.access(Some(subject)).read_only() {
                    return Err(errors::read_only(Some(subject)));
                }
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
                    return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
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

    /// The (subject, version) pairs that use schema `id`; `SchemaNotFound(0)` (Confluent's
    /// "Schema not found") if none does.
    pub fn versions_of_id(&self, id: u32, include_deleted: bool) -> Result<Vec<(String, u32)>, RegistryError> {
        let found = self.read().versions_of_id(id, include_deleted);
        if found.is_empty() { Err(RegistryError::SchemaNotFound(0)) } else { Ok(found) }
    }

    /// The highest id handed out so far (`fetchMaxId`).
    pub fn max_id(&self) -> u32 {
        self.read().max_id()
    }

    /// Every version of every subject whose name starts with `prefix` (`GET /schemas`), by subject
    /// then version; only each subject's latest with `latest_only`.
    pub fn schemas(&self, prefix: &str, include_deleted: bool, latest_only: bool) -> Vec<SubjectVersion> {
        let state = self.read();
        let mut out = Vec::new();
        for subject in state.subjects(include_deleted).into_iter().filter(|s| s.starts_with(prefix)) {
            let versions = state.versions(&subject, include_deleted).unwrap_or_default();
            let chosen: &[u32] = if latest_only { &versions[versions.len().saturating_sub(1)..] } else { &versions };
            out.extend(chosen.iter().filter_map(|v| state.subject_version(&subject, Some(*v), include_deleted)));
        }
        out
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

    /// A schema's text in the `format` a reader asked for: Protobuf's `serialized` is the
    /// compiled file as a base64 `FileDescriptorProto` (what Confluent's deserializers ask
    /// for); every other format (and type) is the text as registered.
    pub fn formatted(&self, schema: &Schema, format: Option<&str>) -> Result<String, RegistryError> {
        match (schema.schema_type, format) {
            (SchemaType::Protobuf, Some("serialized")) => {
                let references = self.reference_texts(&schema.references)?;
                crate::codec::protobuf::serialized(&schema.schema, &references).map_err(RegistryError::InvalidSchema)
            }
            _ => Ok(schema.schema.clone()),
        }
    }

    /// The texts of the schemas a reference list names, dependencies first.
    pub fn reference_texts(
        &self,
        references: &[crate::registry::types::Reference],
    ) -> Result<Vec<crate::registry::types::ReferencedSchema>, RegistryError> {
        self.read().reference_texts(references)
    }
}

/// Confluent's wording of the reasons a schema is incompatible: per earlier version its
/// findings (`errorType`, a description with the JSON pointer into the schema, the detail), that
/// version's number and text, and finally the level checked.
fn confluent_messages(findings: &[compat::Finding], earlier: &[SubjectVersion], mode: Mode) -> Vec<String> {
    let mut messages = Vec::new();
    let mut versions: Vec<u32> = findings.iter().map(|f| f.version).collect();
    versions.dedup();
    for version in versions {
        for finding in findings.iter().filter(|f| f.version == version) {
            let i = &finding.incompatibility;
            let (reader, writer) = if finding.direction == "backward" { ("new", "old") } else { ("old", "new") };
            // Protobuf's findings are Confluent's own descriptions, paths `#/Message/1`.
            if i.location.starts_with("#/") {
                messages.push(format!("{{errorType:\"{}\", description:\"{}\"}}", i.kind, finding.message()));
                continue;
            }
            messages.push(format!(
                "{{errorType:'{}', description:'The {reader} schema cannot read data written with the {writer} \
                 schema at path '{}'', additionalInfo:'{}'}}",
                i.kind, i.location, i.message
            ));
        }
        messages.push(format!("{{oldSchemaVersion: {version}}}"));
        if let Some(old) = earlier.iter().find(|v| v.version == version) {
            messages.push(format!("{{oldSchema: '{}'}}", old.schema));
        }
    }
    messages.push(format!("{{validateFields: 'false', compatibility: '{mode}'}}"));
    messages
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
