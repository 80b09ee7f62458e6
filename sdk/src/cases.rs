//! Behaviour cases shared by the Rust, TypeScript and Python versions of a plugin
//! (`cases.json` beside the plugin): each SDK runs them through its own test double, and the
//! gateway's tests run them through the plugin host against every built component. Decisions
//! are compared in the JSON form `sluice plugin test` prints.

use serde_json::{Map, Value, json};

use crate::testing::{counters, reset, set_config};
use crate::{Action, Changes, Decision, Delivery, Event, Failure, Header, Plugin};

fn json_or_text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn changes_json(out: &mut Map<String, Value>, changes: &Changes) {
    if let Some(value) = &changes.value {
        out.insert("value".into(), json_or_text(value));
    }
    if let Some(key) = &changes.key {
        out.insert("key".into(), json!(String::from_utf8_lossy(key)));
    }
    if let Some(headers) = &changes.headers {
        let headers =
            headers.iter().map(|h| (h.key.clone(), json!(String::from_utf8_lossy(&h.value)))).collect::<Map<_, _>>();
        out.insert("headers".into(), Value::Object(headers));
    }
}

fn tagged(field: &str, name: &str) -> Map<String, Value> {
    Map::from_iter([(field.to_owned(), json!(name))])
}

fn with_reason(field: &str, name: &str, reason: &str) -> Value {
    let mut out = tagged(field, name);
    out.insert("reason".into(), json!(reason));
    Value::Object(out)
}

/// A decision as `sluice plugin test` prints it: `{"action": "drop", "reason": …}`,
/// `{"delivery": "deliver"}`, `{"decision": "retry-after", "ms": 200}`.
pub trait DecisionJson {
    fn to_json(&self) -> Value;
}

impl DecisionJson for Action {
    fn to_json(&self) -> Value {
        match self {
            Self::Accept => Value::Object(tagged("action", "accept")),
            Self::Modify(changes) => {
                let mut out = tagged("action", "modify");
                changes_json(&mut out, changes);
                Value::Object(out)
            }
            Self::Drop(reason) => with_reason("action", "drop", reason),
            Self::Reject(reason) => with_reason("action", "reject", reason),
            Self::DeadLetter(reason) => with_reason("action", "dead-letter", reason),
            Self::Reroute { topic, changes } => {
                let mut out = tagged("action", "reroute");
                out.insert("topic".into(), json!(topic));
                if let Some(changes) = changes {
                    changes_json(&mut out, changes);
                }
                Value::Object(out)
            }
            Self::FanOut(events) => json!({
                "action": "fan-out",
                "events": events.iter().map(|e| json!({"topic": e.topic, "value": json_or_text(&e.value)})).collect::<Vec<_>>(),
            }),
        }
    }
}

impl DecisionJson for Delivery {
    fn to_json(&self) -> Value {
        match self {
            Self::Deliver => Value::Object(tagged("delivery", "deliver")),
            Self::Modify(changes) => {
                let mut out = tagged("delivery", "modify");
                changes_json(&mut out, changes);
                Value::Object(out)
            }
            Self::Skip(reason) => with_reason("delivery", "skip", reason),
            Self::DeadLetter(reason) => with_reason("delivery", "dead-letter", reason),
        }
    }
}

impl DecisionJson for Decision {
    fn to_json(&self) -> Value {
        match self {
            Self::RetryAfter(ms) => json!({"decision": "retry-after", "ms": ms}),
            Self::DeadLetter(reason) => with_reason("decision", "dead-letter", reason),
            Self::Drop(reason) => with_reason("decision", "drop", reason),
        }
    }
}

/// A decision of any hook in its JSON form.
pub fn decision_json(decision: &impl DecisionJson) -> Value {
    decision.to_json()
}

fn event(spec: &Value) -> Event {
    let value = spec.get("value").cloned().unwrap_or_else(|| json!({}));
    Event {
        topic: spec["topic"].as_str().unwrap_or("events").to_owned(),
        key: spec["key"].as_str().map(|k| k.as_bytes().to_vec()),
        value: value.to_string().into_bytes(),
        headers: spec["headers"]
            .as_object()
            .map(|headers| {
                headers
                    .iter()
                    .map(|(k, v)| Header { key: k.clone(), value: v.as_str().unwrap_or_default().as_bytes().to_vec() })
                    .collect()
            })
            .unwrap_or_default(),
        timestamp_ms: spec["timestamp_ms"].as_i64().unwrap_or(0),
    }
}

/// Runs every case of a `cases.json` text against plugin `P` with a fresh test double each,
/// and panics with the case's name on the first that decides otherwise than expected (or does
/// not add the counters it lists).
///
/// # Panics
/// On a case that fails, or a malformed cases file.
pub fn check_cases<P: Plugin>(cases_json: &str) {
    let file: Value = serde_json::from_str(cases_json).expect("cases.json is JSON");
    let cases = file["cases"].as_array().expect("cases.json has a `cases` array");
    for case in cases {
        let name = case["name"].as_str().unwrap_or("unnamed case");
        reset();
        for (key, value) in case["config"].as_object().into_iter().flatten() {
            set_config(key, value.as_str().expect("config values are strings"));
        }
        let events = || case["events"].as_array().expect("events").iter().map(event).collect::<Vec<_>>();
        let got: Vec<Value> = match case["hook"].as_str() {
            Some("produce") => P::on_produce(events()).iter().map(decision_json).collect(),
            Some("consume") => P::on_consume(events()).iter().map(decision_json).collect(),
            Some("failure") => {
                let spec = &case["failure"];
                let failure = Failure {
                    event: event(&spec["event"]),
                    attempt: u32::try_from(spec["attempt"].as_u64().expect("attempt")).expect("attempt fits u32"),
                    status: spec["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
                    error: spec["error"].as_str().unwrap_or_default().to_owned(),
                };
                vec![decision_json(&P::on_failure(&failure))]
            }
            other => panic!("{name}: unknown hook {other:?}"),
        };
        assert_eq!(Value::Array(got), case["expect"], "{name}");
        let added = counters();
        for (counter, value) in case["counters"].as_object().into_iter().flatten() {
            assert_eq!(added.get(counter).copied(), value.as_u64(), "{name}: counter {counter}");
        }
    }
}
