//! The `sluice` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::config;
use sluice::telemetry::{self, LogFormat};

// glibc's allocator spent a fifth of the produce path's CPU in a profile; mimalloc is made for
// many small, short-lived allocations across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "HTTP ⇄ Kafka event gateway with schemas and WebAssembly plugins")]
struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, value_enum, default_value = "text", env = "SLUICE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway with a configuration file.
    Serve {
        /// The TOML configuration file.
        #[arg(short, long, env = "SLUICE_CONFIG")]
        config: PathBuf,
    },
    /// Check a configuration file and list every problem in it.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Run with an in-memory Kafka, the embedded registry and an example route (nothing to install).
    Dev {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        command => {
            telemetry::init(cli.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[allow(clippy::print_stdout)] // the verdict is the output
fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load_file(file) {
        Ok(config) => {
            println!("{}: ok ({} topic routes)", file.display(), config.topics.len());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("{}: {} problem(s)", file.display(), problems.len());
            for problem in problems {
                eprintln!("  {problem}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => {
            let config = config::load_file(&config).map_err(|problems| {
                let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                anyhow::anyhow!("invalid configuration {}:\n  {}", config.display(), list.join("\n  "))
            })?;
            let gateway = sluice::Gateway::start(config).await?;
            shutdown_signal().await;
            tracing::info!("shutting down");
            gateway.stop().await
        }
        Command::Dev { listen } => {
            let dev = sluice::dev::start(listen).await?;
            let addr = dev.gateway.addr();
            #[allow(clippy::print_stdout)] // the banner is the point of this command
            {
                println!(
                    "\nSluice dev mode on http://{addr}\n\
                     Kafka: in-memory (librdkafka mock cluster) — events live in this process only.\n\
                     Route: POST /v1/topics/{topic}/events (Avro, keyed by /order_id)\n\
                     Registry: http://{addr}/registry (embedded)\n\n\
                     Try:\n{curl}\n",
                    topic = sluice::dev::TOPIC,
                    curl = sluice::dev::curl_example(addr),
                );
            }
            shutdown_signal().await;
            dev.gateway.stop().await
        }
        Command::CheckConfig { .. } => unreachable!("handled before the runtime starts"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::warn!(error = %error, "cannot listen for SIGTERM; only Ctrl-C stops the gateway");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
