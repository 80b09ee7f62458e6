//! The parsed form of an event on the produce path.
//!
//! Events are parsed into `serde_json_borrow`'s DOM, which borrows strings from the request body
//! and keeps an object's members in a vector, instead of `serde_json::Value`, which copies every
//! string and builds a `BTreeMap` per object: ~0.6 µs instead of ~1.3 µs for the benchmark's
//! 280-byte event, on the path every Avro event takes (see BENCHMARKS.md). JSON Schema
//! validation, which needs a `serde_json::Value`, converts.
//!
//! A key that appears twice in an object means its last value, as `serde_json::Value` (and so
//! JSON Schema validation) reads it.

pub use serde_json_borrow::{ObjectAsVec as Object, Value as Json};

/// Parses one JSON text, borrowing its strings where they need no unescaping.
///
/// # Examples
/// ```
/// use sluice::codec::json::{Json, parse};
/// let event = parse(r#"{"id": "o-1", "n": 2}"#).unwrap();
/// assert!(matches!(event, Json::Object(_)));
/// assert!(parse("{").is_err());
/// ```
pub fn parse(text: &str) -> Result<Json<'_>, serde_json::Error> {
    serde_json::from_str(text)
}

/// The value of `key` in `object`: the last one if the key is repeated.
pub fn member<'v, 'a>(object: &'v Object<'a>, key: &str) -> Option<&'v Json<'a>> {
    object.as_vec().iter().rev().find(|(k, _)| **k == *key).map(|(_, value)| value)
}

/// The value an RFC 6901 JSON pointer names, if there is one.
///
/// # Examples
/// ```
/// use sluice::codec::json::{Json, parse, pointer};
/// let event = parse(r#"{"a/b": {"~c": [10, 20]}}"#).unwrap();
/// assert!(matches!(pointer(&event, "/a~1b/~0c/1"), Some(Json::Number(n)) if n.as_u64() == Some(20)));
/// assert!(pointer(&event, "/a~1b/~0c/01").is_none());
/// assert!(pointer(&event, "/missing").is_none());
/// ```
pub fn pointer<'v, 'a>(value: &'v Json<'a>, pointer: &str) -> Option<&'v Json<'a>> {
    if pointer.is_empty() {
        return Some(value);
    }
    pointer.strip_prefix('/')?.split('/').try_fold(value, |node, token| {
        let token = if token.contains('~') {
            std::borrow::Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
        } else {
            std::borrow::Cow::Borrowed(token)
        };
        match node {
            Json::Object(object) => member(object, &token),
            Json::Array(items) => array_index(&token).and_then(|i| items.get(i)),
            _ => None,
        }
    })
}

/// An array index token: decimal digits without a sign or leading zeros.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() > 1) {
        return None;
    }
    token.parse().ok()
}

/// What kind of JSON value this is, for error messages ("expected a string, got an array").
pub fn kind(value: &Json<'_>) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::Str(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_means_its_last_value_as_in_serde_json() {
        let text = r#"{"a": 1, "b": {"c": "x"}, "a": 2}"#;
        let ours = parse(text).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
        assert!(matches!(pointer(&ours, "/a"), Some(Json::Number(n)) if n.as_u64() == Some(2)));
        assert_eq!(theirs["a"], 2);
        assert_eq!(serde_json::Value::from(&ours), theirs, "converting for JSON Schema keeps the last value too");
    }

    #[test]
    fn escaped_keys_and_strings_are_read() {
        let event = parse(r#"{"a\"b": "line\nbreak"}"#).unwrap();
        assert!(matches!(pointer(&event, "/a\"b"), Some(Json::Str(s)) if s == "line\nbreak"));
    }
}
