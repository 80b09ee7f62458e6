//! Protobuf compatibility, by Confluent's rules (`io.confluent.kafka.schemaregistry.protobuf.diff`,
//! as of the releases that carry its oneof fix: 7.5.16+, 7.9.9+, 8.0.7+, 8.2.3+).
//!
//! The writer's file is the "original" and the reader's the "update":
//! - the package must stay (`PACKAGE_CHANGED`);
//! - every message and enum, top-level and nested, is matched by its simple name within its
//!   scope; a message the reader lacks is `MESSAGE_REMOVED` (a rename is a removal). Enums may
//!   change freely (their values are numbers on the wire);
//! - fields are matched by number, never by name (renames are free), and a field may come and go
//!   unless it is `required` (`REQUIRED_FIELD_ADDED`/`REMOVED`) or leaves a oneof that still
//!   exists (`ONEOF_FIELD_REMOVED`);
//! - a field keeps its kind (scalar or enum / message / map, `FIELD_KIND_CHANGED`), its scalar
//!   stays in its wire-compatible group (`FIELD_SCALAR_KIND_CHANGED`): {int32, int64, uint32,
//!   uint64, bool, enums}, {sint32, sint64}, {string, bytes}, {fixed32, sfixed32}, {fixed64,
//!   sfixed64}, {float}, {double}; a message field keeps its type's name, package aside
//!   (`FIELD_NAMED_TYPE_CHANGED`);
//! - a number changing between `optional`, `repeated` and `required` written out on both sides is
//!   `FIELD_NUMERIC_LABEL_CHANGED` (an implicit proto3 field, a oneof member or a map has no
//!   label written, and is not compared: Confluent's rule, kept as it is);
//! - a oneof may gather fields only from one origin (`MULTIPLE_FIELDS_MOVED_TO_ONEOF`,
//!   `FIELD_MOVED_TO_EXISTING_ONEOF`).
//!
//! `syntax`, imports, options, `reserved` statements and services are not compared, as in
//! Confluent's registry. Paths are Confluent's: `#/Message/Nested/oneof/number`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use prost_reflect::prost_types::field_descriptor_proto::Label;
use prost_reflect::{FieldDescriptor, FileDescriptor, Kind, MessageDescriptor, Syntax};

use super::{Budget, Incompatibility};

/// Everything that stops `reader` from reading data written with `writer`.
pub(crate) fn check(reader: &FileDescriptor, writer: &FileDescriptor, budget: &Budget) -> Vec<Incompatibility> {
    let files = (writer.name().to_owned(), reader.name().to_owned());
    let mut diff = Diff { found: Vec::new(), budget, visited: HashSet::new(), files };
    if reader.package_name() != writer.package_name() {
        diff.push(
            "PACKAGE_CHANGED",
            "#/".into(),
            "The package at '{path}' in the {reader} schema does not match the package in the {writer} schema",
        );
    }
    diff.messages(&writer.messages().collect::<Vec<_>>(), &reader.messages().collect::<Vec<_>>(), &[], 0);
    diff.found
}

struct Diff<'b> {
    found: Vec<Incompatibility>,
    budget: &'b Budget,
    /// Pairs of messages (by full name) already being compared: recursive types end here.
    visited: HashSet<(String, String)>,
    /// The writer's and the reader's own file names (other files are their imports).
    files: (String, String),
}

