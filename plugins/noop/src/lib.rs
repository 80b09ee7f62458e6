//! # noop
//!
//! Accepts every event as it is, on the produce and the consume path. It does nothing on
//! purpose: the benchmark measures what a plugin call costs with it.
//!
//! Input `{"order_id": "o-1"}` → `accept`.

use sluice_sdk::{Action, Event, Hooks, Plugin};

pub struct Noop;

impl Plugin for Noop {
    const HOOKS: Hooks = Hooks::PRODUCE.and(Hooks::CONSUME);

    // Batch-level, so the per-event default adds nothing either.
    fn on_produce(events: Vec<Event>) -> Vec<Action> {
        vec![Action::Accept; events.len()]
    }
}

sluice_sdk::export!(Noop);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_everything() {
        let events = vec![Event::new("t", b"{}".to_vec()); 3];
        assert_eq!(Noop::on_produce(events), vec![Action::Accept; 3]);
    }
}
