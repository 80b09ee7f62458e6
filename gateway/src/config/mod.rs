//! The configuration file: typed sections, `${VAR}` expansion, and validation that reports every
//! problem at once with its key path.
//!
//! Loading goes: text → [`vars::expand`] → TOML → per-section typed deserialization that keeps
//! going after an error ([`load`]) → cross-field checks ([`validate`]).

mod load;
pub mod scope;
pub mod subscription;
pub(crate) mod validate;
pub mod vars;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

pub use load::{Problem, load_file, load_str};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The public HTTP listener.
    #[serde(default)]
    pub http: HttpConfig,
    /// The Kafka cluster events are produced to.
    pub kafka: KafkaConfig,
    /// Where schemas come from.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// One route per topic that accepts events over HTTP.
    #[serde(default)]
    pub topics: Vec<TopicConfig>,
    /// WebAssembly plugins routes may run.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Engine-wide plugin settings.
    #[serde(default)]
    pub plugin_host: PluginHostConfig,
    /// The admin API (plugin uploads), on its own listener. Off unless configured.
    pub admin: Option<AdminConfig>,
    /// Webhook subscriptions declared here (more can be created through the API).
    #[serde(default)]
    pub subscriptions: Vec<subscription::SubscriptionSpec>,
    /// Webhook delivery settings.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Who may do what. Without it every request is allowed (for a trusted network or `dev`).
    pub auth: Option<AuthConfig>,
    /// Rate, concurrency and time limits on the public listener.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Trace export.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Kafka transactions: atomic batches and `Idempotency-Key` ingest honoured on every replica.
    #[serde(default)]
    pub exactly_once: ExactlyOnceConfig,
    /// Plugins run over input topics, their outputs written to a routed topic exactly once.
    #[serde(default)]
    pub transforms: Vec<TransformConfig>,
}

impl Config {
    /// The topics this gateway keeps its own state in.
    pub fn internal_topics(&self) -> InternalTopics {
        let mut names = vec![
            self.delivery.topic.clone(),
            self.plugin_host.topic.clone(),
            self.exactly_once.idempotency_topic.clone(),
        ];
        if self.registry.is_embedded() {
            names.push(self.registry.topic.clone());
        }
        InternalTopics::new(names)
    }
}

/// Topics no route, subscription or dead letter topic may name: the gateway's own state
/// (subscriptions with their sealed secrets, plugins, schemas), anything named `_sluice…`, and
/// Kafka's own (`__consumer_offsets`, `__transaction_state`, …). Reading them would hand one
/// tenant another's data; writing them would corrupt every replica's state.
#[derive(Debug, Clone, Default)]
pub struct InternalTopics {
    names: std::collections::BTreeSet<String>,
}

impl InternalTopics {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self { names: names.into_iter().collect() }
    }

    /// # Examples
    /// ```
    /// let internal = sluice::config::InternalTopics::new(["state".to_owned()]);
    /// assert!(internal.contains("state") && internal.contains("_sluice_x") && internal.contains("__consumer_offsets"));
    /// assert!(!internal.contains("orders.placed"));
    /// ```
    pub fn contains(&self, topic: &str) -> bool {
        topic.starts_with("_sluice") || topic.starts_with("__") || self.names.contains(topic)
    }
}

/// `[telemetry]`: OpenTelemetry traces over OTLP/HTTP.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP traces URL, e.g. `http://otel-collector:4318/v1/traces`.
    /// Unset (default): no spans are exported, and trace context is passed through as received.
    pub otlp_endpoint: Option<String>,
    /// Headers sent with every export (e.g. an API key for a hosted backend).
    pub otlp_headers: BTreeMap<String, String>,
    /// `service.name` of the exported spans. Default `sluice`.
    pub service_name: String,
    /// Share of new traces recorded (0.0–1.0); a caller's sampling decision is followed.
    /// Default 1.0.
    pub sample_ratio: f64,
}

