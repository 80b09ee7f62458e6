//! The delivery benchmark: webhook deliveries per second from a Kafka topic to a local HTTP
//! receiver, signed, with per-key ordering, against the HTTP ceiling of the same receiver in the
//! same run.
//!
//! Scenarios, each over the same pre-produced records (Avro, Confluent-framed, keyed by customer
//! so that every key has many events), after a `warm-up` subscription has delivered them all once:
//! - `sluice-key-order`: a subscription from `earliest` with per-key ordering (the default);
//! - `sluice-partition-order`: the same in strict per-partition order;
//! - `http-ceiling`: a plain HTTP client posting the same JSON bodies to the same receiver, as
//!   many in flight as the subscription's concurrency — no Kafka, no decoding, no signing: the
//!   most this client/receiver pair does on this machine.
//!
//! The receiver checks, for the Sluice scenarios, that each key's offsets arrive in increasing
//! order and counts violations. A rate is events / (last arrival − first arrival), so consumer
//! group start-up is not counted.
//!
//! Run: `cargo run --release -p sluice-tests --bin deliverbench`. Without `--bootstrap` it
//! starts its own broker with the test harness. The gateway runs in this process on its own
//! runtime; the receiver and the ceiling client share another.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clap::Parser;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use rdkafka::producer::FutureRecord;
use serde_json::{Value, json};
use sluice::codec::{Codec, SchemaType};
use sluice_tests::bench::{self, SCHEMA, event, raw_producer, with_broker};
use sluice_tests::{Kafka, unique_name};

// The allocator the sluice binary uses, so the in-process gateway behaves as deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Args {
    /// Records produced beforehand and delivered by each scenario.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Distinct keys among them.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// The subscription's concurrency (deliveries in flight), and the ceiling client's.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Use this broker instead of starting one.
    #[arg(long, env = "SLUICE_TEST_KAFKA")]
    bootstrap: Option<String>,
    /// Which scenarios to run (default all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Write the results as JSON here as well.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// How long one scenario may take before the run is called failed.
const SCENARIO_LIMIT: Duration = Duration::from_secs(600);

/// What the receiver saw on one path.
#[derive(Default)]
struct Seen {
    count: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
    /// The last offset seen per (partition, key), for the order check.
    last_offset: Mutex<HashMap<(String, String), i64>>,
    out_of_order: AtomicU64,
    unsigned: AtomicU64,
}

type Paths = Arc<Mutex<HashMap<String, Arc<Seen>>>>;

fn path_state(paths: &Paths, path: &str) -> Arc<Seen> {
    paths.lock().unwrap_or_else(PoisonError::into_inner).entry(path.to_owned()).or_default().clone()
}

