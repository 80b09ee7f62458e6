//! Codecs: turn a JSON event into the bytes of a Kafka record value for a route's format.
//!
//! - `avro`: [`avro::AvroEncoder`] encodes from the parsed JSON, framed in the Confluent wire
//!   format ([`wire`]);
//! - `json-schema`: [`json_schema::JsonSchemaValidator`] validates, then the JSON is framed;
//! - `protobuf`: [`protobuf::ProtobufCodec`] reads the JSON as the message (proto3's JSON
//!   mapping) and writes its message indexes and bytes, framed;
//! - `json` (schemaless): the JSON as it is, unframed.
//!
//! Events arrive parsed into [`json::Json`], a DOM that borrows from the request body.

pub mod avro;
pub mod json;
pub mod json_schema;
pub mod protobuf;
pub mod wire;

use serde::{Deserialize, Serialize};

use self::json::Json;
use crate::registry::types::ReferencedSchema;

/// The schema languages a registry may hold, by their Confluent names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl std::fmt::Display for SchemaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        })
    }
}

/// The message of a panic caught in a dependency's parser (apache-avro, prost-reflect), which
/// Sluice answers as an invalid schema.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// Why an event does not fit its schema: where (an RFC 6901 pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub pointer: String,
    pub message: String,
}

/// A schema compiled for encoding, shared by every request that uses its id.
#[derive(Debug)]
pub enum Codec {
    Avro(avro::AvroEncoder),
    JsonSchema(json_schema::JsonSchemaValidator),
    Protobuf(protobuf::ProtobufCodec),
}

impl Codec {
    /// Compiles a schema of the given type.
    pub fn compile(schema_type: SchemaType, schema: &str) -> Result<Self, String> {
        Self::compile_with_references(schema_type, schema, &[])
    }

    /// Compiles a schema that may use what `references` define (dependencies first): Avro named
    /// types, Protobuf imports.
    pub fn compile_with_references(
        schema_type: SchemaType,
        schema: &str,
        references: &[ReferencedSchema],
    ) -> Result<Self, String> {
        match (schema_type, references) {
            (SchemaType::Avro, []) => avro::AvroEncoder::compile(schema).map(Codec::Avro).map_err(|e| e.to_string()),
            (SchemaType::Avro, references) => {
                let texts: Vec<String> = references.iter().map(|r| r.schema.clone()).collect();
                avro::AvroEncoder::compile_with_references(schema, &texts).map(Codec::Avro).map_err(|e| e.to_string())
            }
            (SchemaType::Json, []) => json_schema::JsonSchemaValidator::compile(schema).map(Codec::JsonSchema),
            (SchemaType::Json, _) => Err("schema references are not supported for JSON Schemas".into()),
            (SchemaType::Protobuf, references) => {
                protobuf::ProtobufCodec::compile(schema, references).map(Codec::Protobuf)
            }
        }
    }

