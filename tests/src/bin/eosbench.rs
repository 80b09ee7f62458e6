//! What exactly-once costs, in one run on one broker:
//! - `batch-100` vs `batch-100-atomic`: HTTP batches of 100 Avro events, without and with
//!   `?atomic=true` (one Kafka transaction per request);
//! - `single` vs `single-idempotency-key`: one event per request, without a key and with a
//!   fresh `Idempotency-Key` per request (a transaction with a claim and an outcome record, kept
//!   for every replica);
//! - `transform-at-least-once` vs `transform-exactly-once`: the same `[[transforms]]` entry (the
//!   no-op plugin, JSON in and out) draining the same input topic, with `exactly_once = false`
//!   and `true`: records per second from its first committed batch to its last.
//!
//! The HTTP pairs run back to back in each of `--rounds` rounds and are compared within a round.
//!
//! Run: `cargo run --release -p sluice-tests --bin eosbench -- --seconds 15 --rounds 3`. Without
//! `--bootstrap` it starts its own broker with the test harness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::producer::FutureRecord;
use serde_json::Value;
use sluice_tests::bench::load::{Outcome, closed_loop, http_scenario, outcome};
use sluice_tests::bench::{self, BATCH, PARTITIONS, event, raw_producer, with_broker};
use sluice_tests::{Kafka, unique_name};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Args {
    /// Measured seconds per HTTP scenario (after a warm-up of a fifth of it).
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Concurrent connections of the HTTP scenarios.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Rounds of the HTTP pairs.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// `exactly_once.producers` of the gateway (default: the configuration's default).
    #[arg(long)]
    producers: Option<usize>,
    /// Input records each transform drains.
    #[arg(long, default_value_t = 200_000)]
    transform_records: usize,
    /// Use this broker instead of starting one.
    #[arg(long, env = "SLUICE_TEST_KAFKA")]
    bootstrap: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    with_broker(args.bootstrap.as_deref(), async |kafka, server| run(&args, kafka, server).await)
}

async fn run(args: &Args, kafka: &Kafka, server: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let bootstrap = kafka.bootstrap_servers();
    let topic = unique_name("bench-eos");
    kafka.create_topic(&topic, PARTITIONS, &[]).await?;
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
         [registry]\nurl = \"embedded\"\ntopic = \"{}\"\n\
         [[topics]]\nname = \"{topic}\"\nformat = \"avro\"\nkey = \"/order_id\"\n{}",
        unique_name("_bench_schemas"),
        args.producers.map(|n| format!("[exactly_once]\nproducers = {n}\n")).unwrap_or_default(),
    );
    let config = sluice::config::load_str(&config, |_| None).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gateway = server.spawn(sluice::Gateway::start(config)).await??;
    let base = format!("http://{}", gateway.addr());
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    bench::register_schema(&http, &base, &topic).await?;

    let events: Vec<Value> = (0..20_000).map(event).collect();
    let batches: Arc<Vec<String>> =
        Arc::new(events.chunks(BATCH).map(|chunk| Value::Array(chunk.to_vec()).to_string()).collect());
    let singles: Arc<Vec<String>> = Arc::new(events.iter().map(Value::to_string).collect());
    let url = format!("{base}/v1/topics/{topic}/events");
    let atomic_url = format!("{url}?atomic=true");
    let measure = Duration::from_secs(args.seconds);
    let mut outcomes = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let n = args.connections;
        outcomes.push(http_scenario("batch-100", &http, &url, batches.clone(), BATCH, n, measure).await?);
        outcomes.push(http_scenario("batch-100-atomic", &http, &atomic_url, batches.clone(), BATCH, n, measure).await?);
        outcomes.push(http_scenario("single", &http, &url, singles.clone(), 1, n, measure).await?);
        outcomes.push(keyed(&http, &url, singles.clone(), n, measure).await?);
    }
    server.spawn(gateway.stop()).await??;

    let input = unique_name("bench-transform-in");
    kafka.create_topic(&input, PARTITIONS, &[]).await?;
    let producer = raw_producer(&bootstrap)?;
    let sends: Vec<_> =
        (0..args.transform_records)
            .map(|i| {
                let body = singles[i % singles.len()].clone();
                let key = format!("k-{i}");
                let producer = producer.clone();
                let input = input.clone();
                async move {
                    producer.send(FutureRecord::to(&input).key(&key).payload(&body), Duration::from_secs(60)).await
                }
            })
            .collect();
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(e, _)| e)?;
    }
    let mut transforms = Vec::new();
    for exactly_once in [false, true] {
        transforms.push(transform(kafka, server, &input, args.transform_records, exactly_once).await?);
    }
    report(args, &outcomes, &transforms);
    Ok(())
}