impl std::fmt::Debug for TelemetryConfig {
    /// Header values are often API keys: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryConfig")
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field("otlp_headers", &self.otlp_headers.keys().collect::<Vec<_>>())
            .field("service_name", &self.service_name)
            .field("sample_ratio", &self.sample_ratio)
            .finish()
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { otlp_endpoint: None, otlp_headers: BTreeMap::new(), service_name: "sluice".into(), sample_ratio: 1.0 }
    }
}

/// `[auth]`: API keys and JWT bearer tokens, each with scopes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    pub jwt: Option<JwtConfig>,
}

/// `[[auth.api_keys]]`: a key, known only by its hash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds the key (logs, rate limits).
    pub name: String,
    /// Hex SHA-256 of the key (`sluice auth new-key` makes a key and prints its hash).
    pub sha256: String,
    /// What the key may do: `admin`, `produce:<topic pattern>`, `subscribe:<topic pattern>`,
    /// `registry:read`, `registry:write`; `*` in a pattern matches anything.
    pub scopes: Vec<String>,
    /// This key's rate limit, overriding `limits.per_key_requests_per_second`.
    pub requests_per_second: Option<u32>,
}

/// `[auth.jwt]`: bearer tokens signed by an identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Where the signing keys are published (a JWKS document); or `jwks_file`.
    pub jwks_url: Option<String>,
    pub jwks_file: Option<PathBuf>,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// An `aud` every token must carry.
    pub audience: String,
    /// The claim holding the scopes: a space-separated string or an array. Default `scope`.
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    /// How often the JWKS is fetched again (new keys are also fetched when a token names an
    /// unknown `kid`, at most every 30 s). Default 300 s.
    #[serde(default = "default_jwks_refresh_s")]
    pub refresh_s: u64,
}

fn default_scope_claim() -> String {
    "scope".into()
}
fn default_jwks_refresh_s() -> u64 {
    300
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per second for the whole listener, beyond which requests get 429. Default 0
    /// (no limit).
    pub requests_per_second: u32,
    /// Requests per second per API key or token subject. Default 0 (no limit).
    pub per_key_requests_per_second: u32,
    /// How long a request may take before it is answered 503. Default 30000 ms.
    pub request_timeout_ms: u64,
    /// Requests handled at once; more get 503 at once instead of waiting. Default 1024.
    pub max_concurrent_requests: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            requests_per_second: 0,
            per_key_requests_per_second: 0,
            request_timeout_ms: 30_000,
            max_concurrent_requests: 1024,
        }
    }
}

/// `[delivery]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// The compacted topic holding API-created subscriptions and every subscription's state.
    /// Default `_sluice_subscriptions`.
    pub topic: String,
    /// Networks webhooks may reach although they are internal (loopback, private,
    /// link-local…), as CIDRs, e.g. `["10.20.0.0/16"]`. Default none.
    pub allow_networks: Vec<String>,
    /// Idle keep-alive connections kept per subscriber host. Default 256.
    pub max_idle_connections_per_host: usize,
    /// Records a replica holds per subscription while they wait for delivery; beyond this it
    /// stops taking more from Kafka (and pauses fetching if the subscriber stays behind).
    /// Default 10000.
    pub max_buffered_records: usize,
    /// Kilobytes of record keys and values a replica holds per subscription while they wait;
    /// beyond it, likewise. Default 16384 (16 MiB).
    pub max_buffered_kbytes: usize,
    /// Kilobytes of records librdkafka may prefetch per subscription consumer, ahead of
    /// `max_buffered_records` (its `queued.max.messages.kbytes`; fetch requests are capped to
    /// it too). librdkafka's own default, 65536, lets every subscription hold 64 MiB while its
    /// subscriber is slower than the topic. Default 2048.
    pub max_prefetch_kbytes: usize,
    /// Keys (base64 of 32 random bytes each) that encrypt the signing secrets of API-created
    /// subscriptions in `topic`; the first encrypts, all decrypt (rotation). Default none:
    /// secrets are stored as given.
    pub secrets_keys: Vec<String>,
    /// Subscriptions the API may create (those in this file do not count); each has a consumer
    /// group, a worker on every replica and its own metric series. Default 1000.
    pub max_subscriptions: usize,
}

