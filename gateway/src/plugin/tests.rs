//! The host against real components: the example plugins and the hostile fixtures of
//! `plugins/`, built for wasm32-wasip2 by the test harness.

use std::time::{Duration, Instant};

use super::bindings::{Action, Event, Hooks};
use super::{EngineLimits, Grants, PluginError, PluginHost};

fn host() -> PluginHost {
    PluginHost::new(EngineLimits { max_instances: 32, max_memory_bytes: 128 << 20, ..EngineLimits::default() }, None)
        .expect("host")
}

fn load(host: &PluginHost, name: &str, grants: Grants) -> std::sync::Arc<super::LoadedPlugin> {
    let bytes = std::fs::read(sluice_tests::plugin_wasm(name)).expect("plugin file");
    host.load(name, &bytes, grants).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn event(json: &str) -> Event {
    Event { topic: "orders".into(), key: None, value: json.as_bytes().to_vec(), headers: vec![], timestamp_ms: 0 }
}

#[test]
fn loads_a_plugin_and_calls_its_hooks() {
    let host = host();
    let filter = load(&host, "filter", Grants::default());
    assert_eq!(filter.info().name, "filter");
    assert!(filter.implements(Hooks::PRODUCE) && filter.implements(Hooks::CONSUME));
    assert!(!filter.implements(Hooks::FAILURE));
    let enrich = load(&host, "enrich", Grants::default());
    assert!(enrich.implements(Hooks::PRODUCE) && !enrich.implements(Hooks::CONSUME));
    let actions = filter.on_produce(&[event(r#"{"test":true}"#), event(r#"{"a":1}"#)]).unwrap();
    assert_eq!(actions, [Action::Drop("test event".into()), Action::Accept]);
    assert_eq!(filter.counters()["dropped"], 1);
}

#[test]
fn configuration_reaches_the_plugin() {
    let host = host();
    let mut grants = Grants::default();
    grants.config.insert("max_total_cents".into(), "10".into());
    let rules = load(&host, "rules", grants);
    let actions = rules.on_produce(&[event(r#"{"total_cents":11}"#), event(r#"{"total_cents":-1}"#)]).unwrap();
    assert_eq!(
        actions,
        [Action::Reject("total_cents above 10".into()), Action::DeadLetter("negative total_cents".into())]
    );
}

#[test]
fn invalid_components_are_refused_with_the_reason() {
    let host = host();
    let error = host.load("x", b"not wasm at all", Grants::default()).unwrap_err();
    assert!(error.contains("not a WebAssembly binary"), "{error}");
    // A core module, not a component.
    let error = host.load("x", b"\0asm\x01\0\0\0", Grants::default()).unwrap_err();
    assert!(error.contains("component"), "{error}");
}

fn assert_recovers(plugin: &super::LoadedPlugin, expected_kind: &str) {
    let before = plugin.failures().get(expected_kind).copied().unwrap_or(0);
    let started = Instant::now();
    let error = plugin.on_produce(&[event("{}")]).unwrap_err();
    assert_eq!(error.kind(), expected_kind, "{error}");
    assert!(started.elapsed() < Duration::from_secs(10), "stopped in {:?}", started.elapsed());
    // The failed instance was discarded: the next call gets a fresh one and fails the same way
    // (rather than `cannot enter component`).
    let again = plugin.on_produce(&[event("{}")]).unwrap_err();
    assert_eq!(again.kind(), expected_kind, "{again}");
    assert_eq!(plugin.failures()[expected_kind], before + 2, "each failure is counted");
}

#[test]
fn an_infinite_loop_is_stopped_by_the_time_limit() {
    let host = host();
    let grants = Grants { timeout: Duration::from_millis(30), ..Grants::default() };
    let plugin = load(&host, "infinite-loop", grants);
    let started = Instant::now();
    let error = plugin.on_produce(&[event("{}")]).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, PluginError::Timeout { limit_ms: 30, .. }), "{error}");
    assert!(took >= Duration::from_millis(25) && took < Duration::from_millis(500), "stopped after {took:?}");
    assert_recovers(&plugin, "timeout");
}

#[tokio::test]
async fn a_call_spinning_on_the_cpu_is_lowered_and_quick_calls_are_not() {
    let host = host();
    let noop = load(&host, "noop", Grants::default());
    for _ in 0..50 {
        let (_, answer) = noop.produce(vec![event("{}")]).await;
        answer.expect("the no-op plugin answers");
    }
    assert_eq!(noop.lowered_calls(), 0, "quick calls keep the gateway's priority");
    let grants = Grants { timeout: Duration::from_millis(200), ..Grants::default() };
    let spin = load(&host, "infinite-loop", grants);
    let (_, answer) = spin.produce(vec![event("{}")]).await;
    assert!(matches!(answer, Err(PluginError::Timeout { .. })), "{answer:?}");
    assert_eq!(spin.lowered_calls(), 1, "the spinning call's thread was lowered");
}

#[test]
fn a_memory_bomb_is_stopped_by_the_memory_limit() {
    let host = host();
    // Time enough to fill 16 MiB in an unoptimised build on a busy machine: this is about memory.
    let grants = Grants { memory_bytes: 16 << 20, timeout: Duration::from_secs(5), ..Grants::default() };
    let plugin = load(&host, "memory-bomb", grants);
    assert_recovers(&plugin, "memory");
}

#[test]
fn a_panic_traps_and_the_instance_is_replaced() {
    let host = host();
    let plugin = load(&host, "panic", Grants::default());
    assert_recovers(&plugin, "trap");
}

#[test]
fn oversized_and_miscounted_answers_are_bad_output() {
    let host = host();
    // Generous time, so the call gets as far as the size check in an unoptimised test build.
    let plugin = load(&host, "oversized-output", Grants { timeout: Duration::from_secs(3), ..Grants::default() });
    assert_recovers(&plugin, "bad-output");
    let plugin = load(&host, "wrong-count", Grants::default());
    let error = plugin.on_produce(&[event("{}"), event("{}")]).unwrap_err();
    assert!(error.to_string().contains("1 decisions for 2 events"), "{error}");
}

#[test]
fn a_plugin_may_not_ask_for_more_memory_than_the_engine_allows() {
    let host = host();
    let bytes = std::fs::read(sluice_tests::plugin_wasm("noop")).unwrap();
    let error = host.load("noop", &bytes, Grants { memory_bytes: 1 << 30, ..Grants::default() }).unwrap_err();
    assert!(error.contains("at most"), "{error}");
}

#[test]
fn compiled_code_is_cached_on_disk_by_content_hash() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(sluice_tests::plugin_wasm("noop")).unwrap();
    let first = PluginHost::new(EngineLimits::default(), Some(dir.path().to_owned())).unwrap();
    let plugin = first.load("noop", &bytes, Grants::default()).unwrap();
    let cached = dir.path().join(format!("{}.cwasm", plugin.version()));
    assert!(cached.is_file(), "compiled code cached at {}", cached.display());
    drop(first);
    let second = PluginHost::new(EngineLimits::default(), Some(dir.path().to_owned())).unwrap();
    let started = Instant::now();
    let again = second.load("noop", &bytes, Grants::default()).unwrap();
    assert_eq!(again.version(), plugin.version());
    assert!(started.elapsed() < Duration::from_secs(1), "loading from the cache took {:?}", started.elapsed());
    assert_eq!(again.on_produce(&[event("{}")]).unwrap(), [Action::Accept]);
}
