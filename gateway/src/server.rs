//! Assembling a running gateway from a config: Kafka producer, registry, routes, HTTP listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::ListenerTlsConfig;
use crate::config::{Config, IdempotencyScope};
use crate::deliver::Deliveries;
use crate::deliver::Deps;
use crate::deliver::guard::{Guard, GuardedResolver};
use crate::deliver::seal::Sealer;
use crate::http::{AppState, Claims, Keys, app};
use crate::kafka::client_config;
use crate::kafka::log::CompactedLog;
use crate::kafka::producer::Producer;
use crate::kafka::topics::Topics;
use crate::kafka::transactions::Transactions;
use crate::plugin::store::Plugins;
use crate::plugin::{EngineLimits, PluginHost};
use crate::produce::Pipeline;
use crate::produce::commit::GroupCommit;
use crate::registry::client::RemoteRegistry;
use crate::registry::embedded::EmbeddedRegistry;
use crate::registry::{Registry, SchemaCache};
use crate::route::Routes;
use crate::telemetry::trace::Tracing;
use crate::transform::Transforms;
use axum_server::tls_rustls::RustlsConfig;

/// How often a missing topic is looked up again when requests ask for it.
const TOPIC_RECHECK: Duration = Duration::from_secs(5);
/// How long queued events get to reach Kafka at shutdown.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(10);

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    state: Arc<AppState>,
    shutdown: Vec<oneshot::Sender<()>>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    /// Background work tied to the listeners (certificate reloads), stopped with them.
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A gateway connected to Kafka and its registry, not yet listening.
#[derive(Debug)]
pub struct Prepared {
    config: Config,
    state: Arc<AppState>,
}

impl Prepared {
    /// Connects to Kafka and the registry and checks the routed topics.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let state = Arc::new(build_state(&config).await?);
        Ok(Self { config, state })
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Starts accepting requests.
    pub async fn listen(self) -> anyhow::Result<Gateway> {
        self.listen_with(axum::Router::new()).await
    }

    /// Starts accepting requests, serving `extra` routes beside the API (dev mode's inbox).
    pub async fn listen_with(self, extra: axum::Router) -> anyhow::Result<Gateway> {
        let Self { config, state } = self;
        let listener = TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.http.listen))?;
        let addr = listener.local_addr()?;
        let mut gateway = Gateway {
            addr,
            admin_addr: None,
            state: state.clone(),
            shutdown: Vec::new(),
            servers: Vec::new(),
            tasks: Vec::new(),
        };
        let tls = match &config.http.tls {
            None => None,
            Some(tls) => {
                let rustls = RustlsConfig::from_pem_file(&tls.cert_file, &tls.key_file).await.with_context(|| {
                    format!(
                        "cannot load the certificate {} and key {}",
                        tls.cert_file.display(),
                        tls.key_file.display()
                    )
                })?;
                gateway.tasks.push(tokio::spawn(reload_certificate(rustls.clone(), tls.clone())));
                Some(rustls)
            }
        };
        gateway.serve(listener, extra.merge(app(state.clone())), tls.clone())?;
        tracing::info!(%addr, https = tls.is_some(), routes = state.routes.len(), "listening");
        if let Some(admin) = &config.admin {
            let listener =
                TcpListener::bind(admin.listen).await.with_context(|| format!("cannot listen on {}", admin.listen))?;
            let admin_addr = listener.local_addr()?;
            gateway.serve(
                listener,
                crate::http::admin::router(
                    state.plugins.clone(),
                    state.transforms.clone(),
                    &admin.token,
                    state.gate.auth.clone(),
                    admin.max_upload_bytes,
                ),
                tls,
            )?;
            gateway.admin_addr = Some(admin_addr);
            tracing::info!(addr = %admin_addr, "admin API listening");
        }
        Ok(gateway)
    }
}

impl Gateway {
    /// Connects to Kafka and the registry, checks the routed topics, and starts listening.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        Prepared::new(config).await?.listen().await
    }

    /// The address the HTTP listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the admin listener, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Serves `router` on `listener`, over TLS when given a certificate; stopped by [`stop`].
    fn serve(&mut self, listener: TcpListener, router: axum::Router, tls: Option<RustlsConfig>) -> anyhow::Result<()> {
        let (shutdown, signal) = oneshot::channel::<()>();
        self.shutdown.push(shutdown);
        let Some(tls) = tls else {
            self.servers.push(tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = signal.await;
                    })
                    .await
            }));
            return Ok(());
        };
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener.into_std()?, tls)?.handle(handle.clone());
        tokio::spawn(async move {
            let _ = signal.await;
            // In-flight requests finish; no new connections are taken.
            handle.graceful_shutdown(None);
        });
        self.servers.push(tokio::spawn(server.serve(router.into_make_service())));
        Ok(())
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops accepting requests, lets in-flight ones finish, and flushes queued events.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for task in &self.tasks {
            task.abort();
        }
        for shutdown in self.shutdown.drain(..) {
            let _ = shutdown.send(());
        }
        for server in self.servers.drain(..) {
            server.await.context("an HTTP server task failed")?.context("an HTTP server failed")?;
        }
        self.state.deliveries.stop_all().await;
        let pipeline = self.state.pipeline.clone();
        tokio::task::spawn_blocking(move || {
            pipeline.flush(SHUTDOWN_FLUSH);
            pipeline.tracing.flush();
        })
        .await?;
        Ok(())
    }
}

