//! The deployed binary's footprint: how long `sluice serve` takes to become ready, and how much
//! memory it holds idle and under load.
//!
//! It runs the release `sluice` binary as a child process, as in production, against its own
//! broker, with the embedded registry, one Avro route through the no-op plugin, and one
//! subscription delivering that route's events to a local receiver (so both paths hold buffers).
//!
//! - `start (compiling the plugin)`: the first start, with an empty plugin compile cache;
//! - `start (plugin from the cache)`: each restart after a clean stop (the state topics exist,
//!   the compiled plugin is on disk);
//! - memory: resident set (`VmRSS`) when ready and idle, then its peak (`VmHWM`) after HTTP
//!   batches of 100 events and single-event requests, each for `--seconds`, while the
//!   subscription delivers.
//!
//! Start-up time is from spawning the process to its first successful `/readyz` (polled every
//! 5 ms); it includes connecting to Kafka, reading the state topics and loading the plugin.
//!
//! Run: `cargo run --release -p sluice-tests --bin servebench`. It builds the `sluice` binary
//! (release) itself. Without `--bootstrap` it starts its own broker with the test harness.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use clap::Parser;
use serde_json::{Value, json};
use sluice_tests::bench::load::{Outcome, http_scenario};
use sluice_tests::bench::{self, BATCH, Memory, PARTITIONS, event, memory, with_broker};
use sluice_tests::{GatewayProcess, Kafka, unique_name};

#[derive(Debug, Parser)]
struct Args {
    /// Measured seconds per load scenario (after a warm-up of a fifth of it).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Restarts measured with the plugin in the compile cache.
    #[arg(long, default_value_t = 5)]
    restarts: usize,
    /// Concurrent connections per load scenario.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Leave the subscription out (memory of the produce path alone).
    #[arg(long)]
    no_subscription: bool,
    /// Use this broker instead of starting one.
    #[arg(long, env = "SLUICE_TEST_KAFKA")]
    bootstrap: Option<String>,
    /// Write the results as JSON here as well.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        bail!("run servebench with --release: the figures are about the release binary");
    }
    let binary = bench::release_binary()?;
    with_broker(args.bootstrap.as_deref(), async |kafka, server| run(&args, &binary, kafka, server).await)
}

async fn run(
    args: &Args,
    binary: &std::path::Path,
    kafka: &Kafka,
    server: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let topic = unique_name("bench-serve");
    let dead_letters = format!("{topic}.dlq");
    kafka.create_topic(&topic, PARTITIONS, &[]).await?;
    kafka.create_topic(&dead_letters, 1, &[]).await?;
    let delivered = Arc::new(AtomicU64::new(0));
    let receiver = server.spawn(receiver(delivered.clone())).await??;
    let cache = tempfile::tempdir()?;

    let mut config = format!(
        "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n\
         [registry]\nurl = \"embedded\"\ntopic = \"{registry}\"\n\
         [plugin_host]\ntopic = \"{plugins}\"\ncache_dir = \"{cache}\"\n\
         [[plugins]]\nname = \"noop\"\npath = \"{noop}\"\n\
         [[topics]]\nname = \"{topic}\"\nformat = \"avro\"\nkey = \"/order_id\"\nplugins = [\"noop\"]\n\
         [delivery]\ntopic = \"{subscriptions}\"\nallow_networks = [\"127.0.0.0/8\"]\n",
        bootstrap = kafka.bootstrap_servers(),
        registry = unique_name("_bench_schemas"),
        plugins = unique_name("_bench_plugins"),
        subscriptions = unique_name("_bench_subscriptions"),
        cache = cache.path().display(),
        noop = sluice_tests::plugin_wasm("noop").display(),
    );
    if !args.no_subscription {
        config.push_str(&format!(
            "[[subscriptions]]\nname = \"bench\"\ntopics = [\"{topic}\"]\nurl = \"http://{receiver}/hook\"\n\
         secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\ndead_letter_topic = \"{dead_letters}\"\n\
         concurrency = 64\n"
        ));
    }

    let mut gateway = GatewayProcess::start("sluice", binary, &config).await?;
    let cold = gateway.ready_after();
    let mut warm = Vec::with_capacity(args.restarts);
    for _ in 0..args.restarts {
        gateway.stop().await?;
        gateway.restart().await?;
        warm.push(gateway.ready_after());
    }
    warm.sort();

    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let base = gateway.base().to_owned();
    bench::register_schema(&http, &base, &topic).await?;
    let pid = gateway.pid().context("the gateway is not running")?;
    let idle = memory(pid)?;

    let events: Vec<Value> = (0..20_000).map(event).collect();
    let batches: Arc<Vec<String>> =
        Arc::new(events.chunks(BATCH).map(|chunk| Value::Array(chunk.to_vec()).to_string()).collect());
    let singles: Arc<Vec<String>> = Arc::new(events.iter().map(Value::to_string).collect());
    let url = format!("{base}/v1/topics/{topic}/events");
    let measure = Duration::from_secs(args.seconds);
    let outcomes = vec![
        http_scenario("batches of 100", &http, &url, batches, BATCH, args.connections, measure).await?,
        http_scenario("single events", &http, &url, singles, 1, args.connections, measure).await?,
    ];
    let loaded = memory(pid)?;
    let delivered = delivered.load(Ordering::Relaxed);
    gateway.stop().await?;

    let report = Report { cold, warm, idle, loaded, outcomes, delivered };
    report.print(args);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)?;
    }
    if report.outcomes.iter().any(|o| o.errors > 0) {
        bail!("some requests failed; the figures are not comparable");
    }
    if delivered == 0 && !args.no_subscription {
        bail!("the subscription delivered nothing during the load: the consume path was not exercised");
    }
    Ok(())
}

