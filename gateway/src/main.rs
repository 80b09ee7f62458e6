//! The `sluice` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use clap::{Parser, Subcommand};
use sluice::codec::SchemaType;
use sluice::config;
use sluice::plugin::cli as plugin_cli;
use sluice::registry::RegistryError;
use sluice::registry::check::{self, SchemaFile};
use sluice::registry::client::RemoteRegistry;
use sluice::registry::compat::Mode;
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
        /// The in-memory Kafka's bootstrap address, for other Kafka clients.
        #[arg(long, default_value = "127.0.0.1:9092")]
        kafka: SocketAddr,
    },
    /// Check or register schemas in a Confluent-compatible registry (for CI).
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Write, build and try WebAssembly plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Credentials for `[auth]`.
    #[command(subcommand)]
    Auth(AuthCommand),
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Make a random API key; prints the key (give it to the client) and the `[[auth.api_keys]]`
    /// entry with its SHA-256 (Sluice keeps only the hash).
    NewKey {
        /// The key holder's name.
        #[arg(long, default_value = "client")]
        name: String,
        /// A scope to grant, e.g. `produce:orders.*` (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Create a plugin project in DIR (named after it), with an example and its test.
    New {
        dir: PathBuf,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: plugin_cli::Lang,
        /// The SDKs' directory (default: the one this sluice was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build the plugin project in DIR (default: here) into a component and check it.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run the plugin project's tests natively (cargo test, npm test, pytest); or, given a
    /// component (.wasm) and --input, run it over sample events and print each decision.
    Test {
        /// A plugin project's directory, or a component (.wasm).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Events, one JSON value per line (with a component).
        #[arg(long)]
        input: Option<PathBuf>,
        /// The topic the events are on.
        #[arg(long, default_value = "events")]
        topic: String,
        /// The hook to call.
        #[arg(long, value_enum, default_value = "produce")]
        hook: plugin_cli::Hook,
        /// A configuration value for the plugin, KEY=VALUE (repeatable).
        #[arg(long = "config", value_parser = parse_key_value)]
        config: Vec<(String, String)>,
    },
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("'{text}' is not KEY=VALUE"))
}

