//! Codecs: turn a JSON event into the bytes of a Kafka record value for a route's format.
//!
//! - `avro`: [`avro::AvroEncoder`] encodes from the parsed JSON, framed in the Confluent wire
//!   format ([`wire`]);
//! - `json-schema`: [`json_schema::JsonSchemaValidator`] validates, then the JSON is framed;
//! - `json` (schemaless): the JSON as it is, unframed.
//!
//! Events arrive parsed into [`json::Json`], a DOM that borrows from the request body.

pub mod avro;
pub mod json;
pub mod json_schema;
pub mod wire;

use serde::{Deserialize, Serialize};

use self::json::Json;

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
}

impl Codec {
    /// Compiles a schema of the given type.
    pub fn compile(schema_type: SchemaType, schema: &str) -> Result<Self, String> {
        match schema_type {
            SchemaType::Avro => avro::AvroEncoder::compile(schema).map(Codec::Avro).map_err(|e| e.to_string()),
            SchemaType::Json => json_schema::JsonSchemaValidator::compile(schema).map(Codec::JsonSchema),
            SchemaType::Protobuf => Err("Protobuf schemas are not supported".into()),
        }
    }

    /// Compiles a schema whose Avro named types may come from `references` (schema texts,
    /// dependencies first).
    pub fn compile_with_references(
        schema_type: SchemaType,
        schema: &str,
        references: &[String],
    ) -> Result<Self, String> {
        match (schema_type, references) {
            (_, []) => Self::compile(schema_type, schema),
            (SchemaType::Avro, references) => avro::AvroEncoder::compile_with_references(schema, references)
                .map(Codec::Avro)
                .map_err(|e| e.to_string()),
            _ => Err("schema references are supported for Avro schemas only".into()),
        }
    }

    /// The schema type this codec was compiled from.
    pub fn schema_type(&self) -> SchemaType {
        match self {
            Codec::Avro(_) => SchemaType::Avro,
            Codec::JsonSchema(_) => SchemaType::Json,
        }
    }

    /// Validates and encodes one event into a Confluent-framed record value. `raw` is the
    /// event's JSON text as received and `event` its parsed form; JSON Schema records carry
    /// `raw` unchanged.
    pub fn encode(
        &self,
        schema_id: u32,
        event: &Json<'_>,
        raw: &str,
        reject_unknown: bool,
    ) -> Result<Vec<u8>, ValueError> {
        match self {
            Codec::Avro(encoder) => {
                let mut out = wire::start(schema_id, 64);
                encoder
                    .encode(event, reject_unknown, &mut out)
                    .map_err(|e| ValueError { pointer: e.pointer(), message: e.message().to_owned() })?;
                Ok(out)
            }
            Codec::JsonSchema(validator) => {
                validator.validate(&serde_json::Value::from(event))?;
                let mut out = wire::start(schema_id, raw.len());
                out.extend_from_slice(raw.as_bytes());
                Ok(out)
            }
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
        assert_eq!(avro.encode(9, &Json::from(&json!({"n": -1})), "", true).unwrap(), [0, 0, 0, 0, 9, 1]);
        let json = Codec::compile(SchemaType::Json, r#"{"type":"object"}"#).unwrap();
        let raw = r#"{"b": 1, "a": 2}"#;
        let framed = json.encode(300, &json::parse(raw).unwrap(), raw, true).unwrap();
        assert_eq!(framed[..5], [0, 0, 0, 1, 44]);
        assert_eq!(&framed[5..], raw.as_bytes(), "the event's JSON is carried as sent");
        assert!(Codec::compile(SchemaType::Protobuf, "syntax = \"proto3\";").is_err());
    }
}
