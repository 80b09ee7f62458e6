//! What a plugin costs in each language it can be written in: Rust, TypeScript (QuickJS through
//! componentize-qjs) and Python (CPython through componentize-py).
//!
//! 1. Per event, batches of 100: the no-op plugin and `redact` of each language called through
//!    the gateway's plugin host (events handed to the component, the call, the decisions back),
//!    in this process, no Kafka, no HTTP. Every event carries an e-mail address (as its
//!    `customer_id`), so `redact` parses, masks and re-serialises each one: its worst case.
//! 2. End to end: the release `sluice` binary as a child process with one Avro route per
//!    plugin (and one without), driven with HTTP batches of 100 from this process for
//!    `--seconds` each, every scenario once per round.
//!
//! Run: `cargo run --release -p sluice-tests --bin pluginbench`. It builds the plugins and the
//! `sluice` binary itself. Without `--bootstrap` it starts its own broker with the test harness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use sluice::plugin::bindings::Event;
use sluice::plugin::{EngineLimits, Grants, PluginHost};
use sluice_tests::bench::load::{Outcome, http_scenario};
use sluice_tests::bench::{self, BATCH, PARTITIONS, event, with_broker};
use sluice_tests::{GatewayProcess, Kafka, plugin_component, plugin_wasm, unique_name};

#[derive(Debug, Parser)]
struct Args {
    /// Measured seconds per end-to-end scenario (after a warm-up of a fifth of it); 0 measures
    /// the per-event costs only.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Rounds of the end-to-end scenarios.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Batches per per-event measurement (each measured three times; the median is reported).
    #[arg(long, default_value_t = 2000)]
    calls: u32,
    /// Concurrent connections sending batches.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measure only the components given with --component, not the examples.
    #[arg(long)]
    only_components: bool,
    /// Another component to measure per event, NAME=PATH (repeatable).
    #[arg(long = "component", value_parser = named_path)]
    components: Vec<(String, std::path::PathBuf)>,
    /// Each plugin's time limit per call in the end-to-end scenarios.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Use this broker instead of starting one.
    #[arg(long, env = "SLUICE_TEST_KAFKA")]
    bootstrap: Option<String>,
}

fn named_path(text: &str) -> Result<(String, std::path::PathBuf), String> {
    text.split_once('=').map(|(n, p)| (n.to_owned(), p.into())).ok_or_else(|| format!("'{text}' is not NAME=PATH"))
}

const LANGS: [&str; 3] = ["rust", "ts", "python"];
const PLUGINS: [&str; 2] = ["noop", "redact"];

fn component(plugin: &str, lang: &str) -> std::path::PathBuf {
    match lang {
        "rust" => plugin_wasm(plugin),
        _ => plugin_component(&format!("{plugin}/{lang}")),
    }
}

