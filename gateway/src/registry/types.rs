//! The schema registry's data, shaped as the Confluent REST API serializes it.

use serde::{Deserialize, Serialize};

use crate::codec::SchemaType;

/// A schema as stored under an id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    pub schema: String,
    /// Absent means AVRO, as in Confluent's API.
    #[serde(default, skip_serializing_if = "is_avro")]
    pub schema_type: SchemaType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

/// A named type defined under another subject (Avro schema references).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: u32,
}

/// A schema another one refers to, with the name it is referred to by (an Avro schema's
/// named type, a Protobuf schema's import path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferencedSchema {
    pub name: String,
    pub schema: String,
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
    #[serde(default, skip_serializing_if = "is_avro")]
    pub schema_type: SchemaType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

impl From<SubjectVersion> for Schema {
    fn from(version: SubjectVersion) -> Self {
        Schema { schema: version.schema, schema_type: version.schema_type, references: version.references }
    }
}

/// Which version of a subject to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionSpec {
    Latest,
    Number(u32),
}

impl std::fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionSpec::Latest => f.write_str("latest"),
            VersionSpec::Number(n) => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for VersionSpec {
    type Err = String;

    /// `latest`, `-1` (Confluent's alias for latest) or a positive number.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "latest" | "-1" => Ok(VersionSpec::Latest),
            _ => match s.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(VersionSpec::Number(n)),
                _ => Err(format!("'{s}' is not a version: use a positive number or 'latest'")),
            },
        }
    }
}

fn is_avro(t: &SchemaType) -> bool {
    *t == SchemaType::Avro
}

/// Why a registry call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("subject '{0}' not found")]
    SubjectNotFound(String),
    #[error("version {version} of subject '{subject}' not found")]
    VersionNotFound { subject: String, version: VersionSpec },
    #[error("schema id {0} not found")]
    SchemaNotFound(u32),
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    #[error("the schema is incompatible with subject '{subject}' under {mode}: {}", findings.join("; "))]
    Incompatible { subject: String, mode: String, findings: Vec<String> },
    #[error("{0}")]
    InvalidCompatibility(String),
    #[error("subject '{0}' must be soft-deleted before it is permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("subject '{0}' was soft-deleted already; delete it with permanent=true to remove it")]
    SubjectSoftDeleted(String),
    #[error("version {version} of subject '{subject}' was soft-deleted already; delete it with permanent=true")]
    VersionSoftDeleted { subject: String, version: u32 },
    #[error("subject '{0}' has no mode of its own")]
    SubjectModeNotFound(String),
    #[error("the request has an empty schema")]
    EmptySchema,
    /// Refused by the registry's or the subject's mode (read-only, import).
    #[error("{0}")]
    NotPermitted(String),
    #[error("version {version} of subject '{subject}' must be soft-deleted before it is permanently deleted")]
    VersionNotSoftDeleted { subject: String, version: u32 },
    #[error("subject '{0}' has no compatibility level of its own")]
    SubjectConfigNotFound(String),
    #[error("version {version} of subject '{subject}' is referenced by schemas {ids:?}")]
    ReferencedBy { subject: String, version: u32, ids: Vec<u32> },
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    #[error("schema registry answered {status}: {message}")]
    Unexpected { status: u16, message: String },
}