/// A webhook receiver that counts deliveries and answers 204.
async fn receiver(delivered: Arc<AtomicU64>) -> anyhow::Result<SocketAddr> {
    async fn hook(State(delivered): State<Arc<AtomicU64>>) -> StatusCode {
        delivered.fetch_add(1, Ordering::Relaxed);
        StatusCode::NO_CONTENT
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/hook", post(hook)).with_state(delivered);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

struct Report {
    cold: Duration,
    warm: Vec<Duration>,
    idle: Memory,
    loaded: Memory,
    outcomes: Vec<Outcome>,
    delivered: u64,
}

#[allow(clippy::cast_precision_loss)] // KiB and counts far below 2^52
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Report {
    fn median_warm(&self) -> Duration {
        self.warm.get(self.warm.len() / 2).copied().unwrap_or_default()
    }

    #[allow(clippy::print_stdout)] // the report is the output
    fn print(&self, args: &Args) {
        println!("| start-up to ready | ms |");
        println!("|---|---|");
        println!("| first start (compiling the plugin) | {:.0} |", ms(self.cold));
        let warm: Vec<String> = self.warm.iter().map(|d| format!("{:.0}", ms(*d))).collect();
        println!(
            "| restarts, plugin from the cache (sorted; median {:.0}) | {} |",
            ms(self.median_warm()),
            warm.join(" / ")
        );
        println!();
        println!("| load ({} connections) | events/s | p50 ms | p99 ms | errors |", args.connections);
        println!("|---|---|---|---|---|");
        for o in &self.outcomes {
            println!("| {} | {:.0} | {:.2} | {:.2} | {} |", o.name, o.events_per_sec, o.p50_ms, o.p99_ms, o.errors);
        }
        println!();
        println!("| memory | MiB |");
        println!("|---|---|");
        println!("| resident, ready and idle | {:.1} |", mib(self.idle.rss_kib));
        println!("| resident after the load | {:.1} |", mib(self.loaded.rss_kib));
        println!("| peak resident (VmHWM) | {:.1} |", mib(self.loaded.peak_kib));
        println!();
        println!("deliveries made by the subscription during the load: {}", self.delivered);
    }

    fn json(&self) -> Value {
        json!({
            "start_ms": {"compiling": ms(self.cold), "cached": self.warm.iter().map(|d| ms(*d)).collect::<Vec<_>>()},
            "load": self.outcomes.iter().map(|o| json!({"scenario": o.name, "events_per_sec": o.events_per_sec, "p50_ms": o.p50_ms, "p99_ms": o.p99_ms, "errors": o.errors})).collect::<Vec<_>>(),
            "memory_mib": {"idle": mib(self.idle.rss_kib), "after_load": mib(self.loaded.rss_kib), "peak": mib(self.loaded.peak_kib)},
            "delivered": self.delivered,
        })
    }
}
