//! # filter
//!
//! Drops events flagged as test events, so they never reach the topic. The flag is the JSON
//! pointer in the `field` configuration value (default `/test`); the event is dropped when it
//! is `true`.
//!
//! Input `{"order_id": "o-1", "test": true}` → `drop("test event")`; the HTTP caller sees the
//! event as dropped, not as an error. Input `{"order_id": "o-2"}` → `accept`.
//!
//! On the consume path the same events are skipped, so a subscription never delivers test
//! events that reached the topic some other way: `{"test": true}` → `skip("test event")`.

use sluice_sdk::{Action, Delivery, Event, Hooks, Plugin, host};

pub struct Filter;

impl Plugin for Filter {
    const HOOKS: Hooks = Hooks::PRODUCE.and(Hooks::CONSUME);

    fn produce(event: &Event) -> Action {
        if is_test(event) {
            host::counter_add("dropped", 1);
            Action::Drop("test event".into())
        } else {
            Action::Accept
        }
    }

    fn consume(event: &Event) -> Delivery {
        if is_test(event) {
            host::counter_add("skipped", 1);
            Delivery::Skip("test event".into())
        } else {
            Delivery::Deliver
        }
    }
}

fn is_test(event: &Event) -> bool {
    let field = host::config("field").unwrap_or_else(|| "/test".into());
    event.json().is_ok_and(|value| value.pointer(&field) == Some(&serde_json::Value::Bool(true)))
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
    fn flagged_events_are_not_delivered_either() {
        sluice_sdk::testing::reset();
        let events = vec![
            Event::new("t", br#"{"order_id":"o-1","test":true}"#.to_vec()),
            Event::new("t", br#"{"order_id":"o-2"}"#.to_vec()),
        ];
        assert_eq!(Filter::on_consume(events), vec![Delivery::Skip("test event".into()), Delivery::Deliver]);
    }

    #[test]
    fn the_flag_is_configurable() {
        sluice_sdk::testing::reset();
        sluice_sdk::testing::set_config("field", "/meta/synthetic");
        let event = Event::new("t", br#"{"meta":{"synthetic":true}}"#.to_vec());
        assert_eq!(Filter::produce(&event), Action::Drop("test event".into()));
    }

    #[test]
    fn passes_the_cases_shared_with_the_typescript_and_python_versions() {
        sluice_sdk::testing::check_cases::<Filter>(include_str!("../cases.json"));
    }
}