impl Diff<'_> {
    fn push(&mut self, kind: &'static str, location: String, template: &str) {
        let message = template.replace("{path}", &location);
        self.found.push(Incompatibility { kind, location, message });
    }

    /// Messages of one scope (a file's top level, or one message's nested types).
    fn messages(&mut self, writer: &[MessageDescriptor], reader: &[MessageDescriptor], path: &[String], depth: usize) {
        for old in writer.iter().filter(|m| !m.is_map_entry()) {
            if !self.budget.step(depth) {
                return;
            }
            let mut here = path.to_vec();
            here.push(old.name().to_owned());
            match reader.iter().find(|m| m.name() == old.name()) {
                Some(new) => self.message(old, new, &here, depth + 1),
                None => self.push(
                    "MESSAGE_REMOVED",
                    location(&here),
                    "The {reader} schema is missing a MESSAGE type at path '{path}' in the {writer} schema",
                ),
            }
        }
    }

    fn message(&mut self, old: &MessageDescriptor, new: &MessageDescriptor, path: &[String], depth: usize) {
        if !self.visited.insert((old.full_name().to_owned(), new.full_name().to_owned())) {
            return;
        }
        let old_fields = by_number(old);
        let new_fields = by_number(new);
        let old_oneofs: BTreeSet<&str> = old_fields.values().filter_map(|(_, o)| o.as_deref()).collect();
        let new_oneofs: BTreeSet<&str> = new_fields.values().filter_map(|(_, o)| o.as_deref()).collect();
        // A oneof gone with every one of its fields: only the oneof is removed (compatible).
        let deleted: BTreeSet<&str> = old_oneofs
            .iter()
            .copied()
            .filter(|o| !new_oneofs.contains(o))
            .filter(|o| old_fields.iter().all(|(n, (_, of))| of.as_deref() != Some(*o) || !new_fields.contains_key(n)))
            .collect();
        // A oneof of the reader may not join fields the writer could set together.
        for oneof in &new_oneofs {
            let mut origins = BTreeSet::new();
            let mut moved = 0;
            for (number, (_, _)) in new_fields.iter().filter(|(_, (_, o))| o.as_deref() == Some(*oneof)) {
                match old_fields.get(number) {
                    Some((_, Some(from))) => {
                        origins.insert(format!("oneof:{from}"));
                    }
                    Some((_, None)) => {
                        origins.insert(format!("field:{number}"));
                        moved += 1;
                    }
                    None => {}
                }
            }
            if origins.len() > 1 {
                let mut here = path.to_vec();
                here.push((*oneof).to_owned());
                if moved > 1 {
                    self.push(
                        "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
                        location(&here),
                        "Multiple fields in the oneof at path '{path}' in the {reader} schema are outside a oneof in \
                         the {writer} schema",
                    );
                } else {
                    self.push(
                        "FIELD_MOVED_TO_EXISTING_ONEOF",
                        location(&here),
                        "A field in the oneof at path '{path}' in the {reader} schema is outside an existing oneof in \
                         the {writer} schema",
                    );
                }
            }
        }
        let numbers: BTreeSet<u32> = old_fields.keys().chain(new_fields.keys()).copied().collect();
        for number in numbers {
            if !self.budget.step(depth) {
                return;
            }
            match (old_fields.get(&number), new_fields.get(&number)) {
                (Some((_, Some(oneof))), None) if !deleted.contains(oneof.as_str()) => {
                    let mut here = path.to_vec();
                    here.extend([oneof.clone(), number.to_string()]);
                    self.push(
                        "ONEOF_FIELD_REMOVED",
                        location(&here),
                        "The {reader} schema is missing a oneof field at path '{path}' in the {writer} schema",
                    );
                }
                (Some((old_field, _)), None) if label(old_field) == Some(Label::Required) => {
                    let here = with(path, number.to_string());
                    self.push(
                        "REQUIRED_FIELD_REMOVED",
                        location(&here),
                        "The {reader} schema is missing a required field at path: '{path}' in the {writer} schema",
                    );
                }
                (None, Some((new_field, None))) if label(new_field) == Some(Label::Required) => {
                    let here = with(path, number.to_string());
                    self.push(
                        "REQUIRED_FIELD_ADDED",
                        location(&here),
                        "A required field  at path '{path}' in the {reader} schema is missing in the {writer} schema",
                    );
                }
                (Some((old_field, _)), Some((new_field, oneof))) => {
                    let mut here = path.to_vec();
                    here.extend(oneof.iter().cloned());
                    here.push(number.to_string());
                    self.field(old_field, new_field, &here, depth + 1);
                }
                _ => {}
            }
        }
        self.messages(
            &old.child_messages().collect::<Vec<_>>(),
            &new.child_messages().collect::<Vec<_>>(),
            path,
            depth + 1,
        );
    }

    fn field(&mut self, old: &FieldDescriptor, new: &FieldDescriptor, path: &[String], depth: usize) {
        let (old_type, new_type) = (FieldType::of(old), FieldType::of(new));
        match (&old_type, &new_type) {
            (FieldType::Map(old_key, old_value), FieldType::Map(new_key, new_value)) => {
                self.types(old_key, new_key, None, path, depth);
                self.types(old_value, new_value, None, path, depth);
            }
            _ => self.types(&old_type, &new_type, Some((label(old), label(new))), path, depth),
        }
    }

    fn types(
        &mut self,
        old: &FieldType,
        new: &FieldType,
        labels: Option<(Option<Label>, Option<Label>)>,
        path: &[String],
        depth: usize,
    ) {
        match (old, new) {
            (FieldType::Scalar(old_group), FieldType::Scalar(new_group)) => {
                if old_group != new_group {
                    self.push(
                        "FIELD_SCALAR_KIND_CHANGED",
                        location(path),
                        "The kind of a SCALAR field at path '{path}' in the {reader} schema does not match its kind in \
                         the {writer} schema",
                    );
                } else if let Some((Some(old_label), Some(new_label))) = labels
                    && old_label != new_label
                    && *old_group != ScalarGroup::StringOrBytes
                {
                    self.push(
                        "FIELD_NUMERIC_LABEL_CHANGED",
                        location(path),
                        "The label for a NUMERIC field at path '{path}' in the {reader} schema does not match its label \
                         in the {writer} schema",
                    );
                }
            }
            (FieldType::Message(old_message), FieldType::Message(new_message)) => {
                if local_name(old_message) != local_name(new_message) {
                    self.push(
                        "FIELD_NAMED_TYPE_CHANGED",
                        location(path),
                        "The type of a MESSAGE field at path '{path}' in the {reader} schema does not match its type in \
                         the {writer} schema",
                    );
                } else if old_message.parent_file().name() != self.files.0
                    || new_message.parent_file().name() != self.files.1
                {
                    // Types from other files (references) are not compared where they are
                    // defined here: compare them now, under the field's path.
                    let before = self.found.len();
                    self.message(old_message, new_message, path, depth + 1);
                    if self.found.len() > before {
                        self.push(
                            "FIELD_NAMED_TYPE_CHANGED",
                            location(path),
                            "The type of a MESSAGE field at path '{path}' in the {reader} schema does not match its \
                             type in the {writer} schema",
                        );
                    }
                }
            }
            _ => self.push(
                "FIELD_KIND_CHANGED",
                location(path),
                "The type of a field at path '{path}' in the {reader} schema does not match the {writer} schema",
            ),
        }
    }
}

