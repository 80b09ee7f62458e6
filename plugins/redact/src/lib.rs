//! # redact
//!
//! Masks e-mail addresses in string values anywhere in the event, keeping the first character
//! of the local part and the domain, so support can still tell addresses apart.
//!
//! Input:
//! ```json
//! {"customer": {"email": "alice@example.com", "notes": ["call bob@corp.io"]}}
//! ```
//! Output:
//! ```json
//! {"customer": {"email": "a***@example.com", "notes": ["call b***@corp.io"]}}
//! ```
//! Events without an address pass unchanged (no copy is made).

use serde_json::Value;
use sluice_sdk::{Action, Changes, Event, Hooks, Plugin, host};

pub struct Redact;

impl Plugin for Redact {
    const HOOKS: Hooks = Hooks::PRODUCE.and(Hooks::CONSUME);

    fn produce(event: &Event) -> Action {
        match redacted(event) {
            Some(changes) => Action::Modify(changes),
            None => Action::Accept,
        }
    }

    fn consume(event: &Event) -> sluice_sdk::Delivery {
        match redacted(event) {
            Some(changes) => sluice_sdk::Delivery::Modify(changes),
            None => sluice_sdk::Delivery::Deliver,
        }
    }
}

sluice_sdk::export!(Redact);

fn redacted(event: &Event) -> Option<Changes> {
    // A cheap test first: most events have no '@' at all.
    if !event.value.contains(&b'@') {
        return None;
    }
    let mut value = event.json().ok()?;
    let masked = mask_all(&mut value);
    if masked == 0 {
        return None;
    }
    host::counter_add("masked", masked);
    Some(Changes::json(&value))
}

fn mask_all(value: &mut Value) -> u64 {
    match value {
        Value::String(text) => match mask(text) {
            Some(masked) => {
                *text = masked;
                1
            }
            None => 0,
        },
        Value::Array(items) => items.iter_mut().map(mask_all).sum(),
        Value::Object(fields) => fields.values_mut().map(mask_all).sum(),
        _ => 0,
    }
}

/// Masks every `local@domain.tld` word in `text`; `None` if there is none.
fn mask(text: &str) -> Option<String> {
    if !text.contains('@') {
        return None;
    }
    let mut changed = false;
    let words: Vec<String> = text
        .split(' ')
        .map(|word| match word.split_once('@') {
            Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') => {
                changed = true;
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            _ => word.to_owned(),
        })
        .collect();
    changed.then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn masks_addresses_at_any_depth() {
        let event = Event::new(
            "t",
            json!({"customer": {"email": "alice@example.com", "notes": ["call bob@corp.io"]}}).to_string().into_bytes(),
        );
        let Action::Modify(changes) = Redact::produce(&event) else { panic!("modified") };
        let value: Value = serde_json::from_slice(&changes.value.unwrap()).unwrap();
        assert_eq!(value, json!({"customer": {"email": "a***@example.com", "notes": ["call b***@corp.io"]}}));
        assert_eq!(sluice_sdk::testing::counters()["masked"], 2);
    }

    #[test]
    fn leaves_other_events_and_at_signs_alone() {
        assert_eq!(Redact::produce(&Event::new("t", br#"{"a": "no address"}"#.to_vec())), Action::Accept);
        assert_eq!(Redact::produce(&Event::new("t", br#"{"handle": "@sluice", "x": "a@b"}"#.to_vec())), Action::Accept);
    }

    #[test]
    fn passes_the_cases_shared_with_the_typescript_and_python_versions() {
        sluice_sdk::testing::check_cases::<Redact>(include_str!("../cases.json"));
    }
}
