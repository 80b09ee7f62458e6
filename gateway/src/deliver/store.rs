//! Subscriptions and their state, kept in a compacted Kafka topic so every replica serves the
//! same ones and API-created subscriptions survive restarts.
//!
//! Records (JSON keys):
//! - `{"kind": "subscription", "name"}` → the spec of an API-created subscription (a tombstone
//!   deletes it; config-declared ones are not stored);
//! - `{"kind": "state", "name"}` → `{"state": "active" | "paused" | "disabled", "reason",
//!   "generation"}`, for every subscription. `generation` counts replays: it is part of each
//!   `webhook-id`, so replayed events are new messages to the subscriber while retries and
//!   redeliveries of the same record keep their id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::subscription::SubscriptionSpec;
use crate::kafka::log::Fold;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Key {
    Subscription { name: String },
    State { name: String },
}

/// Whether a subscription delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    #[default]
    Active,
    /// Paused through the API.
    Paused,
    /// Stopped by the subscriber (410 Gone); resume to try again.
    Disabled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Active => "active",
            RunState::Paused => "paused",
            RunState::Disabled => "disabled",
        }
    }
}

/// A subscription's stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StateRecord {
    pub state: RunState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub generation: u64,
}

/// The fold over the subscriptions topic.
#[derive(Debug, Default)]
pub struct SubscriptionsState {
    pub created: BTreeMap<String, SubscriptionSpec>,
    pub states: BTreeMap<String, StateRecord>,
}

impl Fold for SubscriptionsState {
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let Ok(key) = serde_json::from_slice::<Key>(key) else { return Ok(()) };
        match (key, value) {
            (Key::Subscription { name }, Some(value)) => {
                let spec = serde_json::from_slice(value).map_err(|e| format!("unreadable subscription: {e}"))?;
                self.created.insert(name, spec);
            }
            (Key::Subscription { name }, None) => {
                self.created.remove(&name);
            }
            (Key::State { name }, Some(value)) => {
                let state = serde_json::from_slice(value).map_err(|e| format!("unreadable state: {e}"))?;
                self.states.insert(name, state);
            }
            (Key::State { name }, None) => {
                self.states.remove(&name);
            }
        }
        Ok(())
    }
}

impl SubscriptionsState {
    pub fn state(&self, name: &str) -> StateRecord {
        self.states.get(name).cloned().unwrap_or_default()
    }
}

/// Specs are stored with their secrets (the topic is the gateway's own); they are only left out
/// when specs are shown.
#[derive(Serialize)]
#[allow(missing_debug_implementations)] // holds secrets
pub struct StoredSpec<'a> {
    #[serde(flatten)]
    pub spec: &'a SubscriptionSpec,
    pub secrets: &'a [String],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_keep_their_secrets_in_the_store_only() {
        let spec: SubscriptionSpec = serde_json::from_value(serde_json::json!({
            "name": "s", "topics": ["t"], "url": "http://x", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "dead_letter_topic": "d"
        }))
        .unwrap();
        let shown = serde_json::to_value(&spec).unwrap();
        assert!(shown.get("secrets").is_none(), "{shown}");
        let stored = serde_json::to_vec(&StoredSpec { spec: &spec, secrets: &spec.secrets }).unwrap();
        let mut state = SubscriptionsState::default();
        state.apply(br#"{"kind":"subscription","name":"s"}"#, Some(&stored)).unwrap();
        assert_eq!(state.created["s"].secrets, spec.secrets);
        assert_eq!(state.state("s").state, RunState::Active);
    }
}