/// The benchmark's events, each with an address for `redact` to mask.
fn events() -> Vec<Value> {
    (0..20_000)
        .map(|i| {
            let mut e = event(i);
            e["customer_id"] = json!(format!("customer-{:06}@example.com", i % 50_000));
            e
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let events = events();
    let per_event = per_event(&args, &events)?;
    if args.seconds == 0 {
        report(&args, &per_event, &[]);
        return Ok(());
    }
    let end_to_end = with_broker(args.bootstrap.as_deref(), async |kafka, _| end_to_end(&args, kafka, &events).await)?;
    report(&args, &per_event, &end_to_end);
    Ok(())
}

/// One plugin's per-event figures.
struct Row {
    name: String,
    ns_per_event: f64,
    size: usize,
    slowest: Duration,
    cached_load: Duration,
}

/// Nanoseconds per event of each plugin, median of three runs of `args.calls` batches.
#[allow(clippy::cast_precision_loss)]
fn per_event(args: &Args, events: &[Value]) -> anyhow::Result<Vec<Row>> {
    let host =
        PluginHost::new(EngineLimits::default(), sluice::plugin::default_cache_dir()).map_err(anyhow::Error::msg)?;
    let batch: Vec<Event> = events[..BATCH]
        .iter()
        .map(|e| Event {
            topic: "orders".into(),
            key: None,
            value: e.to_string().into_bytes(),
            headers: vec![],
            timestamp_ms: 0,
        })
        .collect();
    let mut rows = Vec::new();
    let mut measured: Vec<(String, std::path::PathBuf)> = Vec::new();
    for plugin in if args.only_components { &[][..] } else { &PLUGINS[..] } {
        for lang in LANGS {
            measured.push((format!("{plugin} ({lang})"), component(plugin, lang)));
        }
    }
    measured.extend(args.components.iter().cloned());
    {
        for (name, path) in measured {
            let bytes = std::fs::read(&path)?;
            // A start with the compiled component in the disk cache: a fresh host, as after a
            // restart (the cache was filled when the component was built and checked).
            let restarted = PluginHost::new(EngineLimits::default(), sluice::plugin::default_cache_dir())
                .map_err(anyhow::Error::msg)?;
            let started = Instant::now();
            restarted.load("cached", &bytes, Grants::default()).map_err(anyhow::Error::msg)?;
            let cached_load = started.elapsed();
            // A generous limit: the slowest call is reported, not refused.
            let grants = Grants { timeout: Duration::from_secs(5), ..Grants::default() };
            let loaded = host.load(&name.replace([' ', '(', ')'], ""), &bytes, grants).map_err(anyhow::Error::msg)?;
            let slowest = std::cell::Cell::new(Duration::ZERO);
            let call = || {
                let started = Instant::now();
                let decided = loaded.on_produce(&batch).map_err(|e| anyhow::anyhow!("{name}: {e}"));
                slowest.set(slowest.get().max(started.elapsed()));
                decided
            };
            for _ in 0..200 {
                std::hint::black_box(call()?);
            }
            let mut runs = Vec::new();
            for _ in 0..3 {
                let started = Instant::now();
                for _ in 0..args.calls {
                    std::hint::black_box(call()?);
                }
                runs.push(started.elapsed().as_nanos() as f64 / f64::from(args.calls) / BATCH as f64);
            }
            runs.sort_by(f64::total_cmp);
            eprintln!("{name}: {:.0} ns/event (runs {runs:.0?}), slowest batch {:?}", runs[1], slowest.get());
            rows.push(Row { name, ns_per_event: runs[1], size: bytes.len(), slowest: slowest.get(), cached_load });
        }
    }
    Ok(rows)
}

async fn end_to_end(args: &Args, kafka: &Kafka, events: &[Value]) -> anyhow::Result<Vec<(String, Vec<Outcome>)>> {
    let bootstrap = kafka.bootstrap_servers();
    let mut scenarios = vec![("no plugin".to_owned(), unique_name("bench-plain"), None)];
    for plugin in PLUGINS {
        for lang in LANGS {
            let path = tokio::task::spawn_blocking(move || component(plugin, lang)).await?;
            scenarios.push((format!("{plugin} ({lang})"), unique_name(&format!("bench-{plugin}-{lang}")), Some(path)));
        }
    }
    let mut config = format!(
        "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[registry]\nurl = \"embedded\"\ntopic = \"{}\"\n\
         [plugin_host]\ntopic = \"{}\"\n",
        unique_name("_bench_schemas"),
        unique_name("_bench_plugins")
    );
    for (n, (_, topic, path)) in scenarios.iter().enumerate() {
        kafka.create_topic(topic, PARTITIONS, &[]).await?;
        let plugins = match path {
            Some(path) => {
                // As many calls at once as connections: the cap is not what is measured here. A
                // batch through the TypeScript or Python redact is ~10 ms of CPU; on two saturated
                // cores, with plugin threads deprioritised after 5 ms, it can take longer than the
                // default 50 ms of wall clock, which would measure the limit, not the plugin.
                config += &format!(
                    "[[plugins]]\nname = \"p{n}\"\npath = \"{}\"\nmax_concurrency = {}\ntimeout_ms = {}\n",
                    path.display(),
                    args.connections,
                    args.timeout_ms
                );
                format!("plugins = [\"p{n}\"]\n")
            }
            None => String::new(),
        };
        config += &format!("[[topics]]\nname = \"{topic}\"\nformat = \"avro\"\nkey = \"/order_id\"\n{plugins}");
    }
    let binary = bench::release_binary()?;
    let mut gateway = GatewayProcess::start("pluginbench", &binary, &config).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    for (_, topic, _) in &scenarios {
        bench::register_schema(&http, gateway.base(), topic).await?;
    }
    let batches: Arc<Vec<String>> =
        Arc::new(events.chunks(BATCH).map(|chunk| Value::Array(chunk.to_vec()).to_string()).collect());
    let measure = Duration::from_secs(args.seconds);
    let mut results: Vec<(String, Vec<Outcome>)> =
        scenarios.iter().map(|(name, _, _)| (name.clone(), Vec::new())).collect();
    for _ in 0..args.rounds.max(1) {
        for ((_, topic, _), (_, outcomes)) in scenarios.iter().zip(&mut results) {
            let url = format!("{}/v1/topics/{topic}/events", gateway.base());
            let outcome =
                http_scenario("batch-100", &http, &url, batches.clone(), BATCH, args.connections, measure).await?;
            eprintln!("{topic}: {:.0} events/s, {} errors", outcome.events_per_sec, outcome.errors);
            outcomes.push(outcome);
        }
    }
    gateway.stop().await?;
    Ok(results)
}

#[allow(clippy::print_stdout, clippy::cast_precision_loss)] // the report is the output
fn report(args: &Args, per_event: &[Row], end_to_end: &[(String, Vec<Outcome>)]) {
    println!("\nper event, batches of 100 ({} batches × 3, median):\n", args.calls);
    println!(
        "| plugin | µs per event | slowest batch | component size | load from the compile cache |\n|---|---|---|---|---|"
    );
    for row in per_event {
        println!(
            "| {} | {:.2} | {:.1} ms | {:.1} MB | {:.0} ms |",
            row.name,
            row.ns_per_event / 1000.0,
            row.slowest.as_secs_f64() * 1000.0,
            row.size as f64 / 1e6,
            row.cached_load.as_secs_f64() * 1000.0
        );
    }
    println!(
        "\nend to end, HTTP batches of 100, Avro, {} connections, {} s per scenario, timeout_ms = {}, per round:\n",
        args.connections, args.seconds, args.timeout_ms
    );
    println!(
        "| route | events/s per round | p50 ms | p99 ms | vs no plugin (median) | failed requests |\n|---|---|---|---|---|---|"
    );
    let median = |outcomes: &[Outcome]| {
        let mut rates: Vec<f64> = outcomes.iter().map(|o| o.events_per_sec).collect();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let baseline = end_to_end.first().map(|(_, o)| median(o)).unwrap_or(f64::NAN);
    for (name, outcomes) in end_to_end {
        let rates: Vec<String> = outcomes.iter().map(|o| format!("{:.0}", o.events_per_sec)).collect();
        let last = outcomes.last().expect("a round");
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.0}% | {} |",
            rates.join(" / "),
            last.p50_ms,
            last.p99_ms,
            median(outcomes) / baseline * 100.0,
            outcomes.iter().map(|o| o.errors).sum::<u64>()
        );
    }
}
