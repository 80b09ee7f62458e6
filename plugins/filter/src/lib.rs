//! # filter
//!
//! Drops events flagged as test events, so they never reach the topic. The flag is the JSON
//! pointer in the `field` configuration value (default `/test`); the event is dropped when it
//! is `true`.
//!
//! Input `{"order_id": "o-1", "test": true}` → `drop("test event")`; the HTTP caller sees the
//! event as dropped, not as an error. Input `{"order_id": "o-2"}` → `accept`.

use sluice_sdk::{Action, Event, Hooks, Plugin, host};

pub struct Filter;

impl Plugin for Filter {
    const HOOKS: Hooks = Hooks::PRODUCE;

    fn produce(event: &Event) -> Action {
        let field = host::config("field").unwrap_or_else(|| "/test".into());
        match event.json() {
            Ok(value) if value.pointer(&field) == Some(&serde_json::Value::Bool(true)) => {
                host::counter_add("dropped", 1);
                Action::Drop("test event".into())
            }
            _ => Action::Accept,
        }
    }
}

sluice_sdk::export!(Filter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_only_flagged_events() {
        sluice_sdk::testing::reset();
        let events = vec![
            Event::new("t", br#"{"order_id":"o-1","test":true}"#.to_vec()),
            Event::new("t", br#"{"order_id":"o-2"}"#.to_vec()),
            Event::new("t", br#"{"order_id":"o-3","test":"true"}"#.to_vec()),
        ];
        assert_eq!(Filter::on_produce(events), vec![Action::Drop("test event".into()), Action::Accept, Action::Accept]);
    }

    #[test]
    fn the_flag_is_configurable() {
        sluice_sdk::testing::reset();
        sluice_sdk::testing::set_config("field", "/meta/synthetic");
        let event = Event::new("t", br#"{"meta":{"synthetic":true}}"#.to_vec());
        assert_eq!(Filter::produce(&event), Action::Drop("test event".into()));
    }
}
