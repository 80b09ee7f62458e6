//! Write Sluice plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`], exported with [`export!`], built for
//! `wasm32-wasip2`. It implements only the hooks it needs; the others keep their defaults
//! (accept, deliver). The types here are plain Rust, so plugin logic is unit-tested natively with
//! `cargo test`: the host functions in [`host`] then write to a test double ([`testing`]).
//!
//! ```
//! use sluice_sdk::{Action, Event, Hooks, Plugin};
//!
//! /// Drops events whose JSON has `"test": true`.
//! struct DropTests;
//!
//! impl Plugin for DropTests {
//!     const HOOKS: Hooks = Hooks::PRODUCE;
//!
//!     fn produce(event: &Event) -> Action {
//!         match event.json() {
//!             Ok(value) if value["test"] == true => Action::Drop("test event".into()),
//!             _ => Action::Accept,
//!         }
//!     }
//! }
//!
//! sluice_sdk::export!(DropTests);
//!
//! let event = Event::new("orders.placed", br#"{"test": true}"#.to_vec());
//! assert_eq!(DropTests::produce(&event), Action::Drop("test event".into()));
//! ```

// Lets the generated bindings name this crate by its public path.
extern crate self as sluice_sdk;

#[cfg(not(target_family = "wasm"))]
mod cases;
mod types;

pub use types::*;

/// A Sluice plugin. Every method has a default, so a plugin writes only what it changes.
pub trait Plugin {
    /// The hooks this plugin implements; Sluice calls only these.
    const HOOKS: Hooks;

    /// Produce path, per batch: one action per event, in order. By default [`Plugin::produce`]
    /// for each event.
    fn on_produce(events: Vec<Event>) -> Vec<Action> {
        events.iter().map(Self::produce).collect()
    }

    /// Produce path, per event. By default the event is accepted as it is.
    fn produce(_event: &Event) -> Action {
        Action::Accept
    }

    /// Consume path, per batch: one decision per event. By default [`Plugin::consume`] for
    /// each event.
    fn on_consume(events: Vec<Event>) -> Vec<Delivery> {
        events.iter().map(Self::consume).collect()
    }

    /// Consume path, per event. By default the event is delivered as it is.
    fn consume(_event: &Event) -> Delivery {
        Delivery::Deliver
    }

    /// A failed delivery. By default: retry after a second up to five attempts, then dead-letter.
    fn on_failure(failure: &Failure) -> Decision {
        if failure.attempt < 5 {
            Decision::RetryAfter(1000)
        } else {
            Decision::DeadLetter(format!("gave up after {} attempts: {}", failure.attempt, failure.error))
        }
    }
}

/// Functions the gateway offers plugins: logs, counters and configuration values.
pub mod host {
    use crate::Level;

    /// Writes a structured log line (the gateway adds the plugin's name and version).
    pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        imp::log(level, message, fields);
    }

    /// Adds to a counter, exported by the gateway as a metric labelled with the plugin.
    pub fn counter_add(name: &str, delta: u64) {
        imp::counter_add(name, delta);
    }

    /// A value from the plugin's configuration in the gateway's config file.
    pub fn config(key: &str) -> Option<String> {
        imp::config(key)
    }

    #[cfg(target_family = "wasm")]
    mod imp {
        use crate::__private::bindings::sluice::plugin::host as wit;
        use crate::__private::bindings::sluice::plugin::types::Level as WitLevel;
        use crate::Level;

        pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
            let level = match level {
                Level::Trace => WitLevel::Trace,
                Level::Debug => WitLevel::Debug,
                Level::Info => WitLevel::Info,
                Level::Warn => WitLevel::Warn,
                Level::Error => WitLevel::Error,
            };
            let fields: Vec<(String, String)> =
                fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            wit::log(level, message, &fields);
        }

        pub fn counter_add(name: &str, delta: u64) {
            wit::counter_add(name, delta);
        }

        pub fn config(key: &str) -> Option<String> {
            wit::config_get(key)
        }
    }

    #[cfg(not(target_family = "wasm"))]
    mod imp {
        use crate::Level;
        use crate::testing::DOUBLE;

        pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
            let fields = fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            DOUBLE.with_borrow_mut(|d| d.logs.push((level, message.to_owned(), fields)));
        }

        pub fn counter_add(name: &str, delta: u64) {
            DOUBLE.with_borrow_mut(|d| *d.counters.entry(name.to_owned()).or_default() += delta);
        }

        pub fn config(key: &str) -> Option<String> {
            DOUBLE.with_borrow(|d| d.config.get(key).cloned())
        }
    }
}

/// The native test double behind [`host`]: set configuration, read back logs and counters.
/// State is per thread, so tests running in parallel do not see each other's.
#[cfg(not(target_family = "wasm"))]
pub mod testing {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use crate::Level;

    /// A log line: level, message, fields.
    pub type LogLine = (Level, String, Vec<(String, String)>);

    #[derive(Default)]
    pub(crate) struct Double {
        pub(crate) config: BTreeMap<String, String>,
        pub(crate) logs: Vec<LogLine>,
        pub(crate) counters: BTreeMap<String, u64>,
    }

    thread_local! {
        pub(crate) static DOUBLE: RefCell<Double> = RefCell::default();
    }

    /// Sets a configuration value that [`crate::host::config`] returns.
    pub fn set_config(key: &str, value: &str) {
        DOUBLE.with_borrow_mut(|d| d.config.insert(key.to_owned(), value.to_owned()));
    }

    /// Log lines written so far: level, message, fields.
    pub fn logs() -> Vec<LogLine> {
        DOUBLE.with_borrow(|d| d.logs.clone())
    }

    /// Counters added to so far.
    pub fn counters() -> BTreeMap<String, u64> {
        DOUBLE.with_borrow(|d| d.counters.clone())
    }

