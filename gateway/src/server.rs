//! Assembling a running gateway from a config: Kafka producer, registry, routes, HTTP listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::{AppState, app};
use crate::kafka::producer::Producer;
use crate::kafka::topics::Topics;
use crate::produce::Pipeline;
use crate::registry::client::RemoteRegistry;
use crate::registry::embedded::EmbeddedRegistry;
use crate::registry::{Registry, SchemaCache};
use crate::route::routes;

/// How often a missing topic is looked up again when requests ask for it.
const TOPIC_RECHECK: Duration = Duration::from_secs(5);
/// How long queued events get to reach Kafka at shutdown.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(10);

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
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
        let Self { config, state } = self;
        let listener = TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.http.listen))?;
        let addr = listener.local_addr()?;
        let (shutdown, signal) = oneshot::channel::<()>();
        let router = app(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = signal.await;
                })
                .await
        });
        tracing::info!(%addr, routes = state.routes.len(), "listening");
        Ok(Gateway { addr, state, shutdown: Some(shutdown), server })
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

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops accepting requests, lets in-flight ones finish, and flushes queued events.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        (&mut self.server).await.context("the HTTP server task failed")?.context("the HTTP server failed")?;
        let pipeline = self.state.pipeline.clone();
        tokio::task::spawn_blocking(move || pipeline.flush(SHUTDOWN_FLUSH)).await?;
        Ok(())
    }
}

async fn build_state(config: &Config) -> anyhow::Result<AppState> {
    let producer = Producer::new(&config.kafka).context("cannot create the Kafka producer")?;
    let registry = if config.registry.is_embedded() {
        Registry::Embedded(
            EmbeddedRegistry::start(&config.kafka, &config.registry.topic)
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
    let topics = Arc::new(Topics::new(producer.clone(), TOPIC_RECHECK));
    let names: Vec<String> = config.topics.iter().map(|t| t.name.clone()).collect();
    match topics.check(&names).await {
        Ok(missing) if missing.is_empty() => {}
        Ok(missing) => {
            tracing::warn!(?missing, "routed topics missing in Kafka; their requests get 404 until they exist")
        }
        Err(error) => tracing::warn!(error = %error, "cannot check the routed topics yet; checking on first use"),
    }
    Ok(AppState {
        http: config.http.clone(),
        routes: routes(&config.topics),
        pipeline: Pipeline {
            producer,
            topics,
            schemas: Arc::new(SchemaCache::new(registry.clone(), Duration::from_millis(config.registry.cache_ttl_ms))),
        },
        registry,
    })
}
