//! Protobuf: JSON events in, Protobuf messages in Confluent's wire format out, and back.
//!
//! A schema is `.proto` text (or, as Confluent's registry also accepts, a base64-encoded
//! `FileDescriptorProto`). [`protox`] compiles it with the files it imports: other subjects'
//! schemas named by `references`, and the well-known `google/protobuf/*.proto` files, which need
//! no reference. [`prost_reflect`] holds the descriptors and converts between proto3's canonical
//! JSON mapping and dynamic messages.
//!
//! A record's payload is the message-index array ([`indexes`]) that names the message within
//! the file, then the message's bytes.

mod fast;
pub mod indexes;
mod print;

use std::collections::HashMap;

use base64::Engine as _;
use prost_reflect::prost::Message as _;
use prost_reflect::{DeserializeOptions, DynamicMessage, FileDescriptor, MessageDescriptor, SerializeOptions};
use protox::file::{File, FileResolver, GoogleFileResolver};

use super::ValueError;
use super::json::Json;
use crate::registry::types::ReferencedSchema;

/// The longest `.proto` text Sluice compiles (larger than any real schema file; the parser's
/// work grows with it).
pub const MAX_SCHEMA_LEN: usize = 1 << 20;

/// A compiled Protobuf schema.
#[derive(Debug)]
pub struct ProtobufCodec {
    file: FileDescriptor,
    /// Every message of the file by full name, with its Confluent message indexes.
    messages: HashMap<String, (MessageDescriptor, Vec<i32>)>,
    /// The produce path's fast encoder (`prost-reflect` is the reference and the fallback).
    fast: fast::Plan,
}

impl ProtobufCodec {
    /// Compiles a schema; `references` are the files it imports, by the names it imports them as.
    pub fn compile(schema: &str, references: &[ReferencedSchema]) -> Result<Self, String> {
        let file = compile(schema, references)?;
        let mut messages = HashMap::new();
        let mut stack: Vec<MessageDescriptor> = file.messages().collect();
        while let Some(message) = stack.pop() {
            stack.extend(message.child_messages());
            // The descriptor path alternates field numbers and indexes: (4, i, 3, j, 3, k, …).
            let indexes = message.path().iter().skip(1).step_by(2).copied().collect();
            messages.insert(message.full_name().to_owned(), (message, indexes));
        }
        let fast = fast::Plan::new(messages.values().map(|(message, _)| message.clone()));
        Ok(Self { file, messages, fast })
    }

    /// The compiled file (with its imports reachable through its pool).
    pub fn file(&self) -> &FileDescriptor {
        &self.file
    }

    /// The message a route writes: `name` (fully qualified, or relative to the file's package),
    /// or the file's first message.
    pub fn message(&self, name: Option<&str>) -> Result<&(MessageDescriptor, Vec<i32>), String> {
        match name {
            None => {
                let first = self.file.messages().next().ok_or("the schema defines no message")?;
                self.messages.get(first.full_name()).ok_or_else(|| "the schema defines no message".into())
            }
            Some(name) => {
                let name = name.strip_prefix('.').unwrap_or(name);
                let package = self.file.package_name();
                self.messages
                    .get(name)
                    .or_else(|| {
                        (!package.is_empty()).then(|| self.messages.get(&format!("{package}.{name}"))).flatten()
                    })
                    .ok_or_else(|| format!("the schema has no message '{name}'"))
            }
        }
    }

    /// Reads one JSON event (proto3's JSON mapping; `event` is `raw` parsed) as `message` and
    /// appends its message indexes and bytes to `out`. Fields the message does not have are
    /// refused when `reject_unknown`, else dropped.
    pub fn encode(
        &self,
        message: Option<&str>,
        event: &Json<'_>,
        raw: &str,
        reject_unknown: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), ValueError> {
        let (descriptor, path) =
            self.message(message).map_err(|message| ValueError { pointer: String::new(), message })?;
        let start = out.len();
        indexes::write(out, path);
        if self.fast.encode(descriptor.full_name(), event, reject_unknown, out).is_some() {
            return Ok(());
        }
        out.truncate(start);
        self.encode_reference(descriptor, path, raw, reject_unknown, out)
    }

