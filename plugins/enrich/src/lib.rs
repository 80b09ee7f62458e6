//! # enrich
//!
//! Adds when the gateway received each event: a JSON field and a record header, both RFC 3339.
//!
//! Configuration (`[plugins.config]`): `field` (default `ingested_at`), `header` (default
//! `ingested-at`).
//!
//! Input (received at 2026-11-27T10:00:00Z):
//! ```json
//! {"order_id": "o-1"}
//! ```
//! Output value, plus the header `ingested-at: 2026-11-27T10:00:00.000Z`:
//! ```json
//! {"order_id": "o-1", "ingested_at": "2026-11-27T10:00:00.000Z"}
//! ```
//! Events that are not JSON objects pass unchanged.

use sluice_sdk::host::{self, config};
use sluice_sdk::{Action, Changes, Event, Header, Hooks, Level, Plugin};

pub struct Enrich;

impl Plugin for Enrich {
    const HOOKS: Hooks = Hooks::PRODUCE;

    fn produce(event: &Event) -> Action {
        let Ok(serde_json::Value::Object(mut object)) = event.json() else {
            host::log(Level::Debug, "not a JSON object; passing it on", &[]);
            return Action::Accept;
        };
        let stamp = rfc3339(event.timestamp_ms);
        let field = config("field").unwrap_or_else(|| "ingested_at".into());
        object.insert(field, serde_json::Value::String(stamp.clone()));
        let mut headers = event.headers.clone();
        headers
            .push(Header { key: config("header").unwrap_or_else(|| "ingested-at".into()), value: stamp.into_bytes() });
        host::counter_add("enriched", 1);
        Action::Modify(Changes { headers: Some(headers), ..Changes::json(&serde_json::Value::Object(object)) })
    }
}

sluice_sdk::export!(Enrich);

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (civil-from-days, proleptic
/// Gregorian), without pulling a date crate into a small plugin.
fn rfc3339(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use sluice_sdk::testing;

    use super::*;

    #[test]
    fn adds_the_field_and_the_header() {
        testing::reset();
        let mut event = Event::new("orders", br#"{"order_id":"o-1"}"#.to_vec());
        event.timestamp_ms = 1_795_773_600_000;
        let Action::Modify(changes) = Enrich::produce(&event) else { panic!("modified") };
        let value: serde_json::Value = serde_json::from_slice(&changes.value.unwrap()).unwrap();
        assert_eq!(value, serde_json::json!({"order_id": "o-1", "ingested_at": "2026-11-27T10:00:00.000Z"}));
        assert_eq!(
            changes.headers.unwrap()[0],
            Header { key: "ingested-at".into(), value: b"2026-11-27T10:00:00.000Z".to_vec() }
        );
        assert_eq!(testing::counters()["enriched"], 1);
    }

    #[test]
    fn names_come_from_configuration() {
        testing::reset();
        testing::set_config("field", "received");
        let Action::Modify(changes) = Enrich::produce(&Event::new("t", b"{}".to_vec())) else { panic!("modified") };
        assert_eq!(changes.value.unwrap(), br#"{"received":"1970-01-01T00:00:00.000Z"}"#);
    }

    #[test]
    fn dates_match_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn non_objects_pass() {
        assert_eq!(Enrich::produce(&Event::new("t", b"[1]".to_vec())), Action::Accept);
    }

    #[test]
    fn passes_the_cases_shared_with_the_typescript_and_python_versions() {
        sluice_sdk::testing::check_cases::<Enrich>(include_str!("../cases.json"));
    }
}