/// `[delivery] secrets_keys`, decoded: base64 of 32 bytes each.
pub fn decode_secrets_keys(keys: &[String]) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine as _;
    keys.iter()
        .enumerate()
        .map(|(i, text)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| format!("secrets_keys[{i}] is not base64: {e}"))?;
            if bytes.len() == 32 {
                Ok(bytes)
            } else {
                Err(format!("secrets_keys[{i}] must be 32 bytes, not {}", bytes.len()))
            }
        })
        .collect()
}

impl std::fmt::Debug for DeliveryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryConfig")
            .field("topic", &self.topic)
            .field("allow_networks", &self.allow_networks)
            .field("max_idle_connections_per_host", &self.max_idle_connections_per_host)
            .field("max_buffered_records", &self.max_buffered_records)
            .field("max_buffered_kbytes", &self.max_buffered_kbytes)
            .field("max_prefetch_kbytes", &self.max_prefetch_kbytes)
            .field("secrets_keys", &format_args!("<{} redacted>", self.secrets_keys.len()))
            .field("max_subscriptions", &self.max_subscriptions)
            .finish()
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            topic: "_sluice_subscriptions".into(),
            allow_networks: Vec::new(),
            max_idle_connections_per_host: 256,
            max_buffered_records: 10_000,
            max_buffered_kbytes: 16_384,
            max_prefetch_kbytes: 2048,
            secrets_keys: Vec::new(),
            max_subscriptions: 1000,
        }
    }
}

/// `[[plugins]]`: a plugin routes may name, with what it is allowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The name routes use.
    pub name: String,
    /// A component file to load at start; a version uploaded through the admin API takes
    /// precedence once there is one.
    pub path: Option<PathBuf>,
    /// Time limit per call. Default 50 ms.
    #[serde(default = "default_plugin_timeout_ms")]
    pub timeout_ms: u64,
    /// Linear memory limit per instance. Default 64 MiB.
    #[serde(default = "default_plugin_memory_mb")]
    pub memory_mb: usize,
    /// Limit on the bytes one call may answer with. Default 4 MiB.
    #[serde(default = "default_plugin_output_bytes")]
    pub max_output_bytes: usize,
    /// Values the plugin reads with `config-get`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Environment variables the plugin sees. Default none.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Let the plugin's stdout and stderr through to the gateway's. Default false.
    #[serde(default)]
    pub stdio: bool,
    /// Let the plugin open network connections and resolve names. Default false.
    #[serde(default)]
    pub network: bool,
    /// Host directories the plugin may read: guest path → host path. Default none.
    #[serde(default)]
    pub dirs: BTreeMap<String, String>,
    /// Calls of the plugin running at once; beyond it, a call is not made and the route's
    /// `on_plugin_error` policy answers at once. Default 8.
    #[serde(default = "default_plugin_max_concurrency")]
    pub max_concurrency: usize,
    /// Failed calls in a row (timeouts, traps, memory, bad output) after which the plugin's
    /// circuit breaker opens: its calls are refused at once for `circuit_cooldown_ms`, then a
    /// trial call decides. Default 5.
    #[serde(default = "default_plugin_circuit_failures")]
    pub circuit_failures: u32,
    /// How long an open breaker refuses calls (doubling, up to 16 times, while trial calls
    /// fail). Default 5000 ms.
    #[serde(default = "default_plugin_circuit_cooldown_ms")]
    pub circuit_cooldown_ms: u64,
}

fn default_plugin_max_concurrency() -> usize {
    8
}
fn default_plugin_circuit_failures() -> u32 {
    5
}
fn default_plugin_circuit_cooldown_ms() -> u64 {
    5000
}
fn default_plugin_timeout_ms() -> u64 {
    50
}
fn default_plugin_memory_mb() -> usize {
    64
}
fn default_plugin_output_bytes() -> usize {
    4 << 20
}