    /// [`Self::encode`] through `prost-reflect` alone: what the fast path must agree with.
    pub fn encode_reference(
        &self,
        descriptor: &MessageDescriptor,
        path: &[i32],
        raw: &str,
        reject_unknown: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), ValueError> {
        let options = DeserializeOptions::new().deny_unknown_fields(reject_unknown);
        let mut json = serde_json::Deserializer::from_str(raw);
        let mut track = serde_path_to_error::Track::new();
        let value = DynamicMessage::deserialize_with_options(
            descriptor.clone(),
            serde_path_to_error::Deserializer::new(&mut json, &mut track),
            &options,
        )
        .map_err(|error| {
            let mut pointer = pointer(&track.path());
            let message = message_of(&error);
            // An unknown field is reported at its message; point at the field itself.
            if let Some(name) = message.strip_prefix("unrecognized field name '").and_then(|m| m.strip_suffix('\'')) {
                pointer.push('/');
                pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
            }
            ValueError { pointer, message }
        })?;
        json.end().map_err(|error| ValueError { pointer: String::new(), message: message_of(&error) })?;
        indexes::write(out, path);
        value.encode(out).map_err(|e| ValueError { pointer: String::new(), message: e.to_string() })
    }

    /// A record's payload (after the wire header) as canonical proto3 JSON.
    pub fn decode_to_json(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let (path, used) = indexes::read(payload)?;
        let descriptor = self.by_indexes(&path)?;
        let message = DynamicMessage::decode(descriptor, &payload[used..])
            .map_err(|e| format!("not a valid Protobuf message: {e}"))?;
        let mut json = serde_json::Serializer::new(Vec::with_capacity(payload.len() * 2));
        message
            .serialize_with_options(&mut json, &SerializeOptions::new())
            .map_err(|e| format!("cannot be written as JSON: {e}"))?;
        Ok(json.into_inner())
    }

    /// The message that message indexes name.
    fn by_indexes(&self, path: &[i32]) -> Result<MessageDescriptor, String> {
        let missing = || format!("the schema has no message at indexes {path:?}");
        let (&first, rest) = path.split_first().ok_or_else(missing)?;
        let mut message = usize::try_from(first).ok().and_then(|i| self.file.messages().nth(i)).ok_or_else(missing)?;
        for &index in rest {
            message = usize::try_from(index).ok().and_then(|i| message.child_messages().nth(i)).ok_or_else(missing)?;
        }
        Ok(message)
    }
}

/// The name the schema itself is compiled as; its errors are reported against it.
const SCHEMA_FILE: &str = "schema.proto";

/// Compiles schema text with its references into the schema's file descriptor.
pub fn compile(schema: &str, references: &[ReferencedSchema]) -> Result<FileDescriptor, String> {
    if schema.len() > MAX_SCHEMA_LEN {
        return Err(format!("the schema is {} bytes, more than the {MAX_SCHEMA_LEN} Sluice compiles", schema.len()));
    }
    let name = if references.iter().any(|r| r.name == SCHEMA_FILE) { "sluice-schema.proto" } else { SCHEMA_FILE };
    let mut files = HashMap::new();
    for reference in references {
        files.insert(reference.name.clone(), file(&reference.name, &reference.schema)?);
    }
    files.insert(name.to_owned(), file(name, schema)?);
    // prost-reflect 0.16 panics on some hostile descriptors instead of answering an error (the
    // `protobuf_encode` fuzz target found one: a base64 descriptor of three bytes, kept in
    // `tests/fuzz/regressions/protobuf_encode/`): such a schema is invalid like any other.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut compiler = protox::Compiler::with_file_resolver(Files { files, google: GoogleFileResolver::new() });
        compiler.open_file(name).map_err(|e| compiler_message(&e))?;
        let pool = compiler.descriptor_pool();
        pool.get_file_by_name(name).ok_or_else(|| "the compiler lost the schema's file".to_owned())
    }))
    .unwrap_or_else(|panic| Err(format!("the schema cannot be compiled ({})", super::panic_message(&*panic))))
}

