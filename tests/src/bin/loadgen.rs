//! The produce-path benchmark: the gateway (HTTP → Avro validation and encoding → Kafka) against
//! the raw rdkafka producer, on the same broker, in the same run.
//!
//! Scenarios, each after a warm-up:
//! - `gateway-batch`: HTTP requests of 100 events each, from a few concurrent connections (and
//!   `gateway-batch-noop-plugin`, the same through a route with the no-op plugin, and
//!   `gateway-batch-protobuf`, the same events to a Protobuf route of the same shape);
//! - `gateway-single`: one event per request, from many concurrent connections;
//! - `raw-pipelined`: the raw producer with the gateway's settings (idempotent, `acks=all`, zstd,
//!   linger 5 ms, murmur2) and pre-encoded Avro records, many in flight: the ceiling;
//! - `raw-single`: the raw producer, one awaited send per task, as many tasks as `gateway-single`
//!   has connections: what the gateway's single-event latency is compared with.
//!
//! The batch scenarios and the ceiling run in rounds (`--rounds`), back to back within a round,
//! and the gateway/ceiling ratio is taken per round: the broker's speed moves during a run.
//!
//! Run: `cargo run --release -p sluice-tests --bin loadgen -- --seconds 20`. Without
//! `--bootstrap` it starts its own broker with the test harness. The gateway runs in this process
//! on its own runtime; everything shares the machine, as it would on a small node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sluice::codec::Codec;
use sluice::codec::SchemaType;
use sluice_tests::bench::load::{Clock, Outcome, closed_loop, http_scenario, new_histogram, outcome, record};
use sluice_tests::bench::{self, BATCH, PARTITIONS, SCHEMA, event, raw_producer, with_broker};
use sluice_tests::{Kafka, unique_name};

// The allocator the sluice binary uses, so the in-process gateway behaves as deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Args {
    /// Measured seconds per scenario (after a warm-up of a fifth of it).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Concurrent connections sending batches of 100.
    #[arg(long, default_value_t = 32)]
    batch_connections: usize,
    /// Concurrent connections sending single events (and raw tasks for `raw-single`).
    #[arg(long, default_value_t = 32)]
    single_connections: usize,
    /// Use this broker instead of starting one.
    #[arg(long, env = "SLUICE_TEST_KAFKA")]
    bootstrap: Option<String>,
    /// Rounds of the batch scenarios: each runs the gateway without and with the no-op plugin,
    /// then the raw producer's ceiling, back to back. Ratios are taken within a round (the
    /// broker's state moves between rounds: a fresh broker is still warming up in the first),
    /// and their median reported.
    #[arg(long, alias = "plugin-rounds", default_value_t = 3)]
    rounds: usize,
    /// Write the results as JSON here as well.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    with_broker(args.bootstrap.as_deref(), async |kafka, server| run(&args, kafka, server).await)
}

