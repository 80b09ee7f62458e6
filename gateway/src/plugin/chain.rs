//! Running a chain of plugins, on both paths, with one rule for a plugin that is declared but
//! has no loaded version: it is not skipped, it fails (`PluginError::NotLoaded`), and the path
//! decides as for any plugin that cannot be called now.
//!
//! Produce ([`run_produce`]): each plugin sees the events the previous one kept, in order.
//! Accepted and modified events go on; dropped, rejected and dead-lettered ones stop with that
//! outcome; a rerouted event goes on with its new topic; a fanned-out event is replaced by its
//! copies (which keep the index of the event they came from). When a plugin fails, the route's
//! `on_plugin_error` policy decides for every event of the batch.
//!
//! Consume ([`run_consume`]): one record through the subscription's plugins; the first that
//! skips or dead-letters it ends the chain.

use std::sync::Arc;

use super::bindings::{Action, Changes, Delivery, Event, Hooks};
use super::store::Plugins;
use super::{LoadedPlugin, PluginError};
use crate::config::OnPluginError;

/// A chain's plugins by name, with their versions loaded now (`None`: declared, not loaded).
pub type Chain = Vec<(String, Option<Arc<LoadedPlugin>>)>;

/// The plugins `names` as loaded now.
pub fn resolve(plugins: &Plugins, names: &[String]) -> Chain {
    names.iter().map(|name| (name.clone(), plugins.get(name))).collect()
}

fn not_loaded(name: &str) -> PluginError {
    PluginError::NotLoaded { plugin: name.to_owned() }
}

/// How one record left the consume chain.
#[derive(Debug)]
pub enum ConsumeOutcome {
    /// Deliver this value (the record's, or a plugin's change of it).
    Deliver(Vec<u8>),
    Skip {
        plugin: String,
        reason: String,
    },
    DeadLetter {
        plugin: String,
        reason: String,
    },
    /// A plugin failed on it: the record is dead-lettered rather than lost.
    Failed {
        plugin: String,
        error: PluginError,
    },
    /// A plugin could not be called now (not loaded, busy, breaker open): the record waits.
    Unavailable {
        plugin: String,
        error: PluginError,
    },
}

/// Runs `chain` over one record's event (each call on the blocking pool).
pub async fn run_consume(chain: &[(String, Option<Arc<LoadedPlugin>>)], mut event: Event) -> ConsumeOutcome {
    for (name, plugin) in chain {
        let plugin = match plugin {
            Some(plugin) if plugin.implements(Hooks::CONSUME) => plugin,
            Some(_) => continue,
            None => return ConsumeOutcome::Unavailable { plugin: name.clone(), error: not_loaded(name) },
        };
        let (mut events, decision) = plugin.consume(vec![event]).await;
        event = match events.pop() {
            Some(event) => event,
            None => return ConsumeOutcome::Failed { plugin: name.clone(), error: not_loaded(name) },
        };
        match decision.map(|mut d| d.remove(0)) {
            Ok(Delivery::Deliver) => {}
            Ok(Delivery::Modify(changes)) => {
                if let Some(value) = changes.value {
                    event.value = value;
                }
            }
            Ok(Delivery::Skip(reason)) => return ConsumeOutcome::Skip { plugin: name.clone(), reason },
            Ok(Delivery::DeadLetter(reason)) => return ConsumeOutcome::DeadLetter { plugin: name.clone(), reason },
            Err(error) if error.is_unavailable() => return ConsumeOutcome::Unavailable { plugin: name.clone(), error },
            Err(error) => return ConsumeOutcome::Failed { plugin: name.clone(), error },
        }
    }
    ConsumeOutcome::Deliver(event.value)
}

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
pub async fn run_produce(
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
            None => match fail(name, &not_loaded(name), items, policy, &mut stopped) {
                Some(kept) => {
                    items = kept;
                    continue;
                }
                None => return Outcome { items: Vec::new(), stopped },
            },
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
