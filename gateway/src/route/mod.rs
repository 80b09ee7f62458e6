//! Routes: what a topic's events are checked and encoded with, and where their key comes from.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

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
    /// The key schema's format and subject, when keys are encoded with one.
    pub key_schema: Option<(Format, String)>,
    /// JSON pointer to the field that is the record's `event-id`.
    pub event_id: Option<String>,
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
            key_schema: None,
            event_id: None,
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
            key_schema: topic.key_format.map(|format| (format, topic.key_subject())),
            event_id: topic.event_id.clone(),
            ack: topic.ack,
            reject_unknown: topic.unknown_fields == UnknownFields::Reject,
            plugins: topic.plugins.clone(),
            on_plugin_error: topic.on_plugin_error,
            dead_letter_topic: topic.dead_letter_topic.clone(),
            unrouted: false,
        }
    }
}

/// Routes by topic name: configured names, then topic patterns (`orders.*`) in config order.
#[derive(Debug, Default)]
pub struct Routes {
    exact: HashMap<String, Arc<Route>>,
    patterns: Vec<TopicConfig>,
    /// Routes made for topics a pattern matched, kept for the next request (at most
    /// [`MAX_MATCHED`]; past that a route is made per request, which costs a few clones).
    matched: RwLock<HashMap<String, Arc<Route>>>,
}

/// Pattern-matched topics whose routes are kept.
const MAX_MATCHED: usize = 10_000;

impl Routes {
    pub fn new(topics: &[TopicConfig]) -> Self {
        let (patterns, exact): (Vec<&TopicConfig>, Vec<&TopicConfig>) =
            topics.iter().partition(|t| is_pattern(&t.name));
        Self {
            exact: exact.into_iter().map(|t| (t.name.clone(), Arc::new(Route::from(t)))).collect(),
            patterns: patterns.into_iter().cloned().collect(),
            matched: RwLock::default(),
        }
    }

    /// The route of a topic: its own, or one made from the first pattern it matches (its subject
    /// follows the pattern's strategy with this topic's name).
    pub fn get(&self, topic: &str) -> Option<Arc<Route>> {
        if let Some(route) = self.exact.get(topic) {
            return Some(route.clone());
        }
        if self.patterns.is_empty() {
            return None;
        }
        if let Some(route) = self.matched.read().unwrap_or_else(PoisonError::into_inner).get(topic) {
            return Some(route.clone());
        }
        let pattern = self.patterns.iter().find(|p| matches(&p.name, topic))?;
        let route = Arc::new(Route::from(&TopicConfig { name: topic.to_owned(), ..pattern.clone() }));
        let mut matched = self.matched.write().unwrap_or_else(PoisonError::into_inner);
        if matched.len() < MAX_MATCHED {
            matched.insert(topic.to_owned(), route.clone());
        }
        Some(route)
    }

    /// Whether a topic has a route (its own or a pattern's).
    pub fn contains(&self, topic: &str) -> bool {
        self.exact.contains_key(topic) || self.patterns.iter().any(|p| matches(&p.name, topic))
    }

    /// Configured routes, patterns included.
    pub fn len(&self) -> usize {
        self.exact.len() + self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The topics named outright (not by pattern).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(String::as_str)
    }
}

/// Whether a route name is a topic pattern.
pub fn is_pattern(name: &str) -> bool {
    name.contains('*')
}

/// `*` matches one or more characters of a topic name; everything else matches itself.
///
/// # Examples
/// ```
/// use sluice::route::matches;
/// assert!(matches("orders.*", "orders.placed"));
/// assert!(matches("*.events.*", "shop.events.v2"));
/// assert!(!matches("orders.*", "orders."));
/// assert!(!matches("orders.*", "payments.placed"));
/// ```
pub fn matches(pattern: &str, topic: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = topic.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        // Each `*` takes at least one character; the last part must end the topic.
        if rest.is_empty() {
            return false;
        }
        if i + 1 == parts.len() {
            return rest.len() > part.len() && rest.ends_with(part);
        }
        match rest[1..].find(part) {
            Some(at) => rest = &rest[1 + at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
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
    fn patterns_match_whole_topic_names_with_stars_taking_one_or_more_characters() {
        for (pattern, topic, expected) in [
            ("orders.*", "orders.placed", true),
            ("orders.*", "orders.placed.v2", true),
            ("orders.*", "orders.", false),
            ("orders.*", "orders", false),
            ("orders.*", "xorders.placed", false),
            ("*.dlq", "orders.dlq", true),
            ("*.dlq", ".dlq", false),
            ("*.dlq", "orders.dlq.x", false),
            ("a*b*c", "axbyc", true),
            ("a*b*c", "abc", false),
            ("a*b*c", "axxbbyc", true),
            ("*", "anything", true),
        ] {
            assert_eq!(matches(pattern, topic), expected, "{pattern} ~ {topic}");
        }
    }

    #[test]
    fn a_topic_takes_its_own_route_before_a_pattern_and_the_first_pattern_it_matches() {
        let config = |name: &str, key: &str| TopicConfig {
            key: Some(key.into()),
            ..crate::dev::example_route(name, Format::Avro, "/id")
        };
        let routes = Routes::new(&[config("orders.*", "/a"), config("orders.special", "/b"), config("*.placed", "/c")]);
        assert_eq!(routes.get("orders.special").unwrap().key.as_deref(), Some("/b"));
        let matched = routes.get("orders.placed").unwrap();
        assert_eq!((matched.topic.as_str(), matched.key.as_deref()), ("orders.placed", Some("/a")));
        assert_eq!(matched.subject, "orders.placed-value", "the subject follows the strategy with the topic's name");
        assert_eq!(routes.get("payments.placed").unwrap().key.as_deref(), Some("/c"));
        assert!(routes.get("payments.confirmed").is_none());
        assert!(routes.contains("orders.x") && !routes.contains("orders"));
    }

    #[test]
    fn keys_follow_rfc_6901_pointers() {
        let event = json::parse(r#"{"a/b": {"~c": 7}, "list": ["x", "y"], "flag": true}"#).unwrap();
        assert_eq!(extract_key(&event, "/a~1b/~0c").unwrap(), b"7");
        assert_eq!(extract_key(&event, "/list/1").unwrap(), b"y");
        assert_eq!(extract_key(&event, "/flag"), Err(KeyError::WrongType("a boolean")));
        assert_eq!(extract_key(&event, "/nope"), Err(KeyError::Missing));
    }
}
