//! The embedded registry's state: a deterministic fold over the records of its Kafka topic.
//!
//! Every replica reads the same log in the same order, so every replica holds the same state.
//! Records are keyed by (subject, version) as Confluent's `_schemas` topic is, so compaction
//! keeps exactly the latest record per version and the fold over a compacted log is the same.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::SchemaType;
use crate::registry::types::{Reference, Schema, SubjectVersion};

/// The key of a schema record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordKey {
    pub keytype: String,
    pub subject: String,
    pub version: u32,
}

/// The value of a schema record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordValue {
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

pub const SCHEMA_KEYTYPE: &str = "SCHEMA";

#[derive(Debug, Default)]
pub struct State {
    schemas: HashMap<u32, Schema>,
    /// Fingerprint of a schema's content → its id, so identical schemas share one id.
    ids_by_content: HashMap<String, u32>,
    /// Subject → version → id.
    subjects: BTreeMap<String, BTreeMap<u32, u32>>,
    max_id: u32,
}

impl State {
    /// Folds one record of the topic into the state. Unknown key types are skipped, so a newer
    /// Sluice can add record kinds without breaking older replicas.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let key: RecordKey = serde_json::from_slice(key).map_err(|e| format!("unreadable record key: {e}"))?;
        if key.keytype != SCHEMA_KEYTYPE {
            return Ok(());
        }
        let Some(value) = value else {
            if let Some(versions) = self.subjects.get_mut(&key.subject) {
                versions.remove(&key.version);
                if versions.is_empty() {
                    self.subjects.remove(&key.subject);
                }
            }
            return Ok(());
        };
        let value: RecordValue = serde_json::from_slice(value).map_err(|e| format!("unreadable record value: {e}"))?;
        let schema = Schema { schema: value.schema, schema_type: value.schema_type, references: value.references };
        self.ids_by_content.entry(fingerprint(&schema)).or_insert(value.id);
        self.schemas.entry(value.id).or_insert(schema);
        self.max_id = self.max_id.max(value.id);
        let versions = self.subjects.entry(value.subject).or_default();
        if value.deleted {
            versions.remove(&value.version);
        } else {
            versions.insert(value.version, value.id);
        }
        Ok(())
    }

    /// What registering `schema` under `subject` would write: `Err(id)` if the subject already
    /// has it, else the record for the next version (reusing the id of identical content).
    pub fn plan_register(&self, subject: &str, schema: &Schema) -> Result<RecordValue, u32> {
        let content = fingerprint(schema);
        let existing_id = self.ids_by_content.get(&content).copied();
        let versions = self.subjects.get(subject);
        if let (Some(id), Some(versions)) = (existing_id, versions)
            && versions.values().any(|v| *v == id)
        {
            return Err(id);
        }
        let version = versions.and_then(|v| v.keys().next_back()).map_or(1, |v| v + 1);
        Ok(RecordValue {
            subject: subject.to_owned(),
            version,
            id: existing_id.unwrap_or(self.max_id + 1),
            schema: schema.schema.clone(),
            schema_type: schema.schema_type,
            references: schema.references.clone(),
            deleted: false,
        })
    }

    pub fn schema(&self, id: u32) -> Option<&Schema> {
        self.schemas.get(&id)
    }

    pub fn subjects(&self) -> impl Iterator<Item = &String> {
        self.subjects.keys()
    }

    pub fn versions(&self, subject: &str) -> Option<Vec<u32>> {
        self.subjects.get(subject).map(|v| v.keys().copied().collect())
    }

    /// A version of a subject; `None` version means the latest.
    pub fn subject_version(&self, subject: &str, version: Option<u32>) -> Option<SubjectVersion> {
        let versions = self.subjects.get(subject)?;
        let (version, id) = match version {
            Some(v) => (v, *versions.get(&v)?),
            None => versions.iter().next_back().map(|(v, id)| (*v, *id))?,
        };
        let schema = self.schemas.get(&id)?;
        Some(SubjectVersion {
            subject: subject.to_owned(),
            version,
            id,
            schema: schema.schema.clone(),
            schema_type: schema.schema_type,
            references: schema.references.clone(),
        })
    }

    pub fn has_subject(&self, subject: &str) -> bool {
        self.subjects.contains_key(subject)
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

    fn record(state: &mut State, plan: &RecordValue) {
        let key = serde_json::to_vec(&RecordKey {
            keytype: SCHEMA_KEYTYPE.into(),
            subject: plan.subject.clone(),
            version: plan.version,
        })
        .unwrap();
        state.apply(&key, Some(&serde_json::to_vec(plan).unwrap())).unwrap();
    }

    #[test]
    fn assigns_versions_and_shares_ids_between_identical_schemas() {
        let mut state = State::default();
        let a = Schema::new(SchemaType::Avro, r#"{"type": "string"}"#);
        let a_reordered = Schema::new(SchemaType::Avro, r#"{ "type":"string" }"#);
        let b = Schema::new(SchemaType::Avro, r#""long""#);

        let plan = state.plan_register("s", &a).unwrap();
        assert_eq!((plan.id, plan.version), (1, 1));
        record(&mut state, &plan);
        assert_eq!(state.plan_register("s", &a_reordered), Err(1), "same content, same subject: nothing new");

        let plan = state.plan_register("s", &b).unwrap();
        assert_eq!((plan.id, plan.version), (2, 2));
        record(&mut state, &plan);

        let plan = state.plan_register("t", &a).unwrap();
        assert_eq!((plan.id, plan.version), (1, 1), "same content under another subject keeps its id");
        record(&mut state, &plan);

        assert_eq!(state.subject_version("s", None).unwrap().id, 2);
        assert_eq!(state.subject_version("s", Some(1)).unwrap().schema, a.schema);
        assert_eq!(state.versions("s"), Some(vec![1, 2]));
        assert_eq!(state.subjects().collect::<Vec<_>>(), ["s", "t"]);
        assert!(state.subject_version("s", Some(3)).is_none());
    }

    #[test]
    fn skips_unknown_record_kinds_and_applies_tombstones() {
        let mut state = State::default();
        state.apply(br#"{"keytype":"CONFIG","subject":"s","version":0}"#, Some(b"{}")).unwrap();
        let plan = state.plan_register("s", &Schema::new(SchemaType::Json, "{}")).unwrap();
        record(&mut state, &plan);
        state.apply(br#"{"keytype":"SCHEMA","subject":"s","version":1}"#, None).unwrap();
        assert!(!state.has_subject("s"));
        assert!(state.schema(1).is_some(), "ids stay resolvable for records already written");
    }
}
