//! What v2 and v3 share: embedded formats, keys and values as Confluent's clients send them,
//! and the schemas a request chooses.

use std::borrow::Cow;

use axum::http::StatusCode;
use serde_json::value::RawValue;

use super::ConfluentError;
use crate::codec::SchemaType;
use crate::config::Format;
use crate::produce::Key;
use crate::registry::{RegistryError, Resolved, Schema, SchemaCache, VersionSpec};
use crate::route::Route;

/// Every route format, for tests and fuzzing.
pub const ROUTE_FORMATS: [Format; 5] =
    [Format::Avro, Format::JsonSchema, Format::Protobuf, Format::Json, Format::Bytes];

/// How a key or value is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedded {
    /// Base64 text of the bytes.
    Binary,
    /// Any JSON, written as its JSON text (Confluent's `KafkaJsonSerializer`).
    Json,
    /// A JSON string, written as its UTF-8 text (v3 only).
    String,
    Avro,
    JsonSchema,
    Protobuf,
}

impl Embedded {
    /// v3's `type` names.
    pub fn parse_v3(name: &str) -> Option<Self> {
        Some(match name {
            "BINARY" => Embedded::Binary,
            "JSON" => Embedded::Json,
            "STRING" => Embedded::String,
            "AVRO" => Embedded::Avro,
            "JSONSCHEMA" => Embedded::JsonSchema,
            "PROTOBUF" => Embedded::Protobuf,
            _ => return None,
        })
    }

    pub fn v3_name(self) -> &'static str {
        match self {
            Embedded::Binary => "BINARY",
            Embedded::Json => "JSON",
            Embedded::String => "STRING",
            Embedded::Avro => "AVRO",
            Embedded::JsonSchema => "JSONSCHEMA",
            Embedded::Protobuf => "PROTOBUF",
        }
    }

    /// v2's media type names (`application/vnd.kafka.{name}.v2+json`).
    pub fn parse_v2(name: &str) -> Option<Self> {
        Some(match name {
            "binary" => Embedded::Binary,
            "json" => Embedded::Json,
            "avro" => Embedded::Avro,
            "jsonschema" => Embedded::JsonSchema,
            "protobuf" => Embedded::Protobuf,
            _ => return None,
        })
    }

    pub fn schema_type(self) -> Option<SchemaType> {
        match self {
            Embedded::Avro => Some(SchemaType::Avro),
            Embedded::JsonSchema => Some(SchemaType::Json),
            Embedded::Protobuf => Some(SchemaType::Protobuf),
            Embedded::Binary | Embedded::Json | Embedded::String => None,
        }
    }

    /// The embedded format of a route's values when a request names none.
    pub fn of_route(format: Format) -> Self {
        match format {
            Format::Avro => Embedded::Avro,
            Format::JsonSchema => Embedded::JsonSchema,
            Format::Protobuf => Embedded::Protobuf,
            Format::Json => Embedded::Json,
            Format::Bytes => Embedded::Binary,
        }
    }

    /// Whether values given this way may go to the route. Sluice's routes say how their
    /// topics' values are encoded (Confluent's proxy lets each request decide): binary and
    /// string values go to `bytes` routes, JSON to `json` routes, each schema format to routes
    /// of that format; otherwise a topic's records would not all read the same way.
    pub fn suits(self, route: &Route) -> bool {
        matches!(
            (self, route.format),
            (Embedded::Binary | Embedded::String, Format::Bytes)
                | (Embedded::Json, Format::Json)
                | (Embedded::Avro, Format::Avro)
                | (Embedded::JsonSchema, Format::JsonSchema)
                | (Embedded::Protobuf, Format::Protobuf)
        )
    }

    /// A value as written (`None`: null, a tombstone). JSON values stay borrowed text.
    pub fn value(self, raw: Option<&RawValue>) -> Result<Option<Cow<'_, [u8]>>, String> {
        let Some(raw) = raw.filter(|r| r.get() != "null") else { return Ok(None) };
        Ok(Some(match self {
            Embedded::Binary => Cow::Owned(base64(raw)?),
            Embedded::String => Cow::Owned(string(raw)?.into_bytes()),
            _ => Cow::Borrowed(raw.get().as_bytes()),
        }))
    }

    /// A key as given (`None`: no key). Schema formats encode it with the key schema.
    pub fn key(self, raw: Option<&RawValue>) -> Result<Option<Key<'_>>, String> {
        let Some(raw) = raw.filter(|r| r.get() != "null") else { return Ok(None) };
        Ok(Some(match self {
            Embedded::Binary => Key::Bytes(base64(raw)?),
            Embedded::String => Key::Bytes(string(raw)?.into_bytes()),
            Embedded::Json => Key::Bytes(raw.get().as_bytes().to_vec()),
            Embedded::Avro | Embedded::JsonSchema | Embedded::Protobuf => Key::Json(Cow::Borrowed(raw)),
        }))
    }
}

fn base64(raw: &RawValue) -> Result<Vec<u8>, String> {
    let text: String =
        serde_json::from_str(raw.get()).map_err(|_| format!("data={} is not a base64 string", raw.get()))?;
    crate::http::envelope::decode_base64(&text)
        .map_err(|e| format!("data={} is not a valid base64 string: {e}", raw.get()))
}