async fn receive(State(paths): State<Paths>, Path(path): Path<String>, headers: HeaderMap) -> StatusCode {
    let state = path_state(&paths, &path);
    let now = Instant::now();
    state.first.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(now);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("webhook-signature").is_none_or(|s| !s.starts_with("v1,")) {
        state.unsigned.fetch_add(1, Ordering::Relaxed);
    }
    if let (Some(partition), Some(key), Some(offset)) =
        (header("sluice-partition"), header("sluice-key"), header("sluice-offset").and_then(|o| o.parse().ok()))
    {
        let mut last = state.last_offset.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = last.insert((partition.to_owned(), key.to_owned()), offset);
        if previous.is_some_and(|p| p >= offset) {
            state.out_of_order.fetch_add(1, Ordering::Relaxed);
        }
    }
    *state.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    state.count.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

#[derive(Debug)]
struct Outcome {
    name: &'static str,
    events: u64,
    seconds: f64,
    out_of_order: u64,
    unsigned: u64,
}

impl Outcome {
    #[allow(clippy::cast_precision_loss)]
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    with_broker(args.bootstrap.as_deref(), async |kafka, server| run(&args, kafka, server).await)
}

async fn run(args: &Args, kafka: &Kafka, server: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let bootstrap = kafka.bootstrap_servers();
    let topic = unique_name("bench-deliver");
    let dlq = format!("{topic}-dlq");
    kafka.create_topic(&topic, args.partitions, &[]).await?;
    kafka.create_topic(&dlq, 1, &[]).await?;

    let paths: Paths = Paths::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}", listener.local_addr()?);
    let app = Router::new().route("/{*path}", post(receive)).with_state(paths.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = sluice::config::load_str(
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
             [registry]\nurl = \"embedded\"\ntopic = \"{registry}\"\n\
             [delivery]\ntopic = \"{subscriptions}\"\nallow_networks = [\"127.0.0.0/8\"]\n",
            registry = unique_name("_bench_schemas"),
            subscriptions = unique_name("_bench_subscriptions"),
        ),
        |_| None,
    )
    .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gateway = server.spawn(sluice::Gateway::start(config)).await??;
    let base = format!("http://{}", gateway.addr());
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let schema_id = bench::register_schema(&http, &base, &topic).await?;
    eprintln!("gateway at {base}, receiver at {receiver}");

    let events: Vec<Value> = (0..args.events).map(event).collect();
    produce(&bootstrap, &topic, schema_id, &events, args.keys).await?;
    eprintln!("produced {} records with {} keys over {} partitions", args.events, args.keys, args.partitions);

    let mut outcomes = Vec::new();
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    // The warm-up delivers everything once too (a fresh broker JIT-compiles its fetch path
    // meanwhile, which would otherwise be measured); its figure is shown, not compared.
    let scenarios = [("warm-up", "key"), ("sluice-key-order", "key"), ("sluice-partition-order", "partition")];
    for (name, ordering) in scenarios {
        if name != "warm-up" && !wanted(name) {
            continue;
        }
        let subscription = json!({
            "name": name, "topics": [topic], "url": format!("{receiver}/{name}"), "secrets": [SECRET],
            "start": "earliest", "concurrency": args.concurrency, "ordering": ordering,
            "dead_letter_topic": dlq,
        });
        let response = http.post(format!("{base}/v1/subscriptions")).json(&subscription).send().await?;
        if !response.status().is_success() {
            bail!("creating {name}: {}", response.text().await?);
        }
        let outcome = wait_for(name, &paths, args.events).await?;
        let status: Value = http.get(format!("{base}/v1/subscriptions/{name}")).send().await?.json().await?;
        if status["dead_lettered"].as_u64() != Some(0) {
            bail!("{name} dead-lettered events: {status}");
        }
        // Each scenario has the machine to itself.
        http.delete(format!("{base}/v1/subscriptions/{name}")).send().await?.error_for_status()?;
        outcomes.push(outcome);
    }
    let bodies: Vec<String> = events.iter().map(Value::to_string).collect();
    if wanted("http-ceiling") {
        outcomes.push(ceiling(&http, &format!("{receiver}/http-ceiling"), &bodies, args.concurrency, &paths).await?);
    }
    server.spawn(gateway.stop()).await??;

    report(args, &outcomes);
    if let Some(path) = &args.json {
        let rows: Vec<Value> = outcomes
            .iter()
            .map(|o| json!({"scenario": o.name, "events_per_sec": o.rate(), "events": o.events, "out_of_order": o.out_of_order}))
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    if outcomes.iter().any(|o| o.out_of_order > 0 || o.unsigned > 0) {
        bail!("deliveries arrived out of key order or unsigned");
    }
    Ok(())
}

/// Produces the events, Avro-encoded, keyed by `customer-{i % keys}`, and waits for every ack.
async fn produce(bootstrap: &str, topic: &str, schema_id: u32, events: &[Value], keys: usize) -> anyhow::Result<()> {
    const WINDOW: usize = 20_000;
    let codec = Codec::compile(SchemaType::Avro, SCHEMA).map_err(anyhow::Error::msg)?;
    let producer = raw_producer(bootstrap)?;
    let mut in_flight = FuturesUnordered::new();
    for (i, event) in events.iter().enumerate() {
        let payload = codec
            .encode(schema_id, &sluice::codec::json::Json::from(event), "", true, None)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let key = format!("customer-{:06}", i % keys.max(1));
        let delivery = producer
            .send_result(FutureRecord::to(topic).key(&key).payload(&payload))
            .map_err(|(e, _)| anyhow::anyhow!("enqueue: {e}"))?;
        in_flight.push(delivery);
        if in_flight.len() >= WINDOW {
            in_flight.next().await.context("a delivery")?.context("cancelled")?.map_err(|(e, _)| e)?;
        }
    }
    while let Some(result) = in_flight.next().await {
        result.context("cancelled")?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// Waits until `path` has received `count` requests; the rate runs from the first to the last.
async fn wait_for(name: &'static str, paths: &Paths, count: usize) -> anyhow::Result<Outcome> {
    let state = path_state(paths, name);
    let deadline = Instant::now() + SCENARIO_LIMIT;
    let mut reported = Instant::now();
    while state.count.load(Ordering::Relaxed) < count as u64 {
        if Instant::now() > deadline {
            bail!("{name}: only {} of {count} delivered after {SCENARIO_LIMIT:?}", state.count.load(Ordering::Relaxed));
        }
        if reported.elapsed() > Duration::from_secs(5) {
            eprintln!("{name}: {} of {count}", state.count.load(Ordering::Relaxed));
            reported = Instant::now();
        }
        // A progress poll, not synchronisation: the count is the condition.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = state.first.lock().unwrap_or_else(PoisonError::into_inner).context("no first arrival")?;
    let last = state.last.lock().unwrap_or_else(PoisonError::into_inner).context("no last arrival")?;
    Ok(Outcome {
        name,
        events: state.count.load(Ordering::Relaxed),
        seconds: (last - first).as_secs_f64(),
        out_of_order: state.out_of_order.load(Ordering::Relaxed),
        unsigned: state.unsigned.load(Ordering::Relaxed),
    })
}

/// The same bodies, posted by a plain client with `concurrency` in flight.
async fn ceiling(
    http: &reqwest::Client,
    url: &str,
    bodies: &[String],
    concurrency: usize,
    paths: &Paths,
) -> anyhow::Result<Outcome> {
    let mut in_flight = FuturesUnordered::new();
    let mut failed = 0u64;
    for (i, body) in bodies.iter().enumerate() {
        let request = http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", format!("msg_{i}"))
            .header("webhook-timestamp", "1795773600")
            .header("webhook-signature", "v1,unsigned-ceiling")
            .body(body.clone())
            .send();
        in_flight.push(request);
        if in_flight.len() >= concurrency
            && let Some(result) = in_flight.next().await
        {
            failed += u64::from(!result.is_ok_and(|r| r.status().is_success()));
        }
    }
    while let Some(result) = in_flight.next().await {
        failed += u64::from(!result.is_ok_and(|r| r.status().is_success()));
    }
    if failed > 0 {
        bail!("{failed} ceiling requests failed");
    }
    wait_for("http-ceiling", paths, bodies.len()).await
}

#[allow(clippy::print_stdout)] // the report is the output
fn report(args: &Args, outcomes: &[Outcome]) {
    println!(
        "{} events, {} keys, {} partitions, concurrency {}",
        args.events, args.keys, args.partitions, args.concurrency
    );
    println!("| scenario | events/s | seconds | out of order |");
    println!("|---|---|---|---|");
    for o in outcomes {
        println!("| {} | {:.0} | {:.2} | {} |", o.name, o.rate(), o.seconds, o.out_of_order);
    }
    if let (Some(sluice), Some(ceiling)) =
        (outcomes.iter().find(|o| o.name == "sluice-key-order"), outcomes.iter().find(|o| o.name == "http-ceiling"))
    {
        println!();
        println!("sluice-key-order / http-ceiling: {:.0}%", 100.0 * sluice.rate() / ceiling.rate());
    }
}