/// `[plugin_host]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginHostConfig {
    /// Where compiled plugins are cached, by content hash. Default `~/.cache/sluice/compiled`
    /// (no disk cache without a home directory).
    pub cache_dir: Option<PathBuf>,
    /// The compacted topic holding uploaded plugin versions. Default `_sluice_plugins`.
    pub topic: String,
    /// Plugin instances alive at once, across plugins. Default 256.
    pub max_instances: u32,
    /// The most memory any one plugin may be given, in MiB. Default 256.
    pub max_memory_mb: usize,
    /// How much lower than the gateway's the CPU priority of a plugin call becomes once it has
    /// used 5 ms of CPU (Linux nice increment, 0–19; 0 never lowers it). Default 19.
    pub nice: u8,
}

impl Default for PluginHostConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            topic: "_sluice_plugins".into(),
            max_instances: 256,
            max_memory_mb: 256,
            nice: crate::plugin::DEFAULT_NICE,
        }
    }
}

/// `[admin]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener, e.g. `127.0.0.1:9091`.
    pub listen: SocketAddr,
    /// The bearer token every admin request must carry (at least 16 characters).
    pub token: String,
    /// Largest plugin upload, in bytes. Default 64 MiB.
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: usize,
}

fn default_max_upload_bytes() -> usize {
    64 << 20
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig").field("listen", &self.listen).field("token", &"<redacted>").finish()
    }
}

/// `[[transforms]]`: consume input topics, run plugins on each batch, write the results to the
/// output route's topic (encoded as that route encodes events) and commit the input offsets —
/// in one Kafka transaction per batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Names the consumer group (`sluice-transform-{name}`) and the transactional ids.
    pub name: String,
    /// Topics read, `read_committed`.
    pub inputs: Vec<String>,
    /// A `[[topics]]` route: where results go unless a plugin sends them to another route, and
    /// how they are validated, encoded and keyed.
    pub output: String,
    /// Plugins run on each batch, in order (their produce hook). Events reach them with the
    /// output topic as their topic. Default none (a copy, re-encoded for the output route).
    #[serde(default)]
    pub plugins: Vec<String>,
    /// What a plugin failure does to an event, as on routes. Default `reject`, which for a
    /// transform means the dead letter topic (or the batch is retried, without one).
    #[serde(default)]
    pub on_plugin_error: OnPluginError,
    /// Where records go that cannot be transformed (undecodable, refused by a plugin or by the
    /// output's schema), with the dead-letter headers, in the same transaction.
    pub dead_letter_topic: Option<String>,
    /// `true` (default): one transaction per batch, inputs read `read_committed`. `false`:
    /// at-least-once (results acknowledged, then offsets committed; a crash between repeats them).
    #[serde(default = "default_true")]
    pub exactly_once: bool,
    /// Most records per batch (per transaction). Default 500.
    #[serde(default = "default_transform_batch")]
    pub max_batch: usize,
    /// How long a batch waits to fill once it has a record. Default 20 ms.
    #[serde(default = "default_transform_wait_ms")]
    pub max_wait_ms: u64,
}

impl TransformConfig {
    /// What is wrong with this transform, field by field (`is_route` and `is_plugin` say what
    /// the gateway serves). Shared by the configuration file and the admin API.
    pub fn problems(
        &self,
        is_route: &dyn Fn(&str) -> bool,
        is_plugin: &dyn Fn(&str) -> bool,
    ) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.name.is_empty()
            || self.name.len() > 100
            || !self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            problems.push(("name", "must be 1-100 characters of letters, digits, '.', '_' or '-'".to_owned()));
        }
        if self.inputs.is_empty() {
            problems.push(("inputs", "must name at least one topic".to_owned()));
        }
        for input in &self.inputs {
            if let Err(why) = validate::check_topic_name(input) {
                problems.push(("inputs", why));
            }
            if *input == self.output {
                problems.push(("inputs", "must not include the output (each result would be read again)".to_owned()));
            }
        }
        if !is_route(&self.output) {
            problems.push(("output", format!("'{}' is not a [[topics]] route", self.output)));
        }
        for name in &self.plugins {
            if !is_plugin(name) {
                problems.push(("plugins", format!("'{name}' is not declared in [[plugins]]")));
            }
        }
        if let Some(dlq) = &self.dead_letter_topic
            && let Err(why) = validate::check_topic_name(dlq)
        {
            problems.push(("dead_letter_topic", why));
        }
        if self.on_plugin_error == OnPluginError::DeadLetter && self.dead_letter_topic.is_none() {
            problems.push(("dead_letter_topic", "required when on_plugin_error is dead-letter".to_owned()));
        }
        if self.max_batch == 0 || self.max_batch > 10_000 {
            problems.push(("max_batch", "must be between 1 and 10000".to_owned()));
        }
        problems
    }
}