/// A schema in Confluent's `serialized` format: its compiled file as a base64
/// `FileDescriptorProto`.
pub fn serialized(schema: &str, references: &[ReferencedSchema]) -> Result<String, String> {
    let file = compile(schema, references)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(file.file_descriptor_proto().encode_to_vec()))
}

/// Schema text as the registry keeps it: a base64 descriptor becomes `.proto` text (as
/// Confluent's registry prints it) when it prints and compiles back to the same descriptor;
/// anything else is kept as given.
pub fn as_text(schema: &str, references: &[ReferencedSchema]) -> String {
    let printed = || -> Option<String> {
        let descriptor = serialized_descriptor(schema)?;
        let text = print::print(&descriptor)?;
        let original = compile(schema, references).ok()?.file_descriptor_proto().clone();
        let again = compile(&text, references).ok()?.file_descriptor_proto().clone();
        (comparable(original) == comparable(again)).then_some(text)
    };
    printed().unwrap_or_else(|| schema.to_owned())
}

/// A descriptor without what differs between a compiled `.proto` and a serializer's descriptor
/// of the same file: its name, source positions, and JSON names protoc derives anyway.
fn comparable(
    mut file: prost_reflect::prost_types::FileDescriptorProto,
) -> prost_reflect::prost_types::FileDescriptorProto {
    fn message(m: &mut prost_reflect::prost_types::DescriptorProto) {
        for field in &mut m.field {
            if field.json_name.as_deref().is_some_and(|j| j == print::default_json_name(field.name())) {
                field.json_name = None;
            }
        }
        m.nested_type.iter_mut().for_each(message);
    }
    file.name = None;
    file.source_code_info = None;
    file.message_type.iter_mut().for_each(message);
    file
}

/// One file from schema text: `.proto` source, or a base64 `FileDescriptorProto`.
fn file(name: &str, text: &str) -> Result<File, String> {
    if let Some(descriptor) = serialized_descriptor(text) {
        let mut descriptor = descriptor;
        descriptor.name = Some(name.to_owned());
        return Ok(File::from_file_descriptor_proto(descriptor));
    }
    File::from_source(name, text).map_err(|e| compiler_message(&e))
}

/// A schema sent in Confluent's `serialized` format: base64 of a `FileDescriptorProto`. `.proto`
/// text always has characters base64 lacks (spaces, `;`), so the two cannot be confused.
pub fn serialized_descriptor(text: &str) -> Option<prost_reflect::prost_types::FileDescriptorProto> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
    prost_reflect::prost_types::FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// The compiler's message with its position, as `protoc` prints it (`file:line:column: what`).
fn compiler_message(error: &protox::Error) -> String {
    use miette::Diagnostic as _;
    let mut message = error.to_string();
    if let (Some(file), Some(source)) = (error.file(), error.source_code())
        && let Some(label) = error.labels().and_then(|mut labels| labels.next())
        && let Ok(span) = source.read_span(label.inner(), 0, 0)
    {
        message = format!("{file}:{}:{}: {message}", span.line() + 1, span.column() + 1);
    }
    message
}

/// Files by import name, then the well-known types.
struct Files {
    files: HashMap<String, File>,
    google: GoogleFileResolver,
}

impl FileResolver for Files {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.files.get(name) {
            Some(file) => Ok(file.clone()),
            None => self.google.open_file(name),
        }
    }
}

/// An RFC 6901 pointer from the path serde tracked while reading the event.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}

/// serde_json's message without its " at line 1 column 5" suffix (the pointer says where).
fn message_of(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) if error.line() > 0 => text[..at].to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests;
