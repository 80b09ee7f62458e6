//! The embedded registry's state: a deterministic fold over the records of its Kafka topic.
//!
//! Every replica reads the same log in the same order, so every replica holds the same state.
//! Records are keyed like Confluent's `_schemas` topic — one key per (subject, version), one per
//! subject's config, one for the global config, one for the id counter — so compaction keeps
//! exactly the latest record per key and the fold over a compacted log is the same state.
//!
//! Record kinds (`keytype`):
//! - `SCHEMA` {subject, version}: the version's id and schema, `deleted` for a soft delete; a
//!   tombstone is a permanent delete;
//! - `CONFIG` {subject?}: `{"compatibilityLevel": …}` for a subject or (no subject) globally; a
//!   tombstone removes a subject's own level;
//! - `ID`: the highest id ever handed out, so ids are never reused, even after permanently
//!   deleted versions are compacted away;
//! - `MODE` {subject?}: `{"mode": "READWRITE" | "READONLY" | "READONLY_OVERRIDE" | "IMPORT"}` for a
//!   subject or globally; a tombstone removes a subject's own mode.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::SchemaType;
use crate::registry::compat::Mode;
use crate::registry::types::{Reference, ReferencedSchema, RegistryError, Schema, SubjectVersion};

/// The key of a registry record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordKey {
    pub keytype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

impl RecordKey {
    pub fn schema(subject: &str, version: u32) -> Self {
        Self { keytype: SCHEMA.into(), subject: Some(subject.into()), version: Some(version) }
    }

    pub fn config(subject: Option<&str>) -> Self {
        Self { keytype: CONFIG.into(), subject: subject.map(str::to_owned), version: None }
    }

    pub fn mode(subject: Option<&str>) -> Self {
        Self { keytype: MODE.into(), subject: subject.map(str::to_owned), version: None }
    }

    pub fn id_counter() -> Self {
        Self { keytype: ID.into(), subject: None, version: None }
    }
}

/// The value of a `SCHEMA` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRecord {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
    #[serde(default)]
    pub schema_type: SchemaType,
    #[serde(default)]
    pub references: Vec<Reference>,
    #[serde(default)]
    pub deleted: bool,
}

/// The value of a `CONFIG` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRecord {
    pub compatibility_level: String,
}

/// The value of a `MODE` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeRecord {
    pub mode: String,
}

/// The value of the `ID` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRecord {
    pub max_id: u32,
}

pub const SCHEMA: &str = "SCHEMA";
pub const CONFIG: &str = "CONFIG";
pub const ID: &str = "ID";
pub const MODE: &str = "MODE";

/// What a subject (or the whole registry) lets clients do: Confluent's `/mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessMode {
    #[default]
    ReadWrite,
    ReadOnly,
    /// Like `READONLY`; set globally it also overrides every subject's own mode.
    ReadOnlyOverride,
    /// Registrations carry their id (and version), for migrating from another registry.
    Import,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWrite => "READWRITE",
            AccessMode::ReadOnly => "READONLY",
            AccessMode::ReadOnlyOverride => "READONLY_OVERRIDE",
            AccessMode::Import => "IMPORT",
        }
    }

    pub fn read_only(self) -> bool {
        matches!(self, AccessMode::ReadOnly | AccessMode::ReadOnlyOverride)
    }
}

impl std::str::FromStr for AccessMode {
    type Err = ();