fn default_true() -> bool {
    true
}
fn default_transform_batch() -> usize {
    500
}
fn default_transform_wait_ms() -> u64 {
    20
}

/// `[exactly_once]`: the transactional producers behind atomic batches and cluster-wide
/// `Idempotency-Key`s.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExactlyOnceConfig {
    /// This replica's stable name: its transactional producers are `sluice-tx-{replica_id}-{n}`,
    /// so a replica that restarts under the same name fences (and aborts the transactions of)
    /// its previous incarnation at once. Two live replicas must not share it. Default
    /// `{host name}-{process id}`: stable across restarts of a container whose first process is
    /// Sluice (a pod restarting in place), unique among processes on one host.
    pub replica_id: String,
    /// Transactional producers per replica: the most atomic or `Idempotency-Key` requests this
    /// replica runs at once; more wait for one (see `acquire_timeout_ms`). Default 4.
    pub producers: usize,
    /// How long a request waits for a free transactional producer before 503. Default 5000 ms.
    pub acquire_timeout_ms: u64,
    /// Kafka's `transaction.timeout.ms`: an open transaction of a replica that died is aborted by
    /// the broker after this long (sooner if the replica comes back under the same
    /// `replica_id`), and until then it holds back `read_committed` readers of its partitions.
    /// Default 10000 ms.
    pub transaction_timeout_ms: u64,
    /// `"cluster"` (default): `Idempotency-Key` outcomes are recorded in Kafka, in the same
    /// transaction as the events, and honoured by every replica. `"replica"`: answers are kept
    /// in the serving replica's memory only (no transaction per request; a retry reaching another
    /// replica is produced again).
    pub idempotency: IdempotencyScope,
    /// The compacted topic that records `Idempotency-Key` claims and outcomes. Default
    /// `_sluice_idempotency`.
    pub idempotency_topic: String,
    /// Its partition count when Sluice creates it: claims on one partition are decided one
    /// transaction at a time. Default 16.
    pub idempotency_partitions: i32,
    /// The compacted topic holding transforms created through the admin API (read only when
    /// `[admin]` is configured). Default `_sluice_transforms`.
    pub transforms_topic: String,
}

/// `{host}-{pid}`, with a counter after the first gateway configured in one process (tests
/// run several), and only the characters a transactional id should have.
fn default_replica_id() -> String {
    static CONFIGURED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sluice".into());
    let host: String =
        host.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).take(150).collect();
    let pid = std::process::id();
    match CONFIGURED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
        0 => format!("{host}-{pid}"),
        n => format!("{host}-{pid}-{n}"),
    }
}

/// Where `Idempotency-Key` answers are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdempotencyScope {
    Cluster,
    Replica,
}