/// Reads the certificate files every `reload_interval_s` and installs them when they changed
/// (new connections get them; open ones keep theirs). A bad new pair is logged and the current
/// one kept, so a half-written renewal never takes the listener down.
async fn reload_certificate(rustls: RustlsConfig, config: ListenerTlsConfig) {
    let read = |config: &ListenerTlsConfig| {
        let (cert, key) = (config.cert_file.clone(), config.key_file.clone());
        async move { (tokio::fs::read(&cert).await.ok(), tokio::fs::read(&key).await.ok()) }
    };
    let mut current = read(&config).await;
    let mut every = tokio::time::interval(Duration::from_secs(config.reload_interval_s));
    every.tick().await;
    loop {
        every.tick().await;
        let found = read(&config).await;
        if found == current || found.0.is_none() || found.1.is_none() {
            continue;
        }
        match rustls.reload_from_pem_file(&config.cert_file, &config.key_file).await {
            Ok(()) => tracing::info!(cert = %config.cert_file.display(), "TLS certificate reloaded"),
            Err(error) => {
                tracing::warn!(error = %error, cert = %config.cert_file.display(), "cannot use the changed TLS certificate; keeping the current one");
            }
        }
        current = found;
    }
}

async fn build_state(config: &Config) -> anyhow::Result<AppState> {
    crate::kafka::check_credentials(&config.kafka).await.map_err(anyhow::Error::msg)?;
    let producer = Producer::new(&config.kafka).context("cannot create the Kafka producer")?;
    let registry = if config.registry.is_embedded() {
        Registry::Embedded(
            EmbeddedRegistry::start(&config.kafka, &config.registry.topic, config.registry.strict_avro_defaults)
                .await
                .context("cannot start the embedded schema registry")?,
        )
    } else {
        Registry::Remote(RemoteRegistry::new(
            &config.registry.url,
            Duration::from_millis(config.registry.timeout_ms),
            config.registry.auth.clone(),
        )?)
    };
    // Routes' topics as declared: created, or checked (refusing to start on a finding unless
    // `kafka.topic_checks = "warn"`). Without declarations, a cluster that cannot be asked yet
    // is checked on first use instead.
    let declared = config.topics.iter().any(|t| t.create.is_some());
    match crate::kafka::manage::prepare(&client_config(&config.kafka), &config.topics, config.kafka.topic_checks).await
    {
        Ok(_) => {}
        Err(error @ crate::kafka::manage::ManageError::Refused(_)) => return Err(error.into()),
        Err(error) if declared => return Err(error.into()),
        Err(error) => tracing::warn!(error = %error, "cannot check the routed topics' settings yet"),
    }
    let topics = Arc::new(Topics::new(producer.clone(), TOPIC_RECHECK));
    // Patterns name no topic of their own; the topics they match are checked on first use.
    let names: Vec<String> =
        config.topics.iter().filter(|t| !crate::route::is_pattern(&t.name)).map(|t| t.name.clone()).collect();
    match topics.check(&names).await {
        Ok(missing) if missing.is_empty() => {}
        Ok(missing) => {
            tracing::warn!(?missing, "routed topics missing in Kafka; their requests get 404 until they exist")
        }
        Err(error) => tracing::warn!(error = %error, "cannot check the routed topics yet; checking on first use"),
    }
    let plugins = start_plugins(config).await?;
    let schemas = Arc::new(SchemaCache::new(registry.clone(), Duration::from_millis(config.registry.cache_ttl_ms)));
    let tracing = Tracing::new(&config.telemetry).map_err(anyhow::Error::msg)?;
    let deliveries = start_deliveries(config, &producer, &schemas, &plugins, &tracing).await?;
    let routes = Arc::new(Routes::new(&config.topics));
    let auth = crate::auth::Auth::new(config.auth.as_ref()).await.map_err(|e| anyhow::anyhow!("[auth]: {e}"))?;
    let transactions = Transactions::new(&config.kafka, &config.exactly_once);
    let idempotency = idempotency(config, &transactions).await?;
    let commits = GroupCommit::start(transactions.clone(), topics.clone(), config.exactly_once.producers);
    let pipeline = Pipeline {
        producer,
        topics,
        schemas,
        routes: routes.clone(),
        plugins: plugins.clone(),
        tracing,
        transactions,
        commits,
    };
    let transforms = Transforms::start(config, &pipeline).await.map_err(|e| {
        anyhow::anyhow!("cannot read the transform store {}: {e}", config.exactly_once.transforms_topic)
    })?;
    Ok(AppState {
        http: config.http.clone(),
        routes,
        pipeline,
        registry,
        plugins,
        deliveries,
        gate: Arc::new(crate::http::Gate { auth: Arc::new(auth), limits: crate::http::Limits::new(&config.limits) }),
        idempotency,
        transforms,
    })
}

