//! # tenant-router
//!
//! Sends each tenant's events to the tenant's own topic, `{topic}.{tenant}`, read from the
//! `tenant` field (configuration `field`, a JSON pointer, default `/tenant`). An event for
//! several tenants (`tenants`, an array) is fanned out: one copy per tenant, with `tenant` set,
//! each to its topic.
//! The target topics must be routed by the gateway; each copy is checked against its topic's
//! schema.
//!
//! Input on `orders`:
//! ```json
//! {"order_id": "o-1", "tenant": "acme"}
//! {"order_id": "o-2", "tenants": ["acme", "globex"]}
//! {"order_id": "o-3"}
//! ```
//! Output: `reroute(orders.acme)`; `fan-out` to `orders.acme` and `orders.globex`; `accept`.

use serde_json::Value;
use sluice_sdk::{Action, Event, Hooks, Plugin, host};

pub struct TenantRouter;

impl Plugin for TenantRouter {
    const HOOKS: Hooks = Hooks::PRODUCE;

    fn produce(event: &Event) -> Action {
        let Ok(value) = event.json() else { return Action::Accept };
        let field = host::config("field").unwrap_or_else(|| "/tenant".into());
        if let Some(Value::String(tenant)) = value.pointer(&field) {
            return Action::Reroute { topic: format!("{}.{tenant}", event.topic), changes: None };
        }
        if let Some(Value::Array(tenants)) = value.get("tenants") {
            let copies = tenants
                .iter()
                .filter_map(Value::as_str)
                .map(|tenant| {
                    let mut copy = value.clone();
                    copy["tenant"] = Value::String(tenant.to_owned());
                    Event {
                        topic: format!("{}.{tenant}", event.topic),
                        value: copy.to_string().into_bytes(),
                        ..event.clone()
                    }
                })
                .collect();
            return Action::FanOut(copies);
        }
        Action::Accept
    }
}

sluice_sdk::export!(TenantRouter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reroutes_fans_out_or_accepts() {
        let event = |json: &str| Event::new("orders", json.as_bytes().to_vec());
        assert_eq!(
            TenantRouter::produce(&event(r#"{"tenant":"acme"}"#)),
            Action::Reroute { topic: "orders.acme".into(), changes: None }
        );
        let Action::FanOut(copies) = TenantRouter::produce(&event(r#"{"tenants":["acme","globex"]}"#)) else {
            panic!("fan-out")
        };
        assert_eq!(copies.iter().map(|c| c.topic.as_str()).collect::<Vec<_>>(), ["orders.acme", "orders.globex"]);
        assert_eq!(copies[1].json().unwrap()["tenant"], "globex");
        assert_eq!(TenantRouter::produce(&event(r#"{"order_id":"o-3"}"#)), Action::Accept);
    }

    #[test]
    fn passes_the_cases_shared_with_the_typescript_and_python_versions() {
        sluice_sdk::testing::check_cases::<TenantRouter>(include_str!("../cases.json"));
    }
}
