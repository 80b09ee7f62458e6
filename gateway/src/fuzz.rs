//! Entry points for the coverage-guided fuzz targets in `tests/fuzz/` (cargo-fuzz, libFuzzer):
//! one function per parser, codec and checker that reads hostile input. Each must return for
//! every input, without a panic, an abort, a hang or an unbounded allocation, and checks the
//! properties its code promises (what it encodes it decodes; what it decodes is JSON).
//!
//! They live here, not in the fuzz crate, so that `cargo test` on the stable toolchain replays
//! every committed corpus input and every crash kept as a regression (`tests/fuzz_corpus.rs`),
//! while the fuzzer itself needs nightly.

use crate::codec::SchemaType;
use crate::codec::avro::AvroEncoder;
use crate::codec::json_schema::JsonSchemaValidator;
use crate::codec::protobuf::ProtobufCodec;
use crate::registry::compat::{Parsed, pair};

/// A fuzz target: takes any bytes, returns for all of them.
pub type Target = fn(&[u8]);

/// Makes a crash, for libFuzzer, a panic that escapes the target (libfuzzer-sys then aborts),
/// not every panic: its default hook aborts even on one Sluice catches on purpose — apache-avro
/// panics on some invalid schemas, which `codec::avro::parse_schema` turns into a refusal. Called
/// once, when the fuzzer starts; the default hook still prints each panic.
pub fn only_escaping_panics_crash() {
    drop(std::panic::take_hook());
}

/// The fuzz targets, by the name of their directory in `tests/fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("avro_schema", avro_schema),
    ("json_schema", json_schema),
    ("avro_encode", avro_encode),
    ("avro_decode", avro_decode),
    ("avro_compat", avro_compat),
    ("json_schema_compat", json_schema_compat),
    ("wire", wire),
    ("body", body),
    ("config", config),
    ("protobuf_schema", protobuf_schema),
    ("protobuf_encode", protobuf_encode),
    ("protobuf_decode", protobuf_decode),
    ("protobuf_compat", protobuf_compat),
];

/// Splits an input at its first NUL byte: two texts (a schema and a value, two schemas).
fn halves(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Avro schema parsing (apache-avro) and compilation into an encoder.
pub fn avro_schema(data: &[u8]) {
    let Some(schema) = text(data) else { return };
    let _ = AvroEncoder::compile(schema);
    let _ = Parsed::parse(SchemaType::Avro, schema, &[]);
}

/// JSON Schema compilation, and validating the second half against it.
pub fn json_schema(data: &[u8]) {
    let (schema, instance) = halves(data);
    let Some(validator) = text(schema).and_then(|s| JsonSchemaValidator::compile(s).ok()) else { return };
    if let Ok(instance) = serde_json::from_slice::<serde_json::Value>(instance) {
        let _ = validator.validate(&instance);
    }
}

/// JSON → Avro for an arbitrary schema and JSON; what encodes must decode to JSON that encodes
/// to the same bytes again.
pub fn avro_encode(data: &[u8]) {
    let (schema, value) = halves(data);
    let (Some(schema), Some(value)) = (text(schema), text(value)) else { return };
    let Ok(encoder) = AvroEncoder::compile(schema) else { return };
    let Ok(event) = crate::codec::json::parse(value) else { return };
    for reject_unknown in [true, false] {
        let mut bytes = Vec::new();
        if encoder.encode(&event, reject_unknown, &mut bytes).is_err() {
            continue;
        }
        let mut json = Vec::new();
        if let Err(error) = encoder.decode_to_json(&bytes, &mut json) {
            panic!("encoded {value} as {bytes:?}, which does not decode: {error}");
        }
        let text = std::str::from_utf8(&json).expect("decoded JSON is UTF-8");
        let decoded = crate::codec::json::parse(text).expect("decoded JSON parses");
        let mut again = Vec::new();
        encoder.encode(&decoded, true, &mut again).unwrap_or_else(|e| panic!("{text} does not encode again: {e}"));
        assert_eq!(again, bytes, "{value} → {text} encodes differently");
    }
}

/// Avro → JSON of arbitrary bytes by an arbitrary schema: refused or valid JSON.
pub fn avro_decode(data: &[u8]) {
    let (schema, bytes) = halves(data);
    let Some(encoder) = text(schema).and_then(|s| AvroEncoder::compile(s).ok()) else { return };
    let mut json = Vec::new();
    if encoder.decode_to_json(bytes, &mut json).is_ok()
        && let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&json)
    {
        panic!("decoded to invalid JSON ({error}): {}", String::from_utf8_lossy(&json));
    }
}

fn compat(schema_type: SchemaType, data: &[u8]) {
    let (a, b) = halves(data);
    let parse = |t: &[u8]| text(t).and_then(|t| Parsed::parse(schema_type, t, &[]).ok());
    let (Some(a), Some(b)) = (parse(a), parse(b)) else { return };
    let _ = pair(&a, &b);
    let _ = pair(&b, &a);
    let itself = pair(&a, &a);
    assert!(
        itself.iter().all(|i| i.kind == "COMPARISON_LIMIT_EXCEEDED"),
        "a schema must read its own data: {itself:?}"
    );
}

/// The Avro compatibility checker, both ways, and a schema against itself.
pub fn avro_compat(data: &[u8]) {
    compat(SchemaType::Avro, data);
}

/// The JSON Schema compatibility checker, both ways, and a schema against itself.
pub fn json_schema_compat(data: &[u8]) {
    compat(SchemaType::Json, data);
}

/// `.proto` compilation (protox) into a codec and into the compatibility checker's form.
pub fn protobuf_schema(data: &[u8]) {
    let Some(schema) = text(data) else { return };
    let _ = ProtobufCodec::compile(schema, &[]);
    let _ = Parsed::parse(SchemaType::Protobuf, schema, &[]);
}

