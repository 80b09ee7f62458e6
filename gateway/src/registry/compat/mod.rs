//! Schema compatibility: which changes to a subject's schema keep every reader working.
//!
//! A mode says who must be able to read whom:
//! - `BACKWARD` (default): the new schema reads data written with the latest one (upgrade
//!   consumers first); `FORWARD`: the latest reads data written with the new one (upgrade
//!   producers first); `FULL`: both;
//! - `*_TRANSITIVE`: the same against every earlier version, not just the latest;
//! - `NONE`: no check.

pub mod avro;
pub mod json_schema;
pub mod protobuf;

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

pub use self::avro::Incompatibility;
use crate::codec::SchemaType;
use crate::registry::types::ReferencedSchema;

/// A subject's compatibility mode, by its Confluent name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Mode {
    pub const ALL: [Mode; 7] = [
        Mode::None,
        Mode::Backward,
        Mode::BackwardTransitive,
        Mode::Forward,
        Mode::ForwardTransitive,
        Mode::Full,
        Mode::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::None => "NONE",
            Mode::Backward => "BACKWARD",
            Mode::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Mode::Forward => "FORWARD",
            Mode::ForwardTransitive => "FORWARD_TRANSITIVE",
            Mode::Full => "FULL",
            Mode::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn backward(self) -> bool {
        matches!(self, Mode::Backward | Mode::BackwardTransitive | Mode::Full | Mode::FullTransitive)
    }

    fn forward(self) -> bool {
        matches!(self, Mode::Forward | Mode::ForwardTransitive | Mode::Full | Mode::FullTransitive)
    }

    /// Whether every earlier version is checked, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(self, Mode::BackwardTransitive | Mode::ForwardTransitive | Mode::FullTransitive)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL.into_iter().find(|m| m.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
            format!("'{s}' is not a compatibility level (one of {})", Mode::ALL.map(Mode::as_str).join(", "))
        })
    }
}

/// A schema parsed for comparison.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// The schema, and the named types it takes from its references.
    Avro(apache_avro::Schema, Vec<apache_avro::Schema>),
    Json(Value),
    /// The schema's file, its imports reachable through its pool.
    Protobuf(prost_reflect::FileDescriptor),
}

impl Parsed {
    /// Parses schema text; `references` are the texts of the schemas it refers to (Avro named
    /// types defined under other subjects), dependencies first.
    pub fn parse(schema_type: SchemaType, text: &str, references: &[ReferencedSchema]) -> Result<Self, String> {
        match schema_type {
            SchemaType::Avro => {
                let texts: Vec<String> = references.iter().map(|r| r.schema.clone()).collect();
                crate::codec::avro::parse_schema(text, &texts)
                    .map(|(schema, referenced)| Parsed::Avro(schema, referenced))
                    .map_err(|e| format!("invalid Avro schema: {e}"))
            }
            SchemaType::Json => {
                serde_json::from_str(text).map(Parsed::Json).map_err(|e| format!("schema is not JSON: {e}"))
            }
            SchemaType::Protobuf => crate::codec::protobuf::compile(text, references).map(Parsed::Protobuf),
        }
    }
}

/// One incompatibility with one earlier version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The earlier version it concerns.
    pub version: u32,
    /// `"backward"` (the new schema cannot read that version's data) or `"forward"`.
    pub direction: &'static str,
    pub incompatibility: Incompatibility,
}

impl Finding {
    /// The finding's message, with "new" and "old" for the reader and the writer (Protobuf
    /// messages name them, as Confluent's do).
    pub fn message(&self) -> String {
        let (reader, writer) = if self.direction == "backward" { ("new", "old") } else { ("old", "new") };
        self.incompatibility.message.replace("{reader}", reader).replace("{writer}", writer)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.incompatibility;
        let who = match self.direction {
            "backward" => format!("the new schema cannot read version {}", self.version),
            _ => format!("version {} cannot read the new schema", self.version),
        };
        write!(f, "{who}: {} at {}: {}", i.kind, i.location, self.message())
    }
}

/// Checks a new schema against a subject's earlier versions (oldest first) under `mode`.
pub fn check(mode: Mode, new: &Parsed, earlier: &[(u32, Parsed)]) -> Vec<Finding> {
    let against: &[(u32, Parsed)] = match (mode, earlier) {
        (Mode::None, _) | (_, []) => &[],
        (mode, all) if mode.transitive() => all,
        (_, all) => &all[all.len() - 1..],
    };
    let mut findings = Vec::new();
    for (version, old) in against {
        if mode.backward() {
            findings.extend(pair(new, old).into_iter().map(|incompatibility| Finding {
                version: *version,
                direction: "backward",
                incompatibility,
            }));
        }
        if mode.forward() {
            findings.extend(pair(old, new).into_iter().map(|incompatibility| Finding {
                version: *version,
                direction: "forward",
                incompatibility,
            }));
        }
    }
    findings
}

/// Whether `reader` reads what `writer` wrote.
pub fn pair(reader: &Parsed, writer: &Parsed) -> Vec<Incompatibility> {
    let budget = Budget::default();
    let mut found = match (reader, writer) {
        (Parsed::Avro(r, r_refs), Parsed::Avro(w, w_refs)) => avro::check((r, r_refs), (w, w_refs), &budget),
        (Parsed::Json(r), Parsed::Json(w)) => json_schema::check(r, w, &budget),
        (Parsed::Protobuf(r), Parsed::Protobuf(w)) => protobuf::check(r, w, &budget),
        _ => vec![Incompatibility {
            kind: "SCHEMA_TYPE_CHANGED",
            location: "/".into(),
            message: "the schema type changed".into(),
        }],
    };
    if budget.exceeded() {
        found.push(Incompatibility {
            kind: "COMPARISON_LIMIT_EXCEEDED",
            location: "/".into(),
            message: format!(
                "comparing the schemas takes more than {} steps or nests deeper than {} levels; Sluice refuses \
                 rather than guess",
                Budget::MAX_STEPS,
                Budget::MAX_DEPTH
            ),
        });
    }
    found
}

/// The work one comparison of two schemas may do. Recursive types end where a pair of named
/// types (or `$ref`s) repeats, but unions and `anyOf` try branches, which multiplies the work
/// with each level, and a chain of references can nest as deep as the schema is long: a hostile
/// schema would otherwise hang a registration or overflow the stack.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    steps: std::cell::Cell<usize>,
    exceeded: std::cell::Cell<bool>,
}

impl Budget {
    pub(crate) const MAX_STEPS: usize = 100_000;
    pub(crate) const MAX_DEPTH: usize = 128;

    /// Counts one comparison at `depth`; false once the comparison must stop (and from then on).
    pub(crate) fn step(&self, depth: usize) -> bool {
        self.steps.set(self.steps.get() + 1);
        if self.steps.get() > Self::MAX_STEPS || depth > Self::MAX_DEPTH {
            self.exceeded.set(true);
        }
        !self.exceeded.get()
    }

    /// Stops the comparison: something else about it is too large.
    pub(crate) fn give_up(&self) {
        self.exceeded.set(true);
    }

    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.get()
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_protobuf;