    /// Any case, as Confluent's registry takes it.
    fn from_str(s: &str) -> Result<Self, ()> {
        [AccessMode::ReadWrite, AccessMode::ReadOnly, AccessMode::ReadOnlyOverride, AccessMode::Import]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub id: u32,
    pub deleted: bool,
}

#[derive(Debug, Default)]
pub struct State {
    /// Id → schema, with how many versions (live or soft-deleted) use it.
    schemas: HashMap<u32, (Schema, usize)>,
    /// Fingerprint of a schema's content → its id, so identical schemas share one id.
    ids_by_content: HashMap<String, u32>,
    /// Subject → version → id and soft-delete flag.
    subjects: BTreeMap<String, BTreeMap<u32, Version>>,
    global_mode: Option<Mode>,
    subject_modes: HashMap<String, Mode>,
    global_access: Option<AccessMode>,
    subject_access: HashMap<String, AccessMode>,
    max_id: u32,
}

impl State {
    /// Folds one record of the topic into the state. Unknown key types are skipped, so a newer
    /// Sluice can add record kinds without breaking older replicas.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let key: RecordKey = serde_json::from_slice(key).map_err(|e| format!("unreadable record key: {e}"))?;
        match (key.keytype.as_str(), key.subject, key.version) {
            (SCHEMA, Some(subject), Some(version)) => match value {
                None => {
                    self.remove_version(&subject, version);
                    Ok(())
                }
                Some(value) => {
                    let record: SchemaRecord =
                        serde_json::from_slice(value).map_err(|e| format!("unreadable schema record: {e}"))?;
                    self.put_version(record);
                    Ok(())
                }
            },
            (CONFIG, subject, _) => {
                let mode = match value {
                    None => None,
                    Some(value) => {
                        let record: ConfigRecord =
                            serde_json::from_slice(value).map_err(|e| format!("unreadable config record: {e}"))?;
                        Some(record.compatibility_level.parse::<Mode>()?)
                    }
                };
                match (subject, mode) {
                    (Some(subject), Some(mode)) => {
                        self.subject_modes.insert(subject, mode);
                    }
                    (Some(subject), None) => {
                        self.subject_modes.remove(&subject);
                    }
                    (None, mode) => self.global_mode = mode,
                }
                Ok(())
            }
            (MODE, subject, _) => {
                let mode = match value {
                    None => None,
                    Some(value) => {
                        let record: ModeRecord =
                            serde_json::from_slice(value).map_err(|e| format!("unreadable mode record: {e}"))?;
                        Some(
                            record
                                .mode
                                .parse::<AccessMode>()
                                .map_err(|()| format!("unknown mode '{}'", record.mode))?,
                        )
                    }
                };
                match (subject, mode) {
                    (Some(subject), Some(mode)) => {
                        self.subject_access.insert(subject, mode);
                    }
                    (Some(subject), None) => {
                        self.subject_access.remove(&subject);
                    }
                    (None, mode) => self.global_access = mode,
                }
                Ok(())
            }
            (ID, _, _) => {
                if let Some(value) = value {
                    let record: IdRecord =
                        serde_json::from_slice(value).map_err(|e| format!("unreadable id record: {e}"))?;
                    self.max_id = self.max_id.max(record.max_id);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn put_version(&mut self, record: SchemaRecord) {
        let previous = self.subjects.get(&record.subject).and_then(|v| v.get(&record.version)).copied();
        if let Some(previous) = previous {
            self.release(previous.id);
        }
        let schema = Schema { schema: record.schema, schema_type: record.schema_type, references: record.references };
        self.ids_by_content.entry(fingerprint(&schema)).or_insert(record.id);
        self.schemas.entry(record.id).or_insert((schema, 0)).1 += 1;
        self.max_id = self.max_id.max(record.id);
        self.subjects
            .entry(record.subject)
            .or_default()
            .insert(record.version, Version { id: record.id, deleted: record.deleted });
    }

    fn remove_version(&mut self, subject: &str, version: u32) {
        let Some(versions) = self.subjects.get_mut(subject) else { return };
        let Some(removed) = versions.remove(&version) else { return };
        if versions.is_empty() {
            self.subjects.remove(subject);
        }
        self.release(removed.id);
    }

    /// One fewer version uses `id`; the last one gone makes the id unknown (never reused).
    fn release(&mut self, id: u32) {
        if let Some((schema, users)) = self.schemas.get_mut(&id) {
            *users -= 1;
            if *users == 0 {
                let content = fingerprint(schema);
                self.schemas.remove(&id);
                self.ids_by_content.remove(&content);
            }
        }
    }

    /// What registering `schema` under `subject` would write: `Err(version)` if a live version
    /// of the subject already has it, else the record for the next version (reusing the id of
    /// identical content anywhere, else the next unused id).
    pub fn plan_register(&self, subject: &str, schema: &Schema) -> Result<SchemaRecord, SubjectVersion> {
        self.plan_import(subject, schema, None, None)
    }

    /// Like [`Self::plan_register`], with the id and version an import gives (`IMPORT` mode).
    pub fn plan_import(
        &self,
        subject: &str,
        schema: &Schema,
        id: Option<u32>,
        version: Option<u32>,
    ) -> Result<SchemaRecord, SubjectVersion> {
        if let Some(existing) = self.lookup(subject, schema, false)
            && id.is_none_or(|id| id == existing.id)
            && version.is_none_or(|v| v == existing.version)
        {
            return Err(existing);
        }
        let existing_id = self.ids_by_content.get(&fingerprint(schema)).copied();
        let versions = self.subjects.get(subject);
        // Soft-deleted version numbers are not reused either.
        let next = versions.and_then(|v| v.keys().next_back()).map_or(1, |v| v + 1);
        Ok(SchemaRecord {
            subject: subject.to_owned(),
            version: version.unwrap_or(next),
            id: id.or(existing_id).unwrap_or(self.max_id + 1),
            schema: schema.schema.clone(),
            schema_type: schema.schema_type,
            references: schema.references.clone(),
            deleted: false,
        })
    }

    /// The version of `subject` holding this schema's content, if any.
    pub fn lookup(&self, subject: &str, schema: &Schema, include_deleted: bool) -> Option<SubjectVersion> {
        let id = *self.ids_by_content.get(&fingerprint(schema))?;
        let (version, _) = self
            .subjects
            .get(subject)?
            .iter()
            .filter(|(_, v)| include_deleted || !v.deleted)
            .find(|(_, v)| v.id == id)?;
        self.subject_version(subject, Some(*version), include_deleted)
    }

    /// The (subject, version) pairs that use schema `id`, by subject then version.
    pub fn versions_of_id(&self, id: u32, include_deleted: bool) -> Vec<(String, u32)> {
        self.subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |(_, v)| v.id == id && (include_deleted || !v.deleted))
                    .map(move |(n, _)| (subject.clone(), *n))
            })
            .collect()
    }