async fn run(args: &Args, kafka: &Kafka, server: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let bootstrap = kafka.bootstrap_servers();
    let gateway_topic = unique_name("bench-gateway");
    let plugin_topic = unique_name("bench-plugin");
    let raw_topic = unique_name("bench-raw");
    let protobuf_topic = unique_name("bench-protobuf");
    for topic in [&gateway_topic, &plugin_topic, &raw_topic, &protobuf_topic] {
        kafka.create_topic(topic, PARTITIONS, &[]).await?;
    }

    let config = sluice::config::load_str(
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
             [registry]\nurl = \"embedded\"\ntopic = \"{registry}\"\n\
             [plugin_host]\ntopic = \"{plugins}\"\n\
             [[plugins]]\nname = \"noop\"\npath = \"{noop}\"\n\
             [[topics]]\nname = \"{gateway_topic}\"\nformat = \"avro\"\nkey = \"/order_id\"\n\
             [[topics]]\nname = \"{plugin_topic}\"\nformat = \"avro\"\nkey = \"/order_id\"\nplugins = [\"noop\"]\n\
             [[topics]]\nname = \"{protobuf_topic}\"\nformat = \"protobuf\"\nkey = \"/order_id\"\n",
            registry = unique_name("_bench_schemas"),
            plugins = unique_name("_bench_plugins"),
            noop = sluice_tests::plugin_wasm("noop").display(),
        ),
        |_| None,
    )
    .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gateway = server.spawn(sluice::Gateway::start(config)).await??;
    let base = format!("http://{}", gateway.addr());
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let schema_id = bench::register_schema(&http, &base, &gateway_topic).await?;
    bench::register_schema(&http, &base, &plugin_topic).await?;
    bench::register_protobuf_schema(&http, &base, &protobuf_topic).await?;

    let events: Vec<Value> = (0..20_000).map(event).collect();
    let sizes: usize = events.iter().map(|e| e.to_string().len()).sum();
    eprintln!("events average {} bytes of JSON", sizes / events.len());
    let batches: Arc<Vec<String>> =
        Arc::new(events.chunks(BATCH).map(|chunk| Value::Array(chunk.to_vec()).to_string()).collect());
    let singles: Arc<Vec<String>> = Arc::new(events.iter().map(Value::to_string).collect());
    let codec = Codec::compile(SchemaType::Avro, SCHEMA).map_err(anyhow::Error::msg)?;
    let records: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        events
            .iter()
            .map(|e| {
                (
                    e["order_id"].as_str().unwrap_or_default().to_owned(),
                    codec.encode(schema_id, &sluice::codec::json::Json::from(e), "", true, None).unwrap_or_default(),
                )
            })
            .collect(),
    );
    eprintln!("Avro records average {} bytes", records.iter().map(|r| r.1.len()).sum::<usize>() / records.len());

    let measure = Duration::from_secs(args.seconds);
    let url = format!("{base}/v1/topics/{gateway_topic}/events");
    let mut outcomes = Vec::new();
    let plugin_url = format!("{base}/v1/topics/{plugin_topic}/events");
    let protobuf_url = format!("{base}/v1/topics/{protobuf_topic}/events");
    let producer = raw_producer(&bootstrap)?;
    for _ in 0..args.rounds.max(1) {
        outcomes.push(
            http_scenario("gateway-batch", &http, &url, batches.clone(), BATCH, args.batch_connections, measure)
                .await?,
        );
        outcomes.push(
            http_scenario(
                "gateway-batch-noop-plugin",
                &http,
                &plugin_url,
                batches.clone(),
                BATCH,
                args.batch_connections,
                measure,
            )
            .await?,
        );
        outcomes.push(
            http_scenario(
                "gateway-batch-protobuf",
                &http,
                &protobuf_url,
                batches.clone(),
                BATCH,
                args.batch_connections,
                measure,
            )
            .await?,
        );
        outcomes.push(raw_pipelined(&producer, &raw_topic, records.clone(), measure).await?);
    }
    outcomes.push(http_scenario("gateway-single", &http, &url, singles, 1, args.single_connections, measure).await?);
    outcomes.push(raw_single(&producer, &raw_topic, records, args.single_connections, measure).await?);

    server.spawn(gateway.stop()).await??;
    print_report(args, &outcomes);
    // It builds a runtime of its own, which cannot be done on this one's threads.
    std::thread::scope(|scope| scope.spawn(|| plugin_overhead(&events)).join())
        .map_err(|_| anyhow::anyhow!("the plugin overhead measurement panicked"))??;
    if let Some(path) = &args.json {
        let rows: Vec<Value> = outcomes
            .iter()
            .map(|o| json!({"scenario": o.name, "events_per_sec": o.events_per_sec, "requests_per_sec": o.requests_per_sec, "p50_ms": o.p50_ms, "p99_ms": o.p99_ms, "errors": o.errors}))
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    if outcomes.iter().any(|o| o.errors > 0) {
        bail!("some requests failed; the figures are not comparable");
    }
    Ok(())
}

/// The ceiling: pre-encoded records, up to 20000 in flight.
async fn raw_pipelined(
    producer: &FutureProducer,
    topic: &str,
    records: Arc<Vec<(String, Vec<u8>)>>,
    measure: Duration,
) -> anyhow::Result<Outcome> {
    const WINDOW: usize = 20_000;
    let clock = Clock::start(measure);
    let mut latencies = new_histogram();
    let (mut sent, mut errors) = (0u64, 0u64);
    let mut in_flight = FuturesUnordered::new();
    let mut i = 0;
    while !clock.finished() {
        while in_flight.len() < WINDOW {
            let (key, payload) = &records[i % records.len()];
            i += 1;
            let started = Instant::now();
            match producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
                Ok(delivery) => in_flight.push(async move { (started, delivery.await) }),
                Err(_) => break,
            }
        }
        if let Some((started, result)) = in_flight.next().await
            && clock.measuring(started)
        {
            sent += 1;
            errors += u64::from(!matches!(result, Ok(Ok(_))));
            record(&mut latencies, started.elapsed());
        }
    }
    while in_flight.next().await.is_some() {}
    Ok(outcome("raw-pipelined", &latencies, sent, sent, errors, measure))
}

/// One awaited send per task: the latency floor for single events.
async fn raw_single(
    producer: &FutureProducer,
    topic: &str,
    records: Arc<Vec<(String, Vec<u8>)>>,
    tasks: usize,
    measure: Duration,
) -> anyhow::Result<Outcome> {
    let (producer, topic) = (producer.clone(), Arc::<str>::from(topic));
    let (latencies, sent, errors) = closed_loop(tasks, measure, move |i| {
        let (producer, topic, records) = (producer.clone(), topic.clone(), records.clone());
        async move {
            let (key, payload) = &records[i % records.len()];
            match producer.send_result(FutureRecord::to(&topic).key(key).payload(payload)) {
                Ok(delivery) => matches!(delivery.await, Ok(Ok(_))),
                Err(_) => false,
            }
        }
    })
    .await?;
    Ok(outcome("raw-single", &latencies, sent, sent, errors, measure))
}