    /// Forgets configuration, logs and counters.
    pub fn reset() {
        DOUBLE.with_borrow_mut(|d| *d = Double::default());
    }

    pub use crate::cases::{check_cases, decision_json};
}

/// Exports a [`Plugin`] as the component's implementation of the plugin world. Natively it
/// expands to nothing, so the same crate builds for unit tests.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            struct SluicePluginExport;

            impl $crate::__private::Guest for SluicePluginExport {
                fn describe() -> $crate::__private::WitInfo {
                    $crate::__private::describe::<$plugin>(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                }

                fn on_produce(
                    events: ::std::vec::Vec<$crate::__private::WitEvent>,
                ) -> ::std::vec::Vec<$crate::__private::WitAction> {
                    $crate::__private::on_produce::<$plugin>(events)
                }

                fn on_consume(
                    events: ::std::vec::Vec<$crate::__private::WitEvent>,
                ) -> ::std::vec::Vec<$crate::__private::WitDelivery> {
                    $crate::__private::on_consume::<$plugin>(events)
                }

                fn on_failure(failure: $crate::__private::WitFailure) -> $crate::__private::WitDecision {
                    $crate::__private::on_failure::<$plugin>(failure)
                }
            }

    $crate::__private::export_plugin_world!(SluicePluginExport with_types_in $crate::__private::bindings);
        };
    };
}

/// Used by [`export!`]; not part of the API.
#[doc(hidden)]
#[cfg(target_family = "wasm")]
pub mod __private {
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "plugin",
            pub_export_macro: true,
            export_macro_name: "export_plugin_world",
            runtime_path: "::sluice_sdk::__private::wit_bindgen::rt",
        });
    }

    pub use wit_bindgen;

    pub use self::bindings::Guest;
    pub use self::bindings::export_plugin_world;
    use self::bindings::sluice::plugin::types as wit;
    pub use self::bindings::sluice::plugin::types::{
        Action as WitAction, Decision as WitDecision, Delivery as WitDelivery, Event as WitEvent,
        Failure as WitFailure, Info as WitInfo,
    };
    use crate::{Action, Changes, Decision, Delivery, Event, Failure, Header, Hooks, Plugin};

    pub fn describe<P: Plugin>(name: &str, version: &str) -> WitInfo {
        let mut hooks = wit::Hooks::empty();
        if P::HOOKS.contains(Hooks::PRODUCE) {
            hooks |= wit::Hooks::PRODUCE;
        }
        if P::HOOKS.contains(Hooks::CONSUME) {
            hooks |= wit::Hooks::CONSUME;
        }
        if P::HOOKS.contains(Hooks::FAILURE) {
            hooks |= wit::Hooks::FAILURE;
        }
        WitInfo { name: name.to_owned(), version: version.to_owned(), hooks }
    }

    pub fn on_produce<P: Plugin>(events: Vec<WitEvent>) -> Vec<WitAction> {
        P::on_produce(events.into_iter().map(event_in).collect()).into_iter().map(action_out).collect()
    }

    pub fn on_consume<P: Plugin>(events: Vec<WitEvent>) -> Vec<WitDelivery> {
        P::on_consume(events.into_iter().map(event_in).collect()).into_iter().map(delivery_out).collect()
    }

    pub fn on_failure<P: Plugin>(failure: WitFailure) -> WitDecision {
        let failure = Failure {
            event: event_in(failure.event),
            attempt: failure.attempt,
            status: failure.status,
            error: failure.error,
        };
        match P::on_failure(&failure) {
            Decision::RetryAfter(ms) => WitDecision::RetryAfter(ms),
            Decision::DeadLetter(reason) => WitDecision::DeadLetter(reason),
            Decision::Drop(reason) => WitDecision::Drop(reason),
        }
    }

    fn header_in(h: wit::Header) -> Header {
        Header { key: h.key, value: h.value }
    }

    fn header_out(h: Header) -> wit::Header {
        wit::Header { key: h.key, value: h.value }
    }

    fn event_in(e: WitEvent) -> Event {
        Event {
            topic: e.topic,
            key: e.key,
            value: e.value,
            headers: e.headers.into_iter().map(header_in).collect(),
            timestamp_ms: e.timestamp_ms,
        }
    }

    fn event_out(e: Event) -> WitEvent {
        WitEvent {
            topic: e.topic,
            key: e.key,
            value: e.value,
            headers: e.headers.into_iter().map(header_out).collect(),
            timestamp_ms: e.timestamp_ms,
        }
    }

    fn changes_out(c: Changes) -> wit::Changes {
        wit::Changes { value: c.value, key: c.key, headers: c.headers.map(|h| h.into_iter().map(header_out).collect()) }
    }

    fn action_out(a: Action) -> WitAction {
        match a {
            Action::Accept => WitAction::Accept,
            Action::Modify(c) => WitAction::Modify(changes_out(c)),
            Action::Drop(r) => WitAction::Drop(r),
            Action::Reject(r) => WitAction::Reject(r),
            Action::DeadLetter(r) => WitAction::DeadLetter(r),
            Action::Reroute { topic, changes } => {
                WitAction::Reroute(wit::RerouteTo { topic, changes: changes.map(changes_out) })
            }
            Action::FanOut(events) => WitAction::FanOut(events.into_iter().map(event_out).collect()),
        }
    }

    fn delivery_out(d: Delivery) -> WitDelivery {
        match d {
            Delivery::Deliver => WitDelivery::Deliver,
            Delivery::Modify(c) => WitDelivery::Modify(changes_out(c)),
            Delivery::Skip(r) => WitDelivery::Skip(r),
            Delivery::DeadLetter(r) => WitDelivery::DeadLetter(r),
        }
    }
}