/// JSON → Protobuf for an arbitrary schema and JSON, as the first message: the fast encoder
/// answers only what `prost-reflect` encodes, with the same message; what encodes decodes to
/// JSON that encodes to the same message again.
pub fn protobuf_encode(data: &[u8]) {
    use prost_reflect::DynamicMessage;
    let (schema, value) = halves(data);
    let (Some(schema), Some(value)) = (text(schema), text(value)) else { return };
    let Ok(codec) = ProtobufCodec::compile(schema, &[]) else { return };
    let Ok((descriptor, path)) = codec.message(None).cloned() else { return };
    let Ok(event) = crate::codec::json::parse(value) else { return };
    for reject_unknown in [true, false] {
        let mut bytes = Vec::new();
        let encoded = codec.encode(None, &event, value, reject_unknown, &mut bytes);
        let mut reference = Vec::new();
        let by_reference = codec.encode_reference(&descriptor, &path, value, reject_unknown, &mut reference);
        assert_eq!(
            encoded.is_ok(),
            by_reference.is_ok(),
            "{value}: {encoded:?} but the reference says {by_reference:?}"
        );
        if encoded.is_err() {
            continue;
        }
        let message = |bytes: &[u8]| {
            let (_, used) = crate::codec::protobuf::indexes::read(bytes).expect("indexes");
            DynamicMessage::decode(descriptor.clone(), &bytes[used..]).expect("what was encoded decodes")
        };
        assert_eq!(message(&bytes), message(&reference), "{value}: the fast encoder disagrees");
        let json = codec.decode_to_json(&bytes).unwrap_or_else(|e| panic!("{value} encoded, does not decode: {e}"));
        let text = std::str::from_utf8(&json).expect("decoded JSON is UTF-8");
        let mut again = Vec::new();
        codec
            .encode(None, &crate::codec::json::parse(text).expect("decoded JSON parses"), text, true, &mut again)
            .unwrap_or_else(|e| panic!("{value} → {text} does not encode again: {e:?}"));
        assert_eq!(message(&again), message(&bytes), "{value} → {text} is another message");
    }
}

/// Protobuf → JSON of arbitrary bytes (message indexes included) by an arbitrary schema:
/// refused or valid JSON.
pub fn protobuf_decode(data: &[u8]) {
    let (schema, bytes) = halves(data);
    let Some(codec) = text(schema).and_then(|s| ProtobufCodec::compile(s, &[]).ok()) else { return };
    if let Ok(json) = codec.decode_to_json(bytes)
        && let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&json)
    {
        panic!("decoded to invalid JSON ({error}): {}", String::from_utf8_lossy(&json));
    }
}

/// The Protobuf compatibility checker, both ways, and a schema against itself.
pub fn protobuf_compat(data: &[u8]) {
    compat(SchemaType::Protobuf, data);
}

/// Confluent framing: split, and what `start` frames splits back.
pub fn wire(data: &[u8]) {
    if let Ok((id, payload)) = crate::codec::wire::split(data) {
        let mut framed = crate::codec::wire::start(id, payload.len());
        framed.extend_from_slice(payload);
        assert_eq!(framed, data);
    }
}

/// The produce request body splitter.
pub fn body(data: &[u8]) {
    if let Ok(events) = crate::http::parse_events(data, 1000) {
        assert!(!events.is_empty() && events.len() <= 1000);
        assert!(events.iter().all(|e| e.get().starts_with('{')));
    }
    // `POST /v1/events`: the same body, each event naming its topic.
    if let Ok(events) = crate::http::parse_topic_events(data, 1000) {
        assert!(!events.is_empty() && events.len() <= 1000);
        assert!(events.iter().all(|e| e.value.get().starts_with('{')));
    }
    // The envelope form, on both endpoints: every record has an object value or is a tombstone.
    for named in [false, true] {
        let no_headers = axum::http::HeaderMap::new();
        if let Ok(records) = crate::http::parse_incoming(data, 1000, crate::http::Form::Envelope, named, &no_headers) {
            assert!(!records.is_empty() && records.len() <= 1000);
            for (topic, record) in &records {
                assert_eq!(topic.is_some(), named);
                assert!(record.value.as_deref().is_none_or(|v| v.starts_with(b"{")));
                assert!(record.partition.is_none_or(|p| p >= 0));
            }
        }
    }
    // Confluent REST Proxy bodies: v2 records in every embedded format, v3 streams.
    crate::http::fuzz_confluent_bodies(data);
    // A bytes route's NDJSON: every non-blank line a record, within the limit.
    let ndjson = {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/x-ndjson"));
        headers
    };
    if let Ok(records) = crate::http::parse_incoming(data, 1000, crate::http::Form::Lines, false, &ndjson) {
        assert!(!records.is_empty() && records.len() <= 1000);
        assert!(records.iter().all(|(_, r)| r.value.as_deref().is_some_and(|v| !v.contains(&b'\n'))));
    }
    // CloudEvents, one and batched: each has an id (its event-id) and object data.
    for form in [crate::http::Form::CloudEvent, crate::http::Form::CloudEventBatch] {
        if let Ok(events) = crate::http::parse_incoming(data, 1000, form, false, &axum::http::HeaderMap::new()) {
            for (_, event) in &events {
                assert!(event.event_id.as_deref().is_some_and(|id| !id.is_empty()));
                assert!(event.value.as_deref().is_some_and(|v| v.starts_with(b"{")));
            }
        }
    }
}

/// Configuration loading: `${VAR}` expansion, TOML, every section and the cross-checks.
pub fn config(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let _ = crate::config::load_str(text, |name| (name == "SET").then(|| "value".to_owned()));
}
