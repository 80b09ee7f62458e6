//! The produce-path benchmark: the gateway (HTTP → Avro validation and encoding → Kafka) against
//! the raw rdkafka producer, on the same broker, in the same run.
//!
//! Scenarios, each after a warm-up:
//! - `gateway-batch`: HTTP requests of 100 events each, from a few concurrent connections;
//! - `gateway-single`: one event per request, from many concurrent connections;
//! - `raw-pipelined`: the raw producer with the gateway's settings (idempotent, `acks=all`, zstd,
//!   linger 5 ms, murmur2) and pre-encoded Avro records, many in flight: the ceiling;
//! - `raw-single`: the raw producer, one awaited send per task, as many tasks as `gateway-single`
//!   has connections: what the gateway's single-event latency is compared with.
//!
//! Run: `cargo run --release -p sluice-tests --bin loadgen -- --seconds 20`. Without
//! `--bootstrap` it starts its own broker with the test harness. The gateway runs in this process
//! on its own runtime; everything shares the machine, as it would on a small node.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sluice::codec::Codec;
use sluice::codec::SchemaType;
use sluice_tests::bench::{self, SCHEMA, event, raw_producer, with_broker};
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
    /// Run the batch scenario with and without the no-op plugin this many times, alternating
    /// (their ratio moves with the broker's state; alternating evens that out).
    #[arg(long, default_value_t = 2)]
    plugin_rounds: usize,
    /// Write the results as JSON here as well.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

const BATCH: usize = 100;
const PARTITIONS: i32 = 3;

#[derive(Debug)]
struct Outcome {
    name: &'static str,
    events_per_sec: f64,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
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
    for topic in [&gateway_topic, &plugin_topic, &raw_topic] {
        kafka.create_topic(topic, PARTITIONS, &[]).await?;
    }

    let config = sluice::config::load_str(
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
             [registry]\nurl = \"embedded\"\ntopic = \"{registry}\"\n\
             [plugin_host]\ntopic = \"{plugins}\"\n\
             [[plugins]]\nname = \"noop\"\npath = \"{noop}\"\n\
             [[topics]]\nname = \"{gateway_topic}\"\nformat = \"avro\"\nkey = \"/order_id\"\n\
             [[topics]]\nname = \"{plugin_topic}\"\nformat = \"avro\"\nkey = \"/order_id\"\nplugins = [\"noop\"]\n",
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
                    codec.encode(schema_id, e, "", true).unwrap_or_default(),
                )
            })
            .collect(),
    );
    eprintln!("Avro records average {} bytes", records.iter().map(|r| r.1.len()).sum::<usize>() / records.len());

    let measure = Duration::from_secs(args.seconds);
    let url = format!("{base}/v1/topics/{gateway_topic}/events");
    let mut outcomes = Vec::new();
    let plugin_url = format!("{base}/v1/topics/{plugin_topic}/events");
    for _ in 0..args.plugin_rounds.max(1) {
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
    }
    outcomes.push(http_scenario("gateway-single", &http, &url, singles, 1, args.single_connections, measure).await?);
    let producer = raw_producer(&bootstrap)?;
    outcomes.push(raw_pipelined(&producer, &raw_topic, records.clone(), measure).await?);
    outcomes.push(raw_single(&producer, &raw_topic, records, args.single_connections, measure).await?);

    server.spawn(gateway.stop()).await??;
    print_report(args, &outcomes);
    plugin_overhead(&events)?;
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