/// Where `Idempotency-Key` answers are kept; in the cluster, every transactional id of this
/// replica is fenced first, so that what its previous incarnation left open is aborted.
async fn idempotency(config: &Config, transactions: &Arc<Transactions>) -> anyhow::Result<Option<Keys>> {
    let window = Duration::from_secs(config.http.idempotency_window_s);
    if window.is_zero() {
        return Ok(None);
    }
    let max_bytes = config.http.idempotency_max_bytes;
    Ok(match config.exactly_once.idempotency {
        IdempotencyScope::Replica => crate::http::Idempotency::new(window, max_bytes).map(Keys::Replica),
        IdempotencyScope::Cluster => {
            transactions.fence_previous();
            let eo = &config.exactly_once;
            let claims = Claims::start(
                &client_config(&config.kafka),
                &eo.idempotency_topic,
                eo.idempotency_partitions,
                window,
                max_bytes,
                transactions.clone(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the idempotency topic {}: {e}", eo.idempotency_topic))?;
            Some(Keys::Cluster(claims))
        }
    })
}

/// Webhook delivery: the HTTP client (guarded against internal addresses, no redirects) and
/// the subscriptions store.
async fn start_deliveries(
    config: &Config,
    producer: &Producer,
    schemas: &Arc<SchemaCache>,
    plugins: &Arc<Plugins>,
    tracing: &Tracing,
) -> anyhow::Result<Arc<Deliveries>> {
    let allowed = config.delivery.allow_networks.iter().filter_map(|n| n.parse().ok()).collect();
    let guard = Guard::new(allowed);
    let http = reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
        // A redirect could lead anywhere, past the address checks; so could a proxy (it resolves
        // the subscriber's name itself), so HTTP(S)_PROXY and ALL_PROXY are ignored.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(config.delivery.max_idle_connections_per_host)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the webhook HTTP client")?;
    let log = CompactedLog::start(&client_config(&config.kafka), &config.delivery.topic)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the subscriptions store {}: {e}", config.delivery.topic))?;
    let deps = Deps {
        kafka: config.kafka.clone(),
        guard: guard.clone(),
        producer: producer.clone(),
        schemas: schemas.clone(),
        plugins: plugins.clone(),
        http,
        max_buffered: config.delivery.max_buffered_records,
        max_buffered_bytes: config.delivery.max_buffered_kbytes.saturating_mul(1024),
        max_prefetch_kbytes: config.delivery.max_prefetch_kbytes,
        tracing: tracing.clone(),
        sealer: Arc::new(Sealer::new(&config.delivery.secrets_keys).map_err(|e| anyhow::anyhow!("[delivery] {e}"))?),
        internal: config.internal_topics(),
        max_subscriptions: config.delivery.max_subscriptions,
    };
    Ok(Deliveries::start(log, config.subscriptions.clone(), deps, guard).await)
}

/// The plugin engine and store, when any plugin is declared.
async fn start_plugins(config: &Config) -> anyhow::Result<Arc<Plugins>> {
    if config.plugins.is_empty() {
        return Ok(Plugins::none());
    }
    let settings = &config.plugin_host;
    let cache_dir = settings.cache_dir.clone().or_else(crate::plugin::default_cache_dir);
    let limits = EngineLimits {
        max_instances: settings.max_instances,
        max_memory_bytes: settings.max_memory_mb << 20,
        nice: settings.nice,
    };
    let host = match PluginHost::new(limits, cache_dir.clone()) {
        Ok(host) => host,
        // The disk cache is an optimisation: without a writable directory, compile every start.
        Err(error) if cache_dir.is_some() => {
            tracing::warn!(error, "plugin compile cache unavailable; compiling at every start");
            PluginHost::new(limits, None).map_err(anyhow::Error::msg)?
        }
        Err(error) => anyhow::bail!(error),
    };
    let log = CompactedLog::start(&client_config(&config.kafka), &settings.topic)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the plugin store {}: {e}", settings.topic))?;
    Plugins::start(Arc::new(host), &config.plugins, Some(log)).await.map_err(anyhow::Error::msg)
}
