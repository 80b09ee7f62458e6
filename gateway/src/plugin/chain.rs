//! Running a route's plugins over a batch on the produce path and applying their actions.
//!
//! Each plugin sees the events the previous one kept, in order. Accepted and modified events
//! go on; dropped, rejected and dead-lettered ones stop with that outcome; a rerouted event goes
//! on with its new topic; a fanned-out event is replaced by its copies (which keep the index of
//! the event they came from). When a plugin fails, the route's `on_plugin_error` policy decides
//! for every event of the batch.

use std::sync::Arc;

use super::bindings::{Action, Changes, Event, Header, Hooks};
use super::{LoadedPlugin, PluginError};
use crate::config::OnPluginError;

/// An event still on its way, with the index of the request event it came from.
#[derive(Debug, Clone)]
pub struct Item {
    pub origin: usize,
    pub event: Event,
    /// Whether a plugin set the key (it then takes precedence over the route's key pointer).
    pub key_set: bool,
}

/// How a request event ended inside the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Dropped {
        plugin: String,
        reason: String,
    },
    Rejected {
        plugin: String,
        reason: String,
    },
    DeadLetter {
        plugin: String,
        reason: String,
    },
    /// The plugin failed and the policy is to refuse the events.
    Failed {
        plugin: String,
        error: PluginError,
    },
}

/// What came out of the chain.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Events to validate, encode and produce.
    pub items: Vec<Item>,
    /// Request events (by index) that stopped, and why.
    pub stopped: Vec<(usize, Stop)>,
}

/// Runs `plugins` in order over `items`, each call on the blocking pool (see
/// [`LoadedPlugin::produce`]).
pub async fn run(
    plugins: &[(String, Option<Arc<LoadedPlugin>>)],
    mut items: Vec<Item>,
    policy: OnPluginError,
) -> Outcome {
    let mut stopped = Vec::new();
    for (name, plugin) in plugins {
        if items.is_empty() {
            break;
        }
        let plugin = match plugin {
            Some(plugin) if plugin.implements(Hooks::PRODUCE) => plugin,
            Some(_) => continue,
            None => {
                let error =
                    PluginError::Instantiate { plugin: name.clone(), message: "no version of it is loaded".into() };
                match fail(name, &error, items, policy, &mut stopped) {
                    Some(kept) => {
                        items = kept;
                        continue;
                    }
                    None => return Outcome { items: Vec::new(), stopped },
                }
            }
        };
        let (origins, key_sets, events): (Vec<usize>, Vec<bool>, Vec<Event>) =
            items.into_iter().fold((Vec::new(), Vec::new(), Vec::new()), |(mut o, mut k, mut e), item| {
                o.push(item.origin);
                k.push(item.key_set);
                e.push(item.event);
                (o, k, e)
            });
        let (events, answer) = plugin.produce(events).await;
        let actions = match answer {
            Ok(actions) => actions,
            Err(error) => {
                let rebuilt = zip_items(origins, key_sets, events);
                match fail(name, &error, rebuilt, policy, &mut stopped) {
                    Some(kept) => {
                        items = kept;
                        continue;
                    }
                    None => return Outcome { items: Vec::new(), stopped },
                }
            }
        };
        let mut next = Vec::with_capacity(events.len());
        for (((origin, key_set), mut event), action) in origins.into_iter().zip(key_sets).zip(events).zip(actions) {
            let stop = |kind: fn(String, String) -> Stop, reason: String| (origin, kind(name.clone(), reason));
            match action {
                Action::Accept => next.push(Item { origin, event, key_set }),
                Action::Modify(changes) => {
                    let key_set = key_set || changes.key.is_some();
                    apply(&mut event, changes);
                    next.push(Item { origin, event, key_set });
                }
                Action::Drop(reason) => stopped.push(stop(|plugin, reason| Stop::Dropped { plugin, reason }, reason)),
                Action::Reject(reason) => {
                    stopped.push(stop(|plugin, reason| Stop::Rejected { plugin, reason }, reason))
                }
                Action::DeadLetter(reason) => {
                    stopped.push(stop(|plugin, reason| Stop::DeadLetter { plugin, reason }, reason));
                }
                Action::Reroute(to) => {
                    let mut key_set = key_set;
                    if let Some(changes) = to.changes {
                        key_set |= changes.key.is_some();
                        apply(&mut event, changes);
                    }
                    event.topic = to.topic;
                    next.push(Item { origin, event, key_set });
                }
                Action::FanOut(copies) => {
                    next.extend(copies.into_iter().map(|copy| Item {
                        origin,
                        key_set: copy.key.is_some(),
                        event: copy,
                    }));
                }
            }
        }
        items = next;
    }
    Outcome { items, stopped }
}

/// Applies the route's policy to a failed plugin's batch; returns the items that go on.
fn fail(
    name: &str,
    error: &PluginError,
    items: Vec<Item>,
    policy: OnPluginError,
    stopped: &mut Vec<(usize, Stop)>,
) -> Option<Vec<Item>> {
    match policy {
        OnPluginError::Pass => Some(items),
        OnPluginError::Reject => {
            stopped.extend(
                items.iter().map(|i| (i.origin, Stop::Failed { plugin: name.to_owned(), error: error.clone() })),
            );
            None
        }
        OnPluginError::DeadLetter => {
            let reason = format!("plugin failed ({}): {error}", error.kind());
            stopped.extend(
                items.iter().map(|i| (i.origin, Stop::DeadLetter { plugin: name.to_owned(), reason: reason.clone() })),
            );
            None
        }
    }
}

fn zip_items(origins: Vec<usize>, key_sets: Vec<bool>, events: Vec<Event>) -> Vec<Item> {
    origins
        .into_iter()
        .zip(key_sets)
        .zip(events)
        .map(|((origin, key_set), event)| Item { origin, event, key_set })
        .collect()
}

fn apply(event: &mut Event, changes: Changes) {
    if let Some(value) = changes.value {
        event.value = value;
    }
    if let Some(key) = changes.key {
        event.key = Some(key);
    }
    if let Some(headers) = changes.headers {
        event.headers = headers;
    }
}

/// Record headers as rdkafka wants them.
pub fn kafka_headers(headers: &[Header]) -> Option<rdkafka::message::OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut owned = rdkafka::message::OwnedHeaders::new_with_capacity(headers.len());
    for header in headers {
        owned = owned.insert(rdkafka::message::Header { key: &header.key, value: Some(&header.value) });
    }
    Some(owned)
}