#[allow(clippy::print_stdout)] // the report is the output
fn print_report(args: &Args, outcomes: &[Outcome]) {
    println!("| scenario | concurrency | events/s | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    for o in outcomes {
        let concurrency = match o.name {
            "gateway-batch" | "gateway-batch-noop-plugin" | "gateway-batch-protobuf" => {
                format!("{} connections × {BATCH} events", args.batch_connections)
            }
            "raw-pipelined" => "20000 in flight".to_owned(),
            _ => format!("{}", args.single_connections),
        };
        println!(
            "| {} | {concurrency} | {:.0} | {:.0} | {:.2} | {:.2} | {} |",
            o.name, o.events_per_sec, o.requests_per_sec, o.p50_ms, o.p99_ms, o.errors
        );
    }
    let find = |name: &str| outcomes.iter().find(|o| o.name == name);
    let rates = |name: &str| outcomes.iter().filter(|o| o.name == name).map(|o| o.events_per_sec).collect::<Vec<_>>();
    let (without, with, ceiling) = (rates("gateway-batch"), rates("gateway-batch-noop-plugin"), rates("raw-pipelined"));
    // Each round's scenarios ran back to back: compare within rounds, then take the median.
    let per_round = |a: &[f64], b: &[f64], f: fn(f64, f64) -> f64| {
        let mut values: Vec<f64> = a.iter().zip(b).map(|(a, b)| f(*a, *b)).collect();
        values.sort_by(f64::total_cmp);
        let listed: Vec<String> = values.iter().map(|v| format!("{v:.1}%")).collect();
        (listed.join(", "), values.get(values.len() / 2).copied().unwrap_or(f64::NAN))
    };
    println!();
    let (listed, median) = per_round(&without, &with, |a, b| 100.0 * (b / a - 1.0));
    println!("throughput with one no-op plugin vs without, per round: {listed}; median {median:+.1}%");
    let (listed, median) = per_round(&without, &ceiling, |a, b| 100.0 * a / b);
    println!("gateway-batch / raw-pipelined throughput, per round: {listed}; median {median:.0}%");
    let (listed, median) = per_round(&without, &rates("gateway-batch-protobuf"), |a, b| 100.0 * b / a);
    println!("gateway-batch-protobuf / gateway-batch (Avro) throughput, per round: {listed}; median {median:.0}%");
    if let (Some(single), Some(raw_single)) = (find("gateway-single"), find("raw-single")) {
        println!(
            "gateway-single p99 − raw-single p99: {:+.2} ms (p50 {:+.2} ms)",
            single.p99_ms - raw_single.p99_ms,
            single.p50_ms - raw_single.p50_ms
        );
    }
}

/// The cost a no-op plugin adds per event on the produce path, in batches of 100: the whole
/// chain step (events converted for the plugin, the call, actions applied) against the same
/// batches without it. No Kafka, no HTTP: this is the plugin's own overhead.
#[allow(clippy::print_stdout, clippy::cast_precision_loss)] // the report is the output
fn plugin_overhead(events: &[Value]) -> anyhow::Result<()> {
    use sluice::config::OnPluginError;
    use sluice::plugin::bindings::Event;
    use sluice::plugin::chain::{self, Item};
    use sluice::plugin::{EngineLimits, Grants, PluginHost};

    let host = PluginHost::new(EngineLimits::default(), None).map_err(anyhow::Error::msg)?;
    let bytes = std::fs::read(sluice_tests::plugin_wasm("noop"))?;
    let noop = host.load("noop", &bytes, Grants::default()).map_err(anyhow::Error::msg)?;
    let batch: Vec<Item> = events[..BATCH]
        .iter()
        .enumerate()
        .map(|(origin, e)| Item {
            origin,
            key_set: false,
            event: Event {
                topic: "t".into(),
                key: None,
                value: e.to_string().into_bytes(),
                headers: vec![],
                timestamp_ms: 0,
            },
        })
        .collect();
    let plugins = [("noop".to_owned(), Some(noop.clone()))];
    // The chain hands each call to the blocking pool, as on the gateway's own runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let run = |with_plugin: bool| -> f64 {
        let rounds = 20_000;
        let started = Instant::now();
        runtime.block_on(async {
            for _ in 0..rounds {
                let items = batch.clone();
                let outcome = if with_plugin {
                    chain::run_produce(&plugins, items, OnPluginError::Reject).await
                } else {
                    chain::run_produce(&[], items, OnPluginError::Reject).await
                };
                std::hint::black_box(outcome);
            }
        });
        started.elapsed().as_nanos() as f64 / f64::from(rounds) / BATCH as f64
    };
    run(true);
    let (without, with) = (run(false), run(true));
    let call_only = {
        let events: Vec<Event> = batch.iter().map(|i| i.event.clone()).collect();
        let rounds = 20_000;
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(noop.on_produce(&events).map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        started.elapsed().as_nanos() as f64 / f64::from(rounds) / BATCH as f64
    };
    println!();
    println!(
        "no-op plugin, batches of {BATCH} events: {:.0} ns/event added ({with:.0} with, {without:.0} without); the call alone {call_only:.0} ns/event",
        with - without
    );
    Ok(())
}
