//! `sluice plugin test FILE.wasm --input EVENTS`: runs a built component over sample events
//! through the gateway's plugin host and prints each decision as a JSON line.

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::plugin::Grants;
use crate::plugin::bindings::{Action, Changes, Decision, Delivery, Event, Header};

/// Which hook `plugin test` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Hook {
    Produce,
    Consume,
}

/// Runs a component over the events of an NDJSON file (one event's JSON per line) and
/// returns one JSON line per decision.
pub fn run(wasm: &Path, input: &Path, topic: &str, hook: Hook, config: &[(String, String)]) -> Result<String, String> {
    let bytes = std::fs::read(wasm).map_err(|e| format!("cannot read {}: {e}", wasm.display()))?;
    let host = super::host()?;
    let grants = Grants { config: config.iter().cloned().collect(), ..Grants::default() };
    let plugin = host.load("test", &bytes, grants)?;
    let file = std::fs::File::open(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut events = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", input.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .map_err(|e| format!("{} line {}: not JSON: {e}", input.display(), number + 1))?;
        events.push(Event {
            topic: topic.to_owned(),
            key: None,
            value: value.to_string().into_bytes(),
            headers: Vec::new(),
            timestamp_ms: i64::try_from(now).unwrap_or(i64::MAX),
        });
    }
    let lines: Vec<Value> = match hook {
        Hook::Produce => plugin.on_produce(&events).map_err(|e| e.to_string())?.iter().map(action_json).collect(),
        Hook::Consume => plugin.on_consume(&events).map_err(|e| e.to_string())?.iter().map(delivery_json).collect(),
    };
    let mut out = String::new();
    for (index, mut line) in lines.into_iter().enumerate() {
        line["index"] = json!(index);
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

fn json_or_text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn headers_json(headers: &[Header]) -> Value {
    headers.iter().map(|h| (h.key.clone(), Value::String(String::from_utf8_lossy(&h.value).into_owned()))).collect()
}

fn changes_json(out: &mut Value, changes: &Changes) {
    if let Some(value) = &changes.value {
        out["value"] = json_or_text(value);
    }
    if let Some(key) = &changes.key {
        out["key"] = json!(String::from_utf8_lossy(key));
    }
    if let Some(headers) = &changes.headers {
        out["headers"] = headers_json(headers);
    }
}

/// A produce decision as `sluice plugin test` prints it (also the form of `cases.json`).
pub fn action_json(action: &Action) -> Value {
    match action {
        Action::Accept => json!({"action": "accept"}),
        Action::Modify(changes) => {
            let mut out = json!({"action": "modify"});
            changes_json(&mut out, changes);
            out
        }
        Action::Drop(reason) => json!({"action": "drop", "reason": reason}),
        Action::Reject(reason) => json!({"action": "reject", "reason": reason}),
        Action::DeadLetter(reason) => json!({"action": "dead-letter", "reason": reason}),
        Action::Reroute(to) => {
            let mut out = json!({"action": "reroute", "topic": to.topic});
            if let Some(changes) = &to.changes {
                changes_json(&mut out, changes);
            }
            out
        }
        Action::FanOut(events) => json!({
            "action": "fan-out",
            "events": events.iter().map(|e| json!({"topic": e.topic, "value": json_or_text(&e.value)})).collect::<Vec<_>>(),
        }),
    }
}

/// A consume decision as `sluice plugin test` prints it.
pub fn delivery_json(delivery: &Delivery) -> Value {
    match delivery {
        Delivery::Deliver => json!({"delivery": "deliver"}),
        Delivery::Modify(changes) => {
            let mut out = json!({"delivery": "modify"});
            changes_json(&mut out, changes);
            out
        }
        Delivery::Skip(reason) => json!({"delivery": "skip", "reason": reason}),
        Delivery::DeadLetter(reason) => json!({"delivery": "dead-letter", "reason": reason}),
    }
}

/// A failure decision in the same form: `{"decision": "retry-after", "ms": 200}`.
pub fn decision_json(decision: &Decision) -> Value {
    match decision {
        Decision::RetryAfter(ms) => json!({"decision": "retry-after", "ms": ms}),
        Decision::DeadLetter(reason) => json!({"decision": "dead-letter", "reason": reason}),
        Decision::Drop(reason) => json!({"decision": "drop", "reason": reason}),
    }
}
