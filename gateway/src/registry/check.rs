//! `sluice schema check` and `sluice schema register`: the registry operations a CI pipeline
//! runs before a schema change reaches a topic, against any Confluent-compatible registry
//! (Sluice's embedded one at `http://<gateway>/registry`, Confluent, Karapace, Apicurio, …).
//!
//! The check runs Sluice's own compatibility rules locally against the subject's versions,
//! under the subject's level as the registry reports it (or one given on the command line), so
//! it lists every incompatibility with its location, whatever the registry would have said.

use std::fmt::Write as _;
use std::path::Path;

use super::client::RemoteRegistry;
use super::compat::{self, Finding, Mode, Parsed};
use super::types::{Reference, RegistryError, Schema, VersionSpec};
use crate::codec::SchemaType;

/// A schema file to check or register.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    pub schema: Schema,
    pub path: String,
}

impl SchemaFile {
    /// Reads a schema file; the type comes from `schema_type`, else from the extension
    /// (`.avsc` is Avro, `.json` is JSON Schema, `.proto` is Protobuf).
    pub fn read(path: &Path, schema_type: Option<SchemaType>, references: Vec<Reference>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let schema_type = match schema_type {
            Some(t) => t,
            None => match path.extension().and_then(|e| e.to_str()) {
                Some("avsc" | "avro") => SchemaType::Avro,
                Some("json") => SchemaType::Json,
                Some("proto") => SchemaType::Protobuf,
                _ => {
                    return Err(format!(
                        "cannot tell the schema type of {}: pass --type avro, json or protobuf",
                        path.display()
                    ));
                }
            },
        };
        Ok(Self { schema: Schema { schema: text, schema_type, references }, path: path.display().to_string() })
    }
}

/// Parses `NAME=SUBJECT:VERSION` (a schema reference on the command line).
pub fn parse_reference(text: &str) -> Result<Reference, String> {
    let bad = || format!("'{text}' is not a reference: write NAME=SUBJECT:VERSION, e.g. shop.Address=shop.Address:1");
    let (name, rest) = text.split_once('=').ok_or_else(bad)?;
    let (subject, version) = rest.rsplit_once(':').ok_or_else(bad)?;
    let version = version.parse().map_err(|_| bad())?;
    Ok(Reference { name: name.to_owned(), subject: subject.to_owned(), version })
}

/// The verdict of a check.
#[derive(Debug)]
pub struct Verdict {
    pub subject: String,
    pub mode: Mode,
    pub versions: Vec<u32>,
    pub findings: Vec<Finding>,
}

impl Verdict {
    pub fn is_compatible(&self) -> bool {
        self.findings.is_empty()
    }

    /// What the command prints.
    pub fn report(&self, file: &str) -> String {
        let mut out = String::new();
        if self.versions.is_empty() {
            let _ = writeln!(out, "ok: {file} would be version 1 of the new subject '{}'", self.subject);
        } else if self.findings.is_empty() {
            let _ = writeln!(
                out,
                "ok: {file} is compatible with subject '{}' under {} (versions {:?})",
                self.subject, self.mode, self.versions
            );
        } else {
            let _ = writeln!(
                out,
                "incompatible: {file} breaks subject '{}' under {} ({} problem(s)):",
                self.subject,
                self.mode,
                self.findings.len()
            );
            for finding in &self.findings {
                let _ = writeln!(out, "  - {finding}");
            }
        }
        out
    }
}

/// Checks a schema file against a subject's versions.
pub async fn check(
    registry: &RemoteRegistry,
    subject: &str,
    file: &SchemaFile,
    mode: Option<Mode>,
) -> Result<Verdict, RegistryError> {
    let mode = match mode {
        Some(mode) => mode,
        None => registry.compatibility_level(subject).await?.parse().map_err(RegistryError::InvalidCompatibility)?,
    };
    let references = reference_texts(registry, &file.schema.references).await?;
    let new = Parsed::parse(file.schema.schema_type, &file.schema.schema, &references)
        .map_err(RegistryError::InvalidSchema)?;
    let versions = registry.versions(subject).await?;
    let mut earlier = Vec::with_capacity(versions.len());
    // Only the versions the mode compares against are fetched.
    let needed: &[u32] =
        if mode.transitive() { &versions } else { versions.last().map(std::slice::from_ref).unwrap_or(&[]) };
    for version in needed {
        let found = registry.subject_version(subject, VersionSpec::Number(*version)).await?;
        let references = reference_texts(registry, &found.references).await?;
        let parsed = Parsed::parse(found.schema_type, &found.schema, &references)
            .map_err(|e| RegistryError::InvalidSchema(format!("version {version} of '{subject}': {e}")))?;
        earlier.push((*version, parsed));
    }
    let findings = compat::check(mode, &new, &earlier);
    Ok(Verdict { subject: subject.to_owned(), mode, versions, findings })
}

async fn reference_texts(
    registry: &RemoteRegistry,
    references: &[Reference],
) -> Result<Vec<super::types::ReferencedSchema>, RegistryError> {
    super::Registry::Remote(registry.clone()).reference_texts(references).await
}