impl Default for ExactlyOnceConfig {
    fn default() -> Self {
        Self {
            replica_id: default_replica_id(),
            producers: 4,
            acquire_timeout_ms: 5000,
            transaction_timeout_ms: 10_000,
            idempotency: IdempotencyScope::Cluster,
            idempotency_topic: "_sluice_idempotency".into(),
            idempotency_partitions: 16,
            transforms_topic: "_sluice_transforms".into(),
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on. Default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413 before being read. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Most events in one request; more get 413. Default 1000.
    pub max_events_per_request: usize,
    /// How long a produce answer is kept for retries carrying the same `Idempotency-Key`, in
    /// seconds; 0 turns the header off. Per replica. Default 3600.
    pub idempotency_window_s: u64,
    /// Memory for answers kept for `Idempotency-Key` retries; beyond it the oldest go first,
    /// before their window ends. Default 64 MiB.
    pub idempotency_max_bytes: usize,
    /// HTTPS for the public and admin listeners. Without it they speak plain HTTP.
    pub tls: Option<ListenerTlsConfig>,
    /// Serve Confluent REST Proxy's produce and metadata API (v2 and v3) beside Sluice's own, so
    /// its clients can point at Sluice. Default true.
    pub confluent_api: bool,
    /// Where that API is served: `""` (default) for the root paths Confluent's clients use
    /// (`/topics/...`, `/v3/clusters/...`), or a prefix such as `/kafka`.
    pub confluent_prefix: String,
}

/// `[http.tls]`: the listeners' certificate, reloaded when its files change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often the files are read again; new contents are used for new connections without a
    /// restart. Default 30 s.
    #[serde(default = "default_tls_reload_s")]
    pub reload_interval_s: u64,
}

fn default_tls_reload_s() -> u64 {
    30
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_body_bytes: 1 << 20,
            max_events_per_request: 1000,
            idempotency_window_s: 3600,
            idempotency_max_bytes: 64 << 20,
            tls: None,
            confluent_api: true,
            confluent_prefix: String::new(),
        }
    }
}

/// `[kafka]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list. Required.
    pub bootstrap_servers: String,
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[serde(default)]
    pub security_protocol: SecurityProtocol,
    /// SASL credentials; required with `sasl_*` protocols.
    pub sasl: Option<SaslConfig>,
    /// TLS files; used with `ssl` and `sasl_ssl`.
    pub tls: Option<KafkaTlsConfig>,
    /// Client id reported to the brokers. Default `sluice`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// How long the producer waits to fill a batch. Default 5 ms: single-event requests need a
    /// small linger; batches of events fill quickly anyway.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// How long an event may wait for the broker's acknowledgement before the request gets 503.
    /// Default 10000 ms.
    #[serde(default = "default_delivery_timeout_ms")]
    pub delivery_timeout_ms: u64,
    /// Most events waiting for acknowledgement at once; beyond it requests get 503 with
    /// `Retry-After`. Default 100000.
    #[serde(default = "default_max_in_flight_events")]
    pub max_in_flight_events: usize,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd` (default).
    #[serde(default)]
    pub compression: Compression,
    /// When a route's topic is not as it should be at start-up (see [`TopicChecks`]): `refuse`
    /// (default) or `warn`.
    #[serde(default)]
    pub topic_checks: TopicChecks,
    /// Extra librdkafka properties, passed through as they are. Keys that Sluice sets from typed
    /// fields or that would break its guarantees (`acks`, `enable.idempotence`, …) are refused.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

fn default_client_id() -> String {
    "sluice".into()
}
fn default_linger_ms() -> u64 {
    5
}
fn default_delivery_timeout_ms() -> u64 {
    10_000
}
fn default_max_in_flight_events() -> usize {
    100_000
}

/// How the Kafka connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// The librdkafka spelling.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// `[kafka.sasl]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A SASL mechanism librdkafka supports without extra system libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `[kafka.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTlsConfig {
    /// PEM file of CA certificates to trust; default: the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
    /// Check the broker's host name against its certificate. Default true.
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

fn yes() -> bool {
    true
}

/// Producer compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    #[default]
    Zstd,
}

impl Compression {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// `[registry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Base URL of a Confluent-compatible schema registry (Confluent, Karapace, Redpanda, or
    /// Apicurio's `…/apis/ccompat/v7`), or `"embedded"` (default) for Sluice's own registry,
    /// stored in a compacted Kafka topic and served under `/registry`.
    pub url: String,
    /// How long the latest version of a subject is trusted before it is looked up again; a newly
    /// registered version is used within this time. Schemas by id never expire. Default 30000 ms.
    pub cache_ttl_ms: u64,
    /// Timeout of each registry request. Default 5000 ms.
    pub timeout_ms: u64,
    /// Credentials for a remote registry.
    pub auth: Option<RegistryAuth>,
    /// The compacted topic holding the embedded registry's schemas. Default `_sluice_schemas`.
    pub topic: String,
    /// Embedded registry: refuse a new Avro schema whose union default is not a value of the
    /// union's first branch (Avro ≤ 1.11's rule, Confluent's before 8.2). Default false: a
    /// default of any branch is accepted, as Avro 1.12 and Confluent 8.2 accept it.
    pub strict_avro_defaults: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            url: EMBEDDED.into(),
            cache_ttl_ms: 30_000,
            timeout_ms: 5_000,
            auth: None,
            topic: "_sluice_schemas".into(),
            strict_avro_defaults: false,
        }
    }
}