/// Exit codes: 0 done, 2 failed.
#[allow(clippy::print_stdout)] // the results are the output
fn plugin(command: PluginCommand) -> ExitCode {
    let result = match command {
        PluginCommand::New { dir, lang, sdk } => {
            plugin_cli::new(&dir, lang, &sdk.unwrap_or_else(plugin_cli::default_sdk_path)).map(|name| {
                format!(
                    "created plugin '{name}' ({lang}) in {dir}\nnext: cd {dir} && {next}\n",
                    lang = lang.name(),
                    dir = dir.display(),
                    next = lang.next_steps()
                )
            })
        }
        PluginCommand::Build { dir } => plugin_cli::build(&dir).map(|wasm| format!("built {}\n", wasm.display())),
        PluginCommand::Test { path, input, topic, hook, config } => match input {
            Some(input) => plugin_cli::run(&path, &input, &topic, hook, &config),
            None if path.is_dir() => plugin_cli::test(&path).map(|()| String::new()),
            None => Err(format!("{} is a component: give --input EVENTS (one JSON event per line)", path.display())),
        },
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Exit 0 if FILE may become the next version of SUBJECT, 1 with every incompatibility if
    /// not, 2 if the check could not run.
    Check {
        #[command(flatten)]
        target: SchemaTarget,
        /// Check under this level instead of the one the registry reports for the subject.
        #[arg(long)]
        compatibility: Option<Mode>,
    },
    /// Register FILE under SUBJECT and print its id (exit 1 if the registry refuses it).
    Register {
        #[command(flatten)]
        target: SchemaTarget,
    },
}

#[derive(Debug, clap::Args)]
struct SchemaTarget {
    /// Base URL of the registry: a Confluent-compatible API, e.g. http://localhost:8080/registry
    /// for Sluice's embedded registry.
    #[arg(long, env = "SLUICE_REGISTRY_URL")]
    registry: String,
    /// The subject, e.g. orders.placed-value.
    #[arg(long)]
    subject: String,
    /// avro, json (JSON Schema) or protobuf; default from the file extension (.avsc, .json,
    /// .proto).
    #[arg(long = "type", value_parser = parse_schema_type)]
    schema_type: Option<SchemaType>,
    /// A schema reference, NAME=SUBJECT:VERSION (repeatable).
    #[arg(long = "reference", value_parser = check::parse_reference)]
    references: Vec<sluice::registry::types::Reference>,
    /// Registry request timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// The schema file.
    file: PathBuf,
}

fn parse_schema_type(text: &str) -> Result<SchemaType, String> {
    match text.to_ascii_lowercase().as_str() {
        "avro" => Ok(SchemaType::Avro),
        "json" | "json-schema" => Ok(SchemaType::Json),
        "protobuf" | "proto" => Ok(SchemaType::Protobuf),
        _ => Err(format!("'{text}' is not a schema type: use avro, json or protobuf")),
    }
}

/// A new key and its config entry; the scopes are checked so a typo fails here, not at start.
fn new_key(name: &str, scopes: &[String]) -> Result<String, String> {
    for scope in scopes {
        scope.parse::<sluice::auth::Scope>()?;
    }
    let (key, sha256) = sluice::auth::new_key()?;
    let entry = toml::to_string(&toml::Table::from_iter([
        ("name".to_owned(), toml::Value::from(name)),
        ("sha256".to_owned(), toml::Value::from(sha256)),
        ("scopes".to_owned(), toml::Value::from(scopes.to_vec())),
    ]))
    .map_err(|e| e.to_string())?;
    Ok(format!("# give the client this key; Sluice keeps only its hash:\n# {key}\n\n[[auth.api_keys]]\n{entry}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Plugin(command) => plugin(command),
        Command::Auth(AuthCommand::NewKey { name, scopes }) => match new_key(&name, &scopes) {
            Ok(text) => {
                #[allow(clippy::print_stdout)] // the key is the output
                {
                    print!("{text}");
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(2)
            }
        },
        Command::Schema(command) => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(schema(command)),
            Err(error) => {
                eprintln!("error: cannot start the async runtime: {error}");
                ExitCode::from(2)
            }
        },
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

/// Exit codes: 0 done, 1 refused (incompatible), 2 could not run.
#[allow(clippy::print_stdout)] // the verdict is the output
async fn schema(command: SchemaCommand) -> ExitCode {
    let target = match &command {
        SchemaCommand::Check { target, .. } | SchemaCommand::Register { target } => target,
    };
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    };
    let file = match SchemaFile::read(&target.file, target.schema_type, target.references.clone()) {
        Ok(file) => file,
        Err(message) => return fail(message),
    };
    let registry = match RemoteRegistry::new(&target.registry, Duration::from_millis(target.timeout_ms), None) {
        Ok(registry) => registry,
        Err(error) => return fail(error.to_string()),
    };
    match command {
        SchemaCommand::Check { compatibility, .. } => {
            match check::check(&registry, &target.subject, &file, compatibility).await {
                Ok(verdict) => {
                    print!("{}", verdict.report(&file.path));
                    if verdict.is_compatible() { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(error) => fail(error.to_string()),
            }
        }
        SchemaCommand::Register { .. } => match registry.register(&target.subject, &file.schema).await {
            Ok(id) => {
                println!("registered {} under '{}' with id {id}", file.path, target.subject);
                ExitCode::SUCCESS
            }
            Err(error @ (RegistryError::InvalidSchema(_) | RegistryError::Unexpected { status: 409, .. })) => {
                eprintln!("refused: {error}");
                ExitCode::from(1)
            }
            Err(error) => fail(error.to_string()),
        },
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
        Command::Dev { listen, kafka } => {
            let dev = sluice::dev::start(listen, kafka).await?;
            let (addr, kafka) = (dev.gateway.addr(), dev.kafka);
            {
                use std::io::Write as _;
                // A closed stdout (`sluice dev | head`) must not stop the gateway: println! would
                // panic on the broken pipe, so the banner is written and its error ignored.
                let _ = writeln!(
                    std::io::stdout().lock(),
                    "\nSluice dev mode on http://{addr}\n\
                     Kafka: in-memory (librdkafka mock cluster) — events live in this process only.\n\
                     \x20      bootstrap {kafka} (read with kcat or any Kafka client)\n\
                     Routes: POST /v1/topics/{topic}/events (Avro, keyed by /order_id)\n\
                     \x20       POST /v1/topics/{protobuf_topic}/events (Protobuf, keyed by /payment_id)\n\
                     Registry: http://{addr}/registry (embedded)\n\
                     Webhook inbox: http://{addr}/dev/inbox (subscribe it to try deliveries)\n\n\
                     Try:\n{curl}\n{protobuf_curl}\n",
                    topic = sluice::dev::TOPIC,
                    protobuf_topic = sluice::dev::PROTOBUF_TOPIC,
                    curl = sluice::dev::curl_example(addr),
                    protobuf_curl = sluice::dev::protobuf_curl_example(addr),
                );
            }
            shutdown_signal().await;
            dev.gateway.stop().await
        }
        Command::CheckConfig { .. } | Command::Schema(_) | Command::Plugin(_) | Command::Auth(_) => {
            unreachable!("handled before the runtime starts")
        }
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
