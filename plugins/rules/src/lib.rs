//! # rules
//!
//! Business rules for orders, deciding what the gateway does with an event instead of letting
//! bad data into the topic:
//! - a negative `total_cents` goes to the route's dead letter topic for someone to look at:
//!   `{"order_id": "o-1", "total_cents": -5}` → `dead-letter("negative total_cents")`;
//! - a total above `max_total_cents` (configuration, default 100000000) is refused, and the
//!   HTTP caller gets a 422 naming this plugin and the reason:
//!   `{"total_cents": 500000000}` → `reject("total_cents above 100000000")`;
//! - anything else is accepted.
//!
//! On the consume path, an event with a negative total is dead-lettered instead of delivered
//! (it may have reached the topic some other way), and a subscriber that keeps failing gets the
//! event dead-lettered after three attempts (the failure hook), with the last error as the
//! reason; before that it is retried after 200 ms × the attempt.

use sluice_sdk::{Action, Decision, Delivery, Event, Failure, Hooks, Plugin, host};

pub struct Rules;

impl Plugin for Rules {
    const HOOKS: Hooks = Hooks::PRODUCE.and(Hooks::CONSUME).and(Hooks::FAILURE);

    fn produce(event: &Event) -> Action {
        let Ok(value) = event.json() else { return Action::Accept };
        let Some(total) = value["total_cents"].as_i64() else { return Action::Accept };
        let max = host::config("max_total_cents").and_then(|m| m.parse().ok()).unwrap_or(100_000_000_i64);
        if total < 0 {
            Action::DeadLetter("negative total_cents".into())
        } else if total > max {
            Action::Reject(format!("total_cents above {max}"))
        } else {
            Action::Accept
        }
    }

    fn consume(event: &Event) -> Delivery {
        match event.json().ok().and_then(|value| value["total_cents"].as_i64()) {
            Some(total) if total < 0 => Delivery::DeadLetter("negative total_cents".into()),
            _ => Delivery::Deliver,
        }
    }

    fn on_failure(failure: &Failure) -> Decision {
        if failure.attempt >= 3 {
            Decision::DeadLetter(format!("subscriber kept failing: {}", failure.error))
        } else {
            Decision::RetryAfter(200 * failure.attempt)
        }
    }
}

sluice_sdk::export!(Rules);

#[cfg(test)]
mod tests {
    use super::*;

    fn order(total: i64) -> Event {
        Event::new("orders", format!(r#"{{"order_id":"o","total_cents":{total}}}"#).into_bytes())
    }

    #[test]
    fn negative_totals_are_dead_lettered_and_huge_ones_rejected() {
        sluice_sdk::testing::reset();
        assert_eq!(Rules::produce(&order(-5)), Action::DeadLetter("negative total_cents".into()));
        assert_eq!(Rules::produce(&order(500_000_000)), Action::Reject("total_cents above 100000000".into()));
        assert_eq!(Rules::produce(&order(1999)), Action::Accept);
        sluice_sdk::testing::set_config("max_total_cents", "1000");
        assert_eq!(Rules::produce(&order(1999)), Action::Reject("total_cents above 1000".into()));
    }

    #[test]
    fn negative_totals_are_not_delivered() {
        assert_eq!(Rules::consume(&order(-5)), Delivery::DeadLetter("negative total_cents".into()));
        assert_eq!(Rules::consume(&order(5)), Delivery::Deliver);
    }

    #[test]
    fn failing_deliveries_are_retried_then_dead_lettered() {
        let failure = |attempt| Failure { event: order(1), attempt, status: Some(503), error: "503".into() };
        assert_eq!(Rules::on_failure(&failure(1)), Decision::RetryAfter(200));
        assert_eq!(Rules::on_failure(&failure(3)), Decision::DeadLetter("subscriber kept failing: 503".into()));
    }

    #[test]
    fn passes_the_cases_shared_with_the_typescript_and_python_versions() {
        sluice_sdk::testing::check_cases::<Rules>(include_str!("../cases.json"));
    }
}