    /// Whether any subject has a live version.
    pub fn has_live_subjects(&self) -> bool {
        self.subjects.values().any(|versions| versions.values().any(|v| !v.deleted))
    }

    /// The mode that applies to a subject: a global `READONLY_OVERRIDE`, else its own, else the
    /// global one, else `READWRITE`.
    pub fn access(&self, subject: Option<&str>) -> AccessMode {
        if self.global_access == Some(AccessMode::ReadOnlyOverride) {
            return AccessMode::ReadOnlyOverride;
        }
        subject.and_then(|s| self.subject_access.get(s)).copied().or(self.global_access).unwrap_or_default()
    }

    pub fn subject_access(&self, subject: &str) -> Option<AccessMode> {
        self.subject_access.get(subject).copied()
    }

    pub fn schema(&self, id: u32) -> Option<&Schema> {
        self.schemas.get(&id).map(|(schema, _)| schema)
    }

    pub fn max_id(&self) -> u32 {
        self.max_id
    }

    /// Subjects with at least one live version (or any version, with `include_deleted`).
    pub fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, versions)| include_deleted || versions.values().any(|v| !v.deleted))
            .map(|(subject, _)| subject.clone())
            .collect()
    }

    /// A subject's version numbers; `None` if it has none (live, unless `include_deleted`).
    pub fn versions(&self, subject: &str, include_deleted: bool) -> Option<Vec<u32>> {
        let versions: Vec<u32> = self
            .subjects
            .get(subject)?
            .iter()
            .filter(|(_, v)| include_deleted || !v.deleted)
            .map(|(n, _)| *n)
            .collect();
        (!versions.is_empty()).then_some(versions)
    }

    pub fn version_state(&self, subject: &str, version: u32) -> Option<Version> {
        self.subjects.get(subject)?.get(&version).copied()
    }

    /// A version of a subject; `None` version means the latest live one.
    pub fn subject_version(
        &self,
        subject: &str,
        version: Option<u32>,
        include_deleted: bool,
    ) -> Option<SubjectVersion> {
        let versions = self.subjects.get(subject)?;
        let (version, entry) = match version {
            Some(n) => (n, *versions.get(&n)?),
            None => versions.iter().rev().find(|(_, v)| !v.deleted).map(|(n, v)| (*n, *v))?,
        };
        if entry.deleted && !include_deleted {
            return None;
        }
        let schema = self.schema(entry.id)?;
        Some(SubjectVersion {
            subject: subject.to_owned(),
            version,
            id: entry.id,
            schema: schema.schema.clone(),
            schema_type: schema.schema_type,
            references: schema.references.clone(),
        })
    }

    /// Live versions, oldest first, for compatibility checks.
    pub fn live_versions(&self, subject: &str) -> Vec<SubjectVersion> {
        self.versions(subject, false)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| self.subject_version(subject, Some(n), false))
            .collect()
    }

    pub fn has_subject(&self, subject: &str, include_deleted: bool) -> bool {
        self.versions(subject, include_deleted).is_some()
    }

    /// The level that applies to a subject: its own, else the global one, else BACKWARD.
    pub fn mode(&self, subject: Option<&str>) -> Mode {
        subject.and_then(|s| self.subject_modes.get(s)).copied().or(self.global_mode).unwrap_or_default()
    }

    pub fn subject_mode(&self, subject: &str) -> Option<Mode> {
        self.subject_modes.get(subject).copied()
    }

    /// The schemas `references` name, dependencies before dependents, for parsing.
    pub fn reference_texts(&self, references: &[Reference]) -> Result<Vec<ReferencedSchema>, RegistryError> {
        let mut out = Vec::new();
        self.collect_references(references, &mut out, 0)?;
        Ok(out)
    }

    fn collect_references(
        &self,
        references: &[Reference],
        out: &mut Vec<ReferencedSchema>,
        depth: usize,
    ) -> Result<(), RegistryError> {
        if depth > 32 {
            return Err(RegistryError::InvalidSchema("schema references nest more than 32 deep".into()));
        }
        for reference in references {
            let found = self.subject_version(&reference.subject, Some(reference.version), true).ok_or_else(|| {
                RegistryError::InvalidSchema(format!(
                    "reference '{}' names version {} of subject '{}', which does not exist",
                    reference.name, reference.version, reference.subject
                ))
            })?;
            self.collect_references(&found.references, out, depth + 1)?;
            if !out.iter().any(|r| r.schema == found.schema) {
                out.push(ReferencedSchema { name: reference.name.clone(), schema: found.schema });
            }
        }
        Ok(())
    }

    /// Live (subject, version) pairs whose schema refers to this subject's version.
    pub fn referenced_by(&self, subject: &str, version: u32) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .subjects
            .values()
            .flat_map(|versions| versions.values())
            .filter(|v| !v.deleted)
            .filter(|v| {
                self.schema(v.id)
                    .is_some_and(|s| s.references.iter().any(|r| r.subject == subject && r.version == version))
            })
            .map(|v| v.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Identity of a schema's content: its type, references and JSON with whitespace and key order
/// normalised (the text itself if it is not JSON). Unlike Avro's parsing canonical form this
/// keeps defaults and docs, which matter to readers and to compatibility.
pub fn fingerprint(schema: &Schema) -> String {
    let body = match serde_json::from_str::<Value>(&schema.schema) {
        Ok(value) => sorted(&value).to_string(),
        Err(_) => schema.schema.clone(),
    };
    let refs: Vec<String> =
        schema.references.iter().map(|r| format!("{}={}@{}", r.name, r.subject, r.version)).collect();
    format!("{}|{}|{}", schema.schema_type, refs.join(","), body)
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(state: &mut State, record: &SchemaRecord) {
        let key = serde_json::to_vec(&RecordKey::schema(&record.subject, record.version)).unwrap();
        state.apply(&key, Some(&serde_json::to_vec(record).unwrap())).unwrap();
    }

    #[test]
    fn assigns_versions_and_shares_ids_between_identical_schemas() {
        let mut state = State::default();
        let a = Schema::new(SchemaType::Avro, r#"{"type": "string"}"#);
        let a_reordered = Schema::new(SchemaType::Avro, r#"{ "type":"string" }"#);
        let b = Schema::new(SchemaType::Avro, r#""long""#);

        let plan = state.plan_register("s", &a).unwrap();
        assert_eq!((plan.id, plan.version), (1, 1));
        put(&mut state, &plan);
        assert_eq!(state.plan_register("s", &a_reordered).unwrap_err().version, 1, "same content, same subject");

        let plan = state.plan_register("s", &b).unwrap();
        assert_eq!((plan.id, plan.version), (2, 2));
        put(&mut state, &plan);

        let plan = state.plan_register("t", &a).unwrap();
        assert_eq!((plan.id, plan.version), (1, 1), "same content under another subject keeps its id");
        put(&mut state, &plan);

        assert_eq!(state.subject_version("s", None, false).unwrap().id, 2);
        assert_eq!(state.subject_version("s", Some(1), false).unwrap().schema, a.schema);
        assert_eq!(state.versions("s", false), Some(vec![1, 2]));
        assert_eq!(state.subjects(false), ["s", "t"]);
        assert!(state.subject_version("s", Some(3), false).is_none());
    }

    #[test]
    fn soft_deletes_hide_versions_and_tombstones_remove_them_without_reusing_ids() {
        let mut state = State::default();
        let v1 = state.plan_register("s", &Schema::new(SchemaType::Json, r#"{"type":"object"}"#)).unwrap();
        put(&mut state, &v1);
        let v2 = state.plan_register("s", &Schema::new(SchemaType::Json, r#"{"type":"string"}"#)).unwrap();
        put(&mut state, &v2);
        put(&mut state, &SchemaRecord { deleted: true, ..v2.clone() });
        assert_eq!(state.subject_version("s", None, false).unwrap().version, 1, "latest skips soft-deleted");
        assert_eq!(state.versions("s", false), Some(vec![1]));
        assert_eq!(state.versions("s", true), Some(vec![1, 2]));
        assert!(state.schema(v2.id).is_some(), "a soft-deleted version's id still resolves");

        state.apply(&serde_json::to_vec(&RecordKey::schema("s", 2)).unwrap(), None).unwrap();
        assert!(state.schema(v2.id).is_none(), "permanently deleted");
        let next = state.plan_register("s", &Schema::new(SchemaType::Json, r#"{"type":"integer"}"#)).unwrap();
        assert_eq!((next.id, next.version), (3, 2), "ids are not reused; the version number is free again");

        state.apply(&serde_json::to_vec(&RecordKey::id_counter()).unwrap(), Some(br#"{"max_id": 10}"#)).unwrap();
        assert_eq!(state.plan_register("s", &Schema::new(SchemaType::Json, "true")).unwrap().id, 11);
    }

    #[test]
    fn config_records_set_global_and_subject_levels() {
        let mut state = State::default();
        assert_eq!(state.mode(Some("s")), Mode::Backward);
        let config = |subject: Option<&str>| serde_json::to_vec(&RecordKey::config(subject)).unwrap();
        state.apply(&config(None), Some(br#"{"compatibilityLevel":"FULL"}"#)).unwrap();
        state.apply(&config(Some("s")), Some(br#"{"compatibilityLevel":"NONE"}"#)).unwrap();
        assert_eq!(
            (state.mode(Some("s")), state.mode(Some("t")), state.mode(None)),
            (Mode::None, Mode::Full, Mode::Full)
        );
        state.apply(&config(Some("s")), None).unwrap();
        assert_eq!(state.mode(Some("s")), Mode::Full);
        assert!(state.apply(br#"{"keytype":"OTHER"}"#, Some(b"{}")).is_ok(), "unknown kinds are skipped");
    }
}