    /// The schema type this codec was compiled from.
    pub fn schema_type(&self) -> SchemaType {
        match self {
            Codec::Avro(_) => SchemaType::Avro,
            Codec::JsonSchema(_) => SchemaType::Json,
            Codec::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// Validates and encodes one event into a Confluent-framed record value. `raw` is the
    /// event's JSON text as received and `event` its parsed form; JSON Schema records carry
    /// `raw` unchanged. A bare `bytes` schema's value follows the header raw, without Avro's
    /// length prefix, as Confluent's serializers write it. `message` names the Protobuf message
    /// (else the file's first); other formats ignore it.
    pub fn encode(
        &self,
        schema_id: u32,
        event: &Json<'_>,
        raw: &str,
        reject_unknown: bool,
        message: Option<&str>,
    ) -> Result<Vec<u8>, ValueError> {
        match self {
            Codec::Avro(encoder) => {
                let mut out = wire::start(schema_id, 64);
                encoder
                    .encode(event, reject_unknown, &mut out)
                    .map_err(|e| ValueError { pointer: e.pointer(), message: e.message().to_owned() })?;
                if encoder.is_bytes() {
                    let prefix = avro::long_len(&out[wire::HEADER_LEN..]);
                    out.drain(wire::HEADER_LEN..wire::HEADER_LEN + prefix);
                }
                Ok(out)
            }
            Codec::JsonSchema(validator) => {
                validator.validate(&serde_json::Value::from(event))?;
                let mut out = wire::start(schema_id, raw.len());
                out.extend_from_slice(raw.as_bytes());
                Ok(out)
            }
            Codec::Protobuf(codec) => {
                let mut out = wire::start(schema_id, raw.len());
                codec.encode(message, event, raw, reject_unknown, &mut out)?;
                Ok(out)
            }
        }
    }
}

impl Codec {
    /// A record value's payload (after the wire header) as JSON text: Avro decoded by this
    /// writer schema (a bare `bytes` schema's payload is the raw bytes), JSON Schema records
    /// checked to be JSON and passed on as they are.
    pub fn decode_to_json(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Codec::Avro(avro) => {
                let mut json = Vec::with_capacity(payload.len() * 2);
                let result = if avro.is_bytes() {
                    let mut datum = Vec::with_capacity(payload.len() + 10);
                    avro::write_long(&mut datum, i64::try_from(payload.len()).unwrap_or(i64::MAX));
                    datum.extend_from_slice(payload);
                    avro.decode_to_json(&datum, &mut json)
                } else {
                    avro.decode_to_json(payload, &mut json)
                };
                result.map(|()| json).map_err(|e| e.to_string())
            }
            Codec::JsonSchema(_) => {
                serde_json::from_slice::<serde::de::IgnoredAny>(payload).map_err(|e| format!("not JSON: {e}"))?;
                Ok(payload.to_vec())
            }
            Codec::Protobuf(codec) => codec.decode_to_json(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn frames_avro_and_json_schema_payloads() {
        let avro =
            Codec::compile(SchemaType::Avro, r#"{"type":"record","name":"A","fields":[{"name":"n","type":"int"}]}"#)
                .unwrap();
        assert_eq!(avro.encode(9, &Json::from(&json!({"n": -1})), "", true, None).unwrap(), [0, 0, 0, 0, 9, 1]);
        let json = Codec::compile(SchemaType::Json, r#"{"type":"object"}"#).unwrap();
        let raw = r#"{"b": 1, "a": 2}"#;
        let framed = json.encode(300, &json::parse(raw).unwrap(), raw, true, None).unwrap();
        assert_eq!(framed[..5], [0, 0, 0, 1, 44]);
        assert_eq!(&framed[5..], raw.as_bytes(), "the event's JSON is carried as sent");
    }

    #[test]
    fn a_bare_bytes_value_is_framed_raw_as_confluents_serializers_write_it() {
        for schema in [r#""bytes""#, r#"{"type":"bytes","logicalType":"decimal","precision":4,"scale":1}"#] {
            let codec = Codec::compile(SchemaType::Avro, schema).unwrap();
            let value = if schema.contains("decimal") { json!("-1.5") } else { json!("\u{1}\u{ff}") };
            let framed = codec.encode(3, &Json::from(&value), "", true, None).unwrap();
            let raw: &[u8] = if schema.contains("decimal") { &[0xf1] } else { &[1, 0xff] };
            assert_eq!(&framed[5..], raw, "{schema}: no length prefix");
            let json: serde_json::Value = serde_json::from_slice(&codec.decode_to_json(&framed[5..]).unwrap()).unwrap();
            assert_eq!(json, value);
        }
        // Other schemas keep Avro's encoding.
        let codec = Codec::compile(SchemaType::Avro, r#""string""#).unwrap();
        assert_eq!(codec.encode(3, &Json::from(&json!("a")), "", true, None).unwrap()[5..], [2, b'a']);
    }
}
