//! What a request says about each event: its value, and (in the envelope form) its key,
//! headers, partition and event id; and the `event-id` every record carries.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::plugin::bindings::Header;

/// The header every produced record carries: the event's id, for consumers that deduplicate.
pub const EVENT_ID: &str = "event-id";

/// One event of a request.
#[derive(Debug, Clone, Default)]
pub struct Incoming<'a> {
    /// The event, or `None` for a tombstone: a record without a value, which deletes its key
    /// from a compacted topic. JSON text (checked by the caller) except on `bytes` routes, whose
    /// values are any bytes, written as they are.
    pub value: Option<Cow<'a, [u8]>>,
    /// The key as given. Without it the key comes from the route's `key` pointer.
    pub key: Option<Key<'a>>,
    /// Headers to write besides the gateway's own.
    pub headers: Vec<Header>,
    /// The partition to write to; without it the key decides (murmur2), as Java clients do.
    pub partition: Option<i32>,
    /// The event's id; without it the route's `event_id` pointer, else a new UUIDv7.
    pub event_id: Option<String>,
    /// The record's timestamp (ms since the epoch); without it, the time it is sent.
    pub timestamp_ms: Option<i64>,
}

/// A key a request gave.
#[derive(Debug, Clone)]
pub enum Key<'a> {
    /// JSON: a string (written as its UTF-8 text), or any JSON encoded with the key schema.
    Json(Cow<'a, RawValue>),
    /// The record's key bytes, written as they are (a binary or JSON-serialized key of the
    /// Confluent REST API).
    Bytes(Vec<u8>),
}

impl Key<'_> {
    /// The same key, owning its bytes.
    pub fn into_owned(self) -> Key<'static> {
        match self {
            Key::Json(raw) => Key::Json(Cow::Owned(raw.into_owned())),
            Key::Bytes(bytes) => Key::Bytes(bytes),
        }
    }
}

impl<'a> Incoming<'a> {
    /// A plain event: its value (JSON) only.
    pub fn value(value: &'a RawValue) -> Self {
        Self { value: Some(Cow::Borrowed(value.get().as_bytes())), ..Self::default() }
    }

    /// A record of a `bytes` route: its value as it is.
    pub fn bytes(value: &'a [u8]) -> Self {
        Self { value: Some(Cow::Borrowed(value)), ..Self::default() }
    }
}

/// A new event id: a UUIDv7 (time-ordered, so ids made close together sort together).
///
/// # Examples
/// ```
/// let id = sluice::produce::new_event_id();
/// assert_eq!((id.len(), &id[14..15]), (36, "7"));
/// ```
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// The `event-id` a record's headers carry, if any.
pub fn event_id_of(headers: &[Header]) -> Option<&str> {
    headers.iter().rev().find(|h| h.key == EVENT_ID).and_then(|h| std::str::from_utf8(&h.value).ok())
}

/// Sets the record's `event-id` (replacing any it has).
pub fn set_event_id(headers: &mut Vec<Header>, id: &str) {
    headers.retain(|h| h.key != EVENT_ID);
    headers.push(Header { key: EVENT_ID.to_owned(), value: id.as_bytes().to_vec() });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_distinct_version_7_uuids_in_time_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_event_id()).collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 7, "{id}");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "made in order, they sort in order");
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }

    #[test]
    fn one_event_id_header_per_record() {
        let mut headers = vec![Header { key: "a".into(), value: b"1".to_vec() }];
        assert_eq!(event_id_of(&headers), None);
        set_event_id(&mut headers, "e-1");
        set_event_id(&mut headers, "e-2");
        assert_eq!(event_id_of(&headers), Some("e-2"));
        assert_eq!(headers.iter().filter(|h| h.key == EVENT_ID).count(), 1);
    }
}
