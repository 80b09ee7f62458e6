//! CloudEvents 1.0 produce requests, in the three HTTP content modes: structured
//! (`application/cloudevents+json`), batched (`application/cloudevents-batch+json`) and binary
//! (`ce-*` headers, the body is the data). Each event becomes a record as the CloudEvents Kafka
//! protocol binding's binary mode writes it: the value is the event's `data` (validated and
//! encoded by the route like any event), every attribute a `ce_<name>` header, `datacontenttype`
//! the `content-type` header, `partitionkey` the key; the `id` is also the record's `event-id`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};
use serde_json::value::RawValue;

use super::problem::Problem;
use crate::plugin::bindings::Header;
use crate::produce::{Incoming, Key};

pub const STRUCTURED: &str = "application/cloudevents+json";
pub const BATCH: &str = "application/cloudevents-batch+json";
/// The header that makes an `application/json` request a binary-mode CloudEvent.
pub const BINARY_MARKER: &str = "ce-specversion";

/// Attributes every event has (CloudEvents 1.0 "REQUIRED").
const REQUIRED: [&str; 4] = ["specversion", "id", "source", "type"];

fn invalid(detail: String, pointer: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-cloudevent", "Invalid CloudEvent", detail).with("pointer", pointer)
}

/// One structured-mode event (a JSON object), at `index` of a batch (`None`: the whole body).
pub fn structured(index: Option<usize>, raw: &RawValue) -> Result<Incoming<'_>, Problem> {
    let at = |name: &str| match index {
        Some(i) => format!("/{i}/{name}"),
        None => format!("/{name}"),
    };
    let fields: BTreeMap<Cow<'_, str>, &RawValue> = serde_json::from_str(raw.get())
        .map_err(|e| invalid(format!("a CloudEvent is a JSON object: {e}"), at("").trim_end_matches('/').to_owned()))?;
    let mut attributes = Vec::with_capacity(fields.len());
    let mut data = None;
    for (name, value) in &fields {
        match name.as_ref() {
            "data" => data = Some(*value),
            "data_base64" => {
                return Err(invalid(
                    "data_base64 is not taken: a route's events are JSON (send the data as \"data\")".into(),
                    at("data_base64"),
                ));
            }
            _ => {
                let text = attribute_text(value).ok_or_else(|| {
                    invalid(format!("attribute '{name}' must be a string, number or boolean"), at(name))
                })?;
                attributes.push((name.to_string(), text));
            }
        }
    }
    event(attributes, data, &|name| at(name))
}

/// A binary-mode event: attributes from the `ce-*` headers, `body` (one JSON object) the data.
pub fn binary<'a>(headers: &HeaderMap, body: &'a RawValue) -> Result<Incoming<'a>, Problem> {
    let mut attributes = Vec::new();
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else { continue };
        let text = value
            .to_str()
            .ok()
            .and_then(|v| percent_decode(v.trim()))
            .ok_or_else(|| invalid(format!("header {name} is not UTF-8 text"), format!("/{attribute}")))?;
        attributes.push((attribute.to_owned(), text));
    }
    event(attributes, Some(body), &|name| format!("/{name}"))
}

/// An event from its attributes and data, checked against CloudEvents 1.0.
fn event<'a>(
    attributes: Vec<(String, String)>,
    data: Option<&'a RawValue>,
    at: &dyn Fn(&str) -> String,
) -> Result<Incoming<'a>, Problem> {
    let get = |name: &str| attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    for name in REQUIRED {
        if get(name).is_none_or(str::is_empty) {
            return Err(invalid(format!("the required attribute '{name}' is missing or empty"), at(name)));
        }
    }
    if get("specversion") != Some("1.0") {
        return Err(invalid("only CloudEvents 1.0 is taken (specversion \"1.0\")".into(), at("specversion")));
    }
    if let Some(kind) = get("datacontenttype")
        && !is_json(kind)
    {
        return Err(invalid(
            format!("datacontenttype '{kind}' is not JSON; a route's events are JSON"),
            at("datacontenttype"),
        ));
    }
    for (name, _) in &attributes {
        if name.is_empty() || name.len() > 20 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            return Err(invalid(
                format!("attribute name '{name}': CloudEvents names are 1 to 20 lower-case letters and digits"),
                at(name),
            ));
        }
    }
    let value = match data {
        Some(raw) if raw.get().starts_with('{') => raw,
        Some(_) => return Err(invalid("the event's data must be a JSON object".into(), at("data"))),
        None => return Err(invalid("the event has no data".into(), at("data"))),
    };
    // A string key: encoded with the route's key schema when it has one, like any JSON key.
    let key = get("partitionkey").map(|k| {
        Key::Json(Cow::Owned(
            RawValue::from_string(serde_json::Value::from(k).to_string()).expect("a JSON string is JSON"),
        ))
    });
    let mut headers: Vec<Header> = Vec::with_capacity(attributes.len() + 1);
    headers.push(Header {
        key: "content-type".into(),
        value: get("datacontenttype").unwrap_or("application/json").as_bytes().to_vec(),
    });
    let event_id = get("id").map(str::to_owned);
    for (name, text) in attributes {
        if name != "datacontenttype" && name != "partitionkey" {
            headers.push(Header { key: format!("ce_{name}"), value: text.into_bytes() });
        }
    }
    let value = Some(Cow::Borrowed(value.get().as_bytes()));
    Ok(Incoming { value, key, headers, event_id, ..Incoming::default() })
}