fn string(raw: &RawValue) -> Result<String, String> {
    serde_json::from_str(raw.get()).map_err(|_| format!("data={} is not a JSON string", raw.get()))
}

/// A schema a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChoice {
    /// Schema text: registered under the subject (or found there).
    Text(String),
    /// A schema id, which must be one of the subject's versions.
    Id(u32),
    /// A version of the subject.
    Version(u32),
}

/// The schema a request chose for a subject, compiled.
pub async fn resolve(
    schemas: &SchemaCache,
    subject: &str,
    schema_type: SchemaType,
    choice: &SchemaChoice,
) -> Result<Resolved, ConfluentError> {
    let resolved = match choice {
        SchemaChoice::Text(text) => {
            let schema = Schema { schema: text.clone(), schema_type, references: Vec::new() };
            schemas.chosen_by_text(subject, schema).await
        }
        SchemaChoice::Id(id) => schemas.chosen_by_id(subject, *id).await,
        SchemaChoice::Version(version) => schemas.resolve(subject, VersionSpec::Number(*version)).await,
    }
    .map_err(|error| schema_error(subject, choice, &error))?;
    let actual = resolved.codec.schema_type();
    if actual != schema_type {
        return Err(ConfluentError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42205,
            format!("Invalid schema: schema {} is {actual}, but the request's format is {schema_type}", resolved.id),
        ));
    }
    Ok(resolved)
}

fn schema_error(subject: &str, choice: &SchemaChoice, error: &RegistryError) -> ConfluentError {
    match error {
        RegistryError::Unavailable(_) => {
            let mut error = ConfluentError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                50003,
                format!("the schema registry is unavailable: {error}"),
            );
            error.retry_after_s = Some(5);
            error
        }
        RegistryError::SchemaNotFound(_)
        | RegistryError::SubjectNotFound(_)
        | RegistryError::VersionNotFound { .. } => {
            let named = match choice {
                SchemaChoice::Id(id) => format!("schema id {id} is not a version of subject '{subject}'"),
                SchemaChoice::Version(version) => format!("subject '{subject}' has no version {version}"),
                SchemaChoice::Text(_) => error.to_string(),
            };
            ConfluentError::new(StatusCode::UNPROCESSABLE_ENTITY, 42207, format!("Error serializing message. {named}"))
        }
        other => ConfluentError::new(StatusCode::UNPROCESSABLE_ENTITY, 42205, format!("Invalid schema: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn values_are_written_as_their_format_says() {
        let value = |format: Embedded, text| format.value(Some(raw(text))).map(|v| v.map(Cow::into_owned));
        assert_eq!(value(Embedded::Binary, r#""Y29uZmx1ZW50""#), Ok(Some(b"confluent".to_vec())));
        assert_eq!(value(Embedded::String, r#""My message""#), Ok(Some(b"My message".to_vec())));
        assert_eq!(value(Embedded::Json, r#"{"foo":"bar"}"#), Ok(Some(br#"{"foo":"bar"}"#.to_vec())));
        assert_eq!(value(Embedded::Json, "53.5"), Ok(Some(b"53.5".to_vec())));
        assert_eq!(value(Embedded::Avro, "null"), Ok(None), "null is a tombstone");
        assert!(value(Embedded::Binary, "1").unwrap_err().contains("not a base64 string"));
        assert!(value(Embedded::Binary, r#""*""#).unwrap_err().contains("not a valid base64"));
        assert!(value(Embedded::String, "{}").is_err());
    }

    #[test]
    fn json_keys_are_json_text_and_schema_keys_are_encoded_later() {
        let key = |format: Embedded, text| format.key(Some(raw(text))).unwrap();
        assert!(matches!(key(Embedded::Json, r#""somekey""#), Some(Key::Bytes(b)) if b == br#""somekey""#));
        assert!(matches!(key(Embedded::Binary, r#""a2V5""#), Some(Key::Bytes(b)) if b == b"key"));
        assert!(matches!(key(Embedded::Avro, "1"), Some(Key::Json(k)) if k.get() == "1"));
        assert!(Embedded::Json.key(None).unwrap().is_none());
    }

    #[test]
    fn a_topic_takes_the_embedded_format_of_its_route() {
        let mut route = Route::unrouted("t");
        route.unrouted = false;
        for (format, takes) in [
            (Format::Bytes, [Embedded::Binary, Embedded::String].as_slice()),
            (Format::Json, &[Embedded::Json]),
            (Format::Avro, &[Embedded::Avro]),
            (Format::JsonSchema, &[Embedded::JsonSchema]),
            (Format::Protobuf, &[Embedded::Protobuf]),
        ] {
            route.format = format;
            for embedded in [
                Embedded::Binary,
                Embedded::Json,
                Embedded::String,
                Embedded::Avro,
                Embedded::JsonSchema,
                Embedded::Protobuf,
            ] {
                assert_eq!(embedded.suits(&route), takes.contains(&embedded), "{embedded:?} to {format:?}");
            }
            assert!(Embedded::of_route(format).suits(&route));
        }
    }
}