/// The `registry.url` value that selects the embedded registry.
pub const EMBEDDED: &str = "embedded";

impl RegistryConfig {
    pub fn is_embedded(&self) -> bool {
        self.url == EMBEDDED
    }
}

/// `[registry.auth]`: HTTP basic credentials or a bearer token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuth {
    pub username: Option<String>,
    pub password: Option<String>,
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `[[topics]]`: a route from `POST /v1/topics/{name}/events` to a Kafka topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// Kafka topic name, also the name in the URL.
    pub name: String,
    /// `avro`, `protobuf`, `json-schema`, `json` (schemaless: any JSON object is produced as
    /// it is) or `bytes` (any body, of any content type, written as it is: one record per
    /// request, or one per line of an `application/x-ndjson` body).
    pub format: Format,
    /// Registry subject of the value schema, written out; `{topic}` is replaced by the name.
    /// Without it the subject follows `subject_strategy`.
    pub subject: Option<String>,
    /// How the subject is named, as Confluent's serializers do: `topic` (default,
    /// `{topic}-value`), `record` (`{record}`) or `topic-record` (`{topic}-{record}`).
    #[serde(default)]
    pub subject_strategy: SubjectStrategy,
    /// The fully qualified record name, for the `record` and `topic-record` strategies. On a
    /// `protobuf` route (also spelled `message`) it names the message events are read as, under
    /// any strategy; without it, the schema file's first message.
    #[serde(alias = "message")]
    pub record: Option<String>,
    /// `"latest"` (default; follows new versions within the registry cache TTL) or a version
    /// number (pinned).
    #[serde(default)]
    pub schema_version: SchemaVersion,
    /// JSON pointer to the field that becomes the record key (e.g. `/order_id`); strings and
    /// numbers are used as UTF-8 text. Without it records have no key.
    pub key: Option<String>,
    /// The key's schema format (`avro`, `protobuf` or `json-schema`): keys, from the envelope
    /// form or from the `key` pointer, are then encoded with the schema of `key_subject` in the
    /// Confluent wire format. Without it keys are UTF-8 text.
    pub key_format: Option<Format>,
    /// Registry subject of the key schema; `{topic}` is replaced by the name. Default
    /// `{topic}-key`, as Confluent's serializers name it.
    pub key_subject: Option<String>,
    /// JSON pointer to a field whose value (a string or a number) becomes the record's
    /// `event-id` header. Without it (or when the field is missing) the gateway makes a UUIDv7.
    pub event_id: Option<String>,
    /// `wait` (default): answer once the broker has acknowledged with `acks=all`.
    /// `fire-and-forget`: answer 202 once the event is queued in the gateway; an event can then
    /// be lost if the gateway or the cluster fails before delivery.
    #[serde(default)]
    pub ack: Ack,
    /// `reject` (default): an event field the Avro schema or Protobuf message does not know is a 422.
    /// `ignore`: such fields are dropped.
    #[serde(default)]
    pub unknown_fields: UnknownFields,
    /// Plugins run on each batch, in order, before validation.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// When a plugin fails (traps, times out, runs out of memory, answers badly): `reject`
    /// (default) refuses the batch's events, `dead-letter` sends them to the dead letter topic,
    /// `pass` carries on as if the plugin had accepted them.
    #[serde(default)]
    pub on_plugin_error: OnPluginError,
    /// Where dead-lettered events go (required for `dead-letter` decisions to succeed).
    pub dead_letter_topic: Option<String>,
    /// `[topics.create]`: the topic as it should be. Sluice creates it at start when it is
    /// missing and checks it when it exists (see [`TopicChecks`]). Not for pattern routes.
    pub create: Option<CreateTopic>,
}