/// `application/json`, or any `+json` type, with parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// A structured-mode attribute's value as header text.
fn attribute_text(value: &RawValue) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(value.get()).ok()? {
        serde_json::Value::String(text) => Some(text),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The HTTP binding percent-encodes some characters of header values.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).unwrap()
    }

    fn header<'h>(event: &'h Incoming<'_>, name: &str) -> Option<&'h str> {
        event.headers.iter().find(|h| h.key == name).map(|h| std::str::from_utf8(&h.value).unwrap())
    }

    #[test]
    fn a_structured_event_becomes_a_record_of_the_kafka_binding() {
        let body = raw(
            r#"{"specversion":"1.0","id":"e-1","source":"/shop","type":"order.placed","time":"2026-12-02T10:00:00Z",
               "subject":"o-1","partitionkey":"o-1","tenant":"acme","priority":3,"data":{"order_id":"o-1"}}"#,
        );
        let event = structured(None, body).unwrap();
        assert_eq!(event.value.as_deref(), Some(&br#"{"order_id":"o-1"}"#[..]));
        assert_eq!(event.event_id.as_deref(), Some("e-1"));
        assert!(matches!(&event.key, Some(Key::Json(k)) if k.get() == r#""o-1""#));
        for (name, value) in [
            ("ce_specversion", "1.0"),
            ("ce_id", "e-1"),
            ("ce_source", "/shop"),
            ("ce_type", "order.placed"),
            ("ce_time", "2026-12-02T10:00:00Z"),
            ("ce_subject", "o-1"),
            ("ce_tenant", "acme"),
            ("ce_priority", "3"),
            ("content-type", "application/json"),
        ] {
            assert_eq!(header(&event, name), Some(value), "{name}");
        }
        assert_eq!(header(&event, "ce_partitionkey"), None, "the key, not a header");
    }

    #[test]
    fn a_binary_event_takes_its_attributes_from_the_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "e-2"),
            ("ce-source", "/shop%20eu"),
            ("ce-type", "order.placed"),
            ("content-type", "application/json"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let event = binary(&headers, raw(r#"{"order_id":"o-2"}"#)).unwrap();
        assert_eq!(event.event_id.as_deref(), Some("e-2"));
        assert_eq!(header(&event, "ce_source"), Some("/shop eu"), "percent-decoded");
        assert_eq!(header(&event, "content-type"), Some("application/json"));
    }

    #[test]
    fn events_that_are_not_cloudevents_1_0_are_refused_with_where() {
        for (body, pointer) in [
            (r#"{"id":"e","source":"s","type":"t","data":{}}"#, "/specversion"),
            (r#"{"specversion":"0.3","id":"e","source":"s","type":"t","data":{}}"#, "/specversion"),
            (r#"{"specversion":"1.0","id":"","source":"s","type":"t","data":{}}"#, "/id"),
            (r#"{"specversion":"1.0","id":"e","source":"s","type":"t","data":[1]}"#, "/data"),
            (r#"{"specversion":"1.0","id":"e","source":"s","type":"t"}"#, "/data"),
            (r#"{"specversion":"1.0","id":"e","source":"s","type":"t","data_base64":"AA=="}"#, "/data_base64"),
            (
                r#"{"specversion":"1.0","id":"e","source":"s","type":"t","datacontenttype":"text/xml","data":{}}"#,
                "/datacontenttype",
            ),
            (r#"{"specversion":"1.0","id":"e","source":"s","type":"t","Bad-Name":"x","data":{}}"#, "/Bad-Name"),
            (r#"{"specversion":"1.0","id":"e","source":"s","type":"t","ext":{"a":1},"data":{}}"#, "/ext"),
        ] {
            let problem = structured(None, raw(body)).unwrap_err();
            assert_eq!(
                (problem.slug, problem.extra["pointer"].as_str()),
                ("invalid-cloudevent", Some(pointer)),
                "{body}"
            );
        }
        let problem = structured(Some(4), raw(r#"{"specversion":"1.0"}"#)).unwrap_err();
        assert_eq!(problem.extra["pointer"], "/4/id");
    }
}