/// A message's fields by number, each with the (non-synthetic) oneof it belongs to.
fn by_number(message: &MessageDescriptor) -> BTreeMap<u32, (FieldDescriptor, Option<String>)> {
    message
        .fields()
        .map(|field| {
            let oneof = field.containing_oneof().filter(|o| !o.is_synthetic()).map(|o| o.name().to_owned());
            (field.number(), (field, oneof))
        })
        .collect()
}

/// The label a field has written out in its `.proto` (`None`: none written).
fn label(field: &FieldDescriptor) -> Option<Label> {
    let proto = field.field_descriptor_proto();
    let in_oneof = field.containing_oneof().is_some_and(|o| !o.is_synthetic());
    match proto.label() {
        Label::Repeated if field.is_map() => None,
        Label::Repeated => Some(Label::Repeated),
        Label::Required => Some(Label::Required),
        Label::Optional if in_oneof => None,
        Label::Optional if proto.proto3_optional() => Some(Label::Optional),
        Label::Optional if field.parent_file().syntax() == Syntax::Proto2 => Some(Label::Optional),
        Label::Optional => None,
    }
}

/// Scalars that read each other's values on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarGroup {
    GeneralNumber,
    SignedNumber,
    StringOrBytes,
    Fixed32,
    Fixed64,
    Float,
    Double,
}

enum FieldType {
    Scalar(ScalarGroup),
    Message(MessageDescriptor),
    Map(Box<FieldType>, Box<FieldType>),
}

impl FieldType {
    fn of(field: &FieldDescriptor) -> Self {
        match field.kind() {
            Kind::Message(entry) if field.is_map() => Self::Map(
                Box::new(Self::of(&entry.map_entry_key_field())),
                Box::new(Self::of(&entry.map_entry_value_field())),
            ),
            Kind::Message(message) => Self::Message(message),
            Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool | Kind::Enum(_) => {
                Self::Scalar(ScalarGroup::GeneralNumber)
            }
            Kind::Sint32 | Kind::Sint64 => Self::Scalar(ScalarGroup::SignedNumber),
            Kind::String | Kind::Bytes => Self::Scalar(ScalarGroup::StringOrBytes),
            Kind::Fixed32 | Kind::Sfixed32 => Self::Scalar(ScalarGroup::Fixed32),
            Kind::Fixed64 | Kind::Sfixed64 => Self::Scalar(ScalarGroup::Fixed64),
            Kind::Float => Self::Scalar(ScalarGroup::Float),
            Kind::Double => Self::Scalar(ScalarGroup::Double),
        }
    }
}

/// A message's name without its package (`Outer.Inner`).
fn local_name(message: &MessageDescriptor) -> &str {
    let package = message.package_name();
    match message.full_name().strip_prefix(package) {
        Some(rest) if !package.is_empty() => rest.strip_prefix('.').unwrap_or(rest),
        _ => message.full_name(),
    }
}

fn with(path: &[String], last: String) -> Vec<String> {
    let mut here = path.to_vec();
    here.push(last);
    here
}

fn location(path: &[String]) -> String {
    format!("#/{}", path.join("/"))
}