/// One event per request, each with a new `Idempotency-Key`.
async fn keyed(
    http: &reqwest::Client,
    url: &str,
    bodies: Arc<Vec<String>>,
    connections: usize,
    measure: Duration,
) -> anyhow::Result<Outcome> {
    let (http, url) = (http.clone(), Arc::<str>::from(url));
    let run = unique_name("run");
    let (latencies, requests, errors) = closed_loop(connections, measure, move |i| {
        let (http, url, body, key) =
            (http.clone(), url.clone(), bodies[i % bodies.len()].clone(), format!("{run}-{i}"));
        async move {
            let sent = http
                .post(&*url)
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(body)
                .send()
                .await;
            match sent {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await?;
    Ok(outcome("single-idempotency-key", &latencies, requests, requests, errors, measure))
}

/// Drains `input` through a transform; records per second from its first committed batch to
/// its last, read from its own metric.
async fn transform(
    kafka: &Kafka,
    server: &tokio::runtime::Handle,
    input: &str,
    records: usize,
    exactly_once: bool,
) -> anyhow::Result<(&'static str, f64)> {
    let output = unique_name("bench-transform-out");
    kafka.create_topic(&output, PARTITIONS, &[]).await?;
    let name = unique_name("bench");
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
         [registry]\nurl = \"embedded\"\ntopic = \"{registry}\"\n\
         [plugin_host]\ntopic = \"{plugins}\"\n\
         [[plugins]]\nname = \"noop\"\npath = \"{noop}\"\n\
         [[topics]]\nname = \"{output}\"\nformat = \"json\"\nkey = \"/order_id\"\n\
         [[transforms]]\nname = \"{name}\"\ninputs = [\"{input}\"]\noutput = \"{output}\"\nplugins = [\"noop\"]\n\
         exactly_once = {exactly_once}\n",
        bootstrap = kafka.bootstrap_servers(),
        registry = unique_name("_bench_schemas"),
        plugins = unique_name("_bench_plugins"),
        noop = sluice_tests::plugin_wasm("noop").display(),
    );
    let config = sluice::config::load_str(&config, |_| None).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gateway = server.spawn(sluice::Gateway::start(config)).await??;
    let metrics = format!("http://{}/metrics", gateway.addr());
    let needle = format!("sluice_transform_records_total{{transform=\"{name}\",outcome=\"transformed\"}} ");
    let http = reqwest::Client::new();
    let mut done = 0u64;
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while done < records as u64 {
        anyhow::ensure!(Instant::now() < deadline, "the transform did not finish in time");
        let text = http.get(&metrics).send().await?.text().await?;
        let count = text
            .lines()
            .find_map(|line| line.strip_prefix(&needle))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        if count > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        done = count;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = first.map_or(Duration::ZERO, |f| f.elapsed());
    server.spawn(gateway.stop()).await??;
    let label = if exactly_once { "transform-exactly-once" } else { "transform-at-least-once" };
    Ok((label, records as f64 / took.as_secs_f64().max(1e-3)))
}

#[allow(clippy::print_stdout)] // the report is the output
fn report(args: &Args, outcomes: &[Outcome], transforms: &[(&'static str, f64)]) {
    println!("| scenario | events/s | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|");
    for o in outcomes {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {} |",
            o.name, o.events_per_sec, o.requests_per_sec, o.p50_ms, o.p99_ms, o.errors
        );
    }
    let rates = |name: &str| outcomes.iter().filter(|o| o.name == name).map(|o| o.events_per_sec).collect::<Vec<_>>();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let ratio =
        |with: &str, without: &str| median(rates(with).iter().zip(rates(without)).map(|(w, wo)| w / wo).collect());
    println!();
    let producers = args.producers.map_or_else(|| "the default number of".to_owned(), |n| n.to_string());
    println!(
        "{} connections, {producers} transactional producers; medians of {} rounds, each pair compared within its round:",
        args.connections, args.rounds
    );
    println!(
        "- atomic batches of 100: {:.0}% of non-atomic throughput",
        100.0 * ratio("batch-100-atomic", "batch-100")
    );
    println!("- Idempotency-Key single events: {:.0}% of plain", 100.0 * ratio("single-idempotency-key", "single"));
    for (name, rate) in transforms {
        println!("- {name}: {rate:.0} records/s ({} records)", args.transform_records);
    }
    if let [(_, alo), (_, eos)] = transforms {
        println!("- exactly-once transform: {:.0}% of at-least-once", 100.0 * eos / alo);
    }
}