/// `[topics.create]`: a route's topic as declared.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// Partitions. Required: the key → partition mapping depends on it, so it is declared, not
    /// defaulted.
    pub partitions: i32,
    /// Replicas of each partition. Default: 3, or the number of brokers when fewer.
    pub replication_factor: Option<i16>,
    /// `min.insync.replicas`. Default: 2 when the cluster has 3 or more brokers, else the
    /// broker's default.
    pub min_insync_replicas: Option<i32>,
    /// `retention.ms` (`-1`: forever). Default: the broker's.
    pub retention_ms: Option<i64>,
    /// `cleanup.policy`: `delete`, `compact` or `compact,delete`. Default: the broker's.
    pub cleanup_policy: Option<String>,
}

/// What start-up does when a route's topic is not as it should be: its partition count differs
/// from `[topics.create]`'s, or its `min.insync.replicas` is below 2 on a cluster of 3 or more
/// brokers (where one broker down would otherwise lose acknowledged writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopicChecks {
    /// Refuse to start, saying why (default).
    #[default]
    Refuse,
    /// Log a warning and start.
    Warn,
}

/// What a route does when a plugin fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnPluginError {
    #[default]
    Reject,
    DeadLetter,
    Pass,
}

impl TopicConfig {
    /// The registry subject of this route's value schema.
    pub fn subject(&self) -> String {
        if let Some(subject) = &self.subject {
            return subject.replace("{topic}", &self.name);
        }
        let record = self.record.as_deref().unwrap_or_default();
        match self.subject_strategy {
            SubjectStrategy::Topic => format!("{}-value", self.name),
            SubjectStrategy::Record => record.to_owned(),
            SubjectStrategy::TopicRecord => format!("{}-{record}", self.name),
        }
    }
}

impl TopicConfig {
    /// The registry subject of this route's key schema (when it has `key_format`).
    pub fn key_subject(&self) -> String {
        self.key_subject.as_deref().unwrap_or("{topic}-key").replace("{topic}", &self.name)
    }
}

/// Confluent's subject name strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectStrategy {
    /// `TopicNameStrategy`: `{topic}-value`.
    #[default]
    Topic,
    /// `RecordNameStrategy`: the record's full name, shared by every topic carrying it.
    Record,
    /// `TopicRecordNameStrategy`: `{topic}-{record}`.
    TopicRecord,
}

/// How events on a route are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Avro,
    JsonSchema,
    Protobuf,
    Json,
    /// Values are bytes, not events: nothing is parsed or validated.
    Bytes,
}

/// Which version of the subject's schema a route uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaVersion {
    #[default]
    Latest,
    Pinned(u32),
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Text(text) if text == "latest" => Ok(SchemaVersion::Latest),
            Raw::Number(n) if n >= 1 => u32::try_from(n)
                .map(SchemaVersion::Pinned)
                .map_err(|_| serde::de::Error::custom(format!("version {n} is too large"))),
            Raw::Number(n) => Err(serde::de::Error::custom(format!("version {n} is not a positive number"))),
            Raw::Text(text) => {
                Err(serde::de::Error::custom(format!("expected \"latest\" or a version number, got \"{text}\"")))
            }
        }
    }
}

/// When the HTTP answer is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ack {
    #[default]
    Wait,
    FireAndForget,
}

/// What to do with event fields the schema does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownFields {
    #[default]
    Reject,
    Ignore,
}
