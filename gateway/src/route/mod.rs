//! Routes: what a topic's events are checked and encoded with, and where their key comes from.

use std::collections::HashMap;
use std::sync::Arc;

use crate::codec::json::{self, Json};

use crate::config::{Ack, Format, OnPluginError, SchemaVersion, TopicConfig, UnknownFields};
use crate::registry::VersionSpec;

/// A configured topic, ready for the produce path.
#[derive(Debug, Clone)]
pub struct Route {
    pub topic: String,
    pub format: Format,
    pub subject: String,
    pub version: VersionSpec,
    /// The Protobuf message events are read as (else the schema file's first).
    pub message: Option<String>,
    /// JSON pointer to the key field.
    pub key: Option<String>,
    pub ack: Ack,
    pub reject_unknown: bool,
    /// Plugin names, run in order on each batch.
    pub plugins: Vec<String>,
    pub on_plugin_error: OnPluginError,
    pub dead_letter_topic: Option<String>,
    /// A topic no route serves (a plugin's bad reroute target), kept only to be refused.
    pub unrouted: bool,
}

impl Route {
    /// A stand-in for a topic no route serves.
    pub fn unrouted(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            format: Format::Json,
            subject: String::new(),
            version: VersionSpec::Latest,
            message: None,
            key: None,
            ack: Ack::Wait,
            reject_unknown: true,
            plugins: Vec::new(),
            on_plugin_error: OnPluginError::Reject,
            dead_letter_topic: None,
            unrouted: true,
        }
    }
}

impl From<&TopicConfig> for Route {
    fn from(topic: &TopicConfig) -> Self {
        Self {
            topic: topic.name.clone(),
            format: topic.format,
            subject: topic.subject(),
            message: if topic.format == Format::Protobuf { topic.record.clone() } else { None },
            version: match topic.schema_version {
                SchemaVersion::Latest => VersionSpec::Latest,
                SchemaVersion::Pinned(n) => VersionSpec::Number(n),
            },
            key: topic.key.clone(),
            ack: topic.ack,
            reject_unknown: topic.unknown_fields == UnknownFields::Reject,
            plugins: topic.plugins.clone(),
            on_plugin_error: topic.on_plugin_error,
            dead_letter_topic: topic.dead_letter_topic.clone(),
            unrouted: false,
        }
    }
}

/// Routes by topic name.
pub type Routes = HashMap<String, Arc<Route>>;

pub fn routes(topics: &[TopicConfig]) -> Routes {
    topics.iter().map(|t| (t.name.clone(), Arc::new(Route::from(t)))).collect()
}

/// Why an event has no usable key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key field is missing")]
    Missing,
    #[error("the key field must be a string or a number, not {0}")]
    WrongType(&'static str),
}

/// The record key at `pointer`: a string as its UTF-8 bytes, a number as its JSON text.
///
/// # Examples
/// ```
/// use sluice::codec::json::parse;
/// use sluice::route::extract_key;
/// assert_eq!(extract_key(&parse(r#"{"order": {"id": "o-1"}}"#).unwrap(), "/order/id").unwrap(), b"o-1");
/// assert_eq!(extract_key(&parse(r#"{"n": 42}"#).unwrap(), "/n").unwrap(), b"42");
/// assert!(extract_key(&parse("{}").unwrap(), "/n").is_err());
/// ```
pub fn extract_key(event: &Json<'_>, pointer: &str) -> Result<Vec<u8>, KeyError> {
    match json::pointer(event, pointer) {
        None => Err(KeyError::Missing),
        Some(Json::Str(s)) => Ok(s.as_bytes().to_vec()),
        // serde_json's number text (the key bytes decide the partition; they must not change).
        Some(Json::Number(n)) => Ok(serde_json::Number::from(*n).to_string().into_bytes()),
        Some(other) => Err(KeyError::WrongType(json::kind(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_rfc_6901_pointers() {
        let event = json::parse(r#"{"a/b": {"~c": 7}, "list": ["x", "y"], "flag": true}"#).unwrap();
        assert_eq!(extract_key(&event, "/a~1b/~0c").unwrap(), b"7");
        assert_eq!(extract_key(&event, "/list/1").unwrap(), b"y");
        assert_eq!(extract_key(&event, "/flag"), Err(KeyError::WrongType("a boolean")));
        assert_eq!(extract_key(&event, "/nope"), Err(KeyError::Missing));
    }
}