/// Runs `connections` loops, each sending a body and awaiting its answer, for warm-up + `measure`.
async fn http_scenario(
    name: &'static str,
    http: &reqwest::Client,
    url: &str,
    bodies: Arc<Vec<String>>,
    events_per_body: usize,
    connections: usize,
    measure: Duration,
) -> anyhow::Result<Outcome> {
    let clock = Clock::start(measure);
    let tasks: Vec<_> = (0..connections)
        .map(|worker| {
            let (http, url, bodies, clock) = (http.clone(), url.to_owned(), bodies.clone(), clock.clone());
            tokio::spawn(async move {
                let mut latencies = new_histogram();
                let (mut requests, mut errors) = (0u64, 0u64);
                let mut i = worker * 7919;
                while !clock.finished() {
                    let body = bodies[i % bodies.len()].clone();
                    i += connections;
                    let started = Instant::now();
                    let ok = match http.post(&url).header("content-type", "application/json").body(body).send().await {
                        Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if clock.measuring(started) {
                        requests += 1;
                        errors += u64::from(!ok);
                        record(&mut latencies, started.elapsed());
                    }
                }
                (latencies, requests, errors)
            })
        })
        .collect();
    let (latencies, requests, errors) = join_counts(tasks).await?;
    Ok(outcome(name, &latencies, requests, requests * events_per_body as u64, errors, measure))
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
    let clock = Clock::start(measure);
    let handles: Vec<_> = (0..tasks)
        .map(|worker| {
            let (producer, topic, records, clock) =
                (producer.clone(), topic.to_owned(), records.clone(), clock.clone());
            tokio::spawn(async move {
                let mut latencies = new_histogram();
                let (mut sent, mut errors) = (0u64, 0u64);
                let mut i = worker * 7919;
                while !clock.finished() {
                    let (key, payload) = &records[i % records.len()];
                    i += tasks;
                    let started = Instant::now();
                    let ok = match producer.send_result(FutureRecord::to(&topic).key(key).payload(payload)) {
                        Ok(delivery) => matches!(delivery.await, Ok(Ok(_))),
                        Err(_) => false,
                    };
                    if clock.measuring(started) {
                        sent += 1;
                        errors += u64::from(!ok);
                        record(&mut latencies, started.elapsed());
                    }
                }
                (latencies, sent, errors)
            })
        })
        .collect();
    let (latencies, sent, errors) = join_counts(handles).await?;
    Ok(outcome("raw-single", &latencies, sent, sent, errors, measure))
}

/// Warm-up, then a measured window; a sample counts if it started inside the window.
#[derive(Clone)]
struct Clock {
    measure_from: Instant,
    end: Instant,
    done: Arc<AtomicBool>,
}

impl Clock {
    fn start(measure: Duration) -> Self {
        let measure_from = Instant::now() + measure / 5;
        Self { measure_from, end: measure_from + measure, done: Arc::default() }
    }

    fn finished(&self) -> bool {
        if self.done.load(Ordering::Relaxed) {
            return true;
        }
        let over = Instant::now() >= self.end;
        if over {
            self.done.store(true, Ordering::Relaxed);
        }
        over
    }

    fn measuring(&self, started: Instant) -> bool {
        started >= self.measure_from && started < self.end
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000);
    histogram.saturating_record(micros);
}

async fn join_counts(
    tasks: Vec<tokio::task::JoinHandle<(Histogram<u64>, u64, u64)>>,
) -> anyhow::Result<(Histogram<u64>, u64, u64)> {
    let mut total = new_histogram();
    let (mut count, mut errors) = (0, 0);
    for task in tasks {
        let (histogram, n, e) = task.await?;
        total.add(histogram)?;
        count += n;
        errors += e;
    }
    Ok((total, count, errors))
}

fn outcome(
    name: &'static str,
    latencies: &Histogram<u64>,
    requests: u64,
    events: u64,
    errors: u64,
    measure: Duration,
) -> Outcome {
    let seconds = measure.as_secs_f64();
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    Outcome {
        name,
        events_per_sec: events as f64 / seconds,
        requests_per_sec: requests as f64 / seconds,
        p50_ms: latencies.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: latencies.value_at_quantile(0.99) as f64 / 1000.0,
        errors,
    }
}

#[allow(clippy::print_stdout)] // the report is the output
fn print_report(args: &Args, outcomes: &[Outcome]) {
    println!("| scenario | concurrency | events/s | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    for o in outcomes {
        let concurrency = match o.name {
            "gateway-batch" | "gateway-batch-noop-plugin" => {
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
    let mean = |name: &str| {
        let rates: Vec<f64> = outcomes.iter().filter(|o| o.name == name).map(|o| o.events_per_sec).collect();
        #[allow(clippy::cast_precision_loss)]
        let n = rates.len() as f64;
        rates.iter().sum::<f64>() / n
    };
    if find("gateway-batch-noop-plugin").is_some() {
        // Each round's pair ran back to back; compare within rounds, then take the median.
        let without = outcomes.iter().filter(|o| o.name == "gateway-batch");
        let with = outcomes.iter().filter(|o| o.name == "gateway-batch-noop-plugin");
        let mut changes: Vec<f64> =
            without.zip(with).map(|(a, b)| 100.0 * (b.events_per_sec / a.events_per_sec - 1.0)).collect();
        changes.sort_by(f64::total_cmp);
        let listed: Vec<String> = changes.iter().map(|c| format!("{c:+.1}%")).collect();
        println!();
        println!(
            "throughput with one no-op plugin, per round: {}; median {:+.1}%",
            listed.join(", "),
            changes[changes.len() / 2]
        );
    }
    if let (Some(single), Some(raw), Some(raw_single)) =
        (find("gateway-single"), find("raw-pipelined"), find("raw-single"))
    {
        println!();
        println!(
            "gateway-batch / raw-pipelined throughput: {:.0}%",
            100.0 * mean("gateway-batch") / raw.events_per_sec
        );
        println!(
            "gateway-single / raw-pipelined throughput: {:.0}%",
            100.0 * single.events_per_sec / raw.events_per_sec
        );
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
    let run = |with_plugin: bool| -> f64 {
        let rounds = 20_000;
        let started = Instant::now();
        for _ in 0..rounds {
            let items = batch.clone();
            let outcome = if with_plugin {
                chain::run(&plugins, items, OnPluginError::Reject)
            } else {
                chain::run(&[], items, OnPluginError::Reject)
            };
            std::hint::black_box(outcome);
        }
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
