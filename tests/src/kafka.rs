//! A real Apache Kafka broker for tests (single-node KRaft, assembled from
//! Maven Central into the cache), topic creation, and reading a topic back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};
use tempfile::TempDir;

use crate::process::{self, LogWatcher, POLL_INTERVAL, Process};
use crate::{cache, shared};

/// The version `harness/kafka-pom.xml` assembles; it names the cache entry.
const KAFKA_VERSION: &str = "4.1.1";

/// What the cache entry is assembled from: editing it reassembles.
const POM: &str = include_str!("../harness/kafka-pom.xml");

/// What the broker logs once it serves clients.
const READY_LINE: &str = "Kafka Server started";

/// Generous for 2 cores and parallel test binaries; a start takes ~10 s.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a SIGTERMed broker may take for a clean shutdown.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Bounds each request the harness makes as a Kafka client.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A Kafka broker for tests.
///
/// Started by [`Kafka::start`] (one of your own) or [`Kafka::shared`] (one
/// per test process). A broker the harness started runs in a scratch
/// directory with its log at [`Kafka::log_path`]; dropping the `Kafka`
/// kills it and removes the directory, and it also gets SIGKILL if the test
/// process dies without running destructors.
#[derive(Debug)]
pub struct Kafka {
    bootstrap: String,
    /// The second listener of a broker from [`Kafka::start_with_sasl`] or
    /// [`Kafka::start_with_tls`].
    secured_bootstrap: Option<String>,
    /// `None` for a broker that the harness did not start
    /// (`SLUICE_TEST_KAFKA`).
    broker: Option<Broker>,
    /// The other nodes of a cluster from [`Kafka::start_cluster`], held so that they run (and
    /// are killed and removed) with this one.
    #[allow(dead_code)]
    others: Vec<Broker>,
}

#[derive(Debug)]
struct Broker {
    /// `None` after `stop` or `kill`. Declared before `dir` so that the
    /// process dies before its directory is removed.
    process: Option<Process>,
    lib: PathBuf,
    cluster_id: String,
    dir: TempDir,
}

impl Kafka {
    /// Starts a broker of its own on free ports, with fresh storage, and
    /// returns once it answers a metadata request. The first start on a
    /// machine also assembles Kafka into the cache.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example() -> anyhow::Result<()> {
    /// let mut kafka = sluice_tests::Kafka::start().await?;
    /// kafka.create_topic("events", 1, &[]).await?;
    /// kafka.kill()?; // the gateway should now answer 503
    /// kafka.restart().await?; // ... and recover
    /// kafka.stop().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_inner(Secured::None).await
    }

    /// Like [`Kafka::start`], with a second listener, `SASL_PLAINTEXT` at
    /// [`Kafka::secured_bootstrap_servers`], that takes the users of [`SASL_USERS`]: `PLAIN` for
    /// the first, `SCRAM-SHA-256` for the second. The plain listener stays for the harness.
    pub async fn start_with_sasl() -> anyhow::Result<Self> {
        Self::start_inner(Secured::Sasl).await
    }

    /// Like [`Kafka::start`], with a second listener, `SSL` on `localhost` at
    /// [`Kafka::secured_bootstrap_servers`], serving the key and certificate chain in the PEM
    /// file `keystore` (unencrypted PKCS#8 key first).
    pub async fn start_with_tls(keystore: &Path) -> anyhow::Result<Self> {
        Self::start_inner(Secured::Tls(keystore.to_owned())).await
    }

    async fn start_inner(secured: Secured) -> anyhow::Result<Self> {
        process::retry_if_port_taken("Kafka", async || Self::start_once(secured.clone()).await).await
    }

    async fn start_once(secured: Secured) -> anyhow::Result<Self> {
        let started = Instant::now();
        let lib = tokio::task::spawn_blocking(assemble).await??;
        let dir = process::scratch_dir("kafka")?;
        let [port, controller_port, secured_port] = process::free_ports()?;
        let cluster_id = new_cluster_id();
        let data = dir.path().join("data");
        std::fs::write(
            dir.path().join("server.properties"),
            server_properties(port, controller_port, (secured_port, &secured), &data),
        )?;
        let sasl = matches!(secured, Secured::Sasl);
        std::fs::write(dir.path().join("log4j2.properties"), LOG4J2_PROPERTIES)?;

        let mut format = java(&lib, dir.path(), "kafka.tools.StorageTool");
        format.args(["format", "--standalone", "--cluster-id", &cluster_id]).args(["--config", "server.properties"]);
        if sasl {
            // SCRAM credentials live in the cluster metadata; KRaft takes them at format time.
            let (user, password) = SASL_USERS[1];
            format.args(["--add-scram", &format!("SCRAM-SHA-256=[name={user},password={password}]")]);
        }
        tokio::task::spawn_blocking(move || process::run("Kafka's StorageTool format", format)).await??;

        let bootstrap = format!("127.0.0.1:{port}");
        let mut broker = Broker { process: None, lib, cluster_id, dir };
        broker.launch(&bootstrap).await?;
        eprintln!(
            "sluice-tests: Kafka at {bootstrap} ready in {:.1?}, log {}",
            started.elapsed(),
            broker.log_path().display()
        );
        let secured_bootstrap = match secured {
            Secured::None => None,
            Secured::Sasl => Some(format!("127.0.0.1:{secured_port}")),
            Secured::Tls(_) => Some(format!("localhost:{secured_port}")),
        };
        Ok(Self { bootstrap, secured_bootstrap, broker: Some(broker), others: Vec::new() })
    }

    /// Starts a cluster of `nodes` KRaft nodes (each broker and controller, a static quorum of
    /// all of them) on free ports, and returns once every node answers as the cluster. For tests
    /// that need several brokers (replication, `min.insync.replicas`); [`Kafka::stop`] and the
    /// other lifecycle calls act on the first node only.
    pub async fn start_cluster(nodes: usize) -> anyhow::Result<Self> {
        process::retry_if_port_taken("a Kafka cluster", async || Self::start_cluster_once(nodes).await).await
    }

    async fn start_cluster_once(nodes: usize) -> anyhow::Result<Self> {
        let started = Instant::now();
        let lib = tokio::task::spawn_blocking(assemble).await??;
        let cluster_id = new_cluster_id();
        let mut ports = Vec::with_capacity(nodes);
        for _ in 0..nodes {
            let [port, controller_port] = process::free_ports()?;
            ports.push((port, controller_port));
        }
        let voters: Vec<String> =
            ports.iter().enumerate().map(|(i, (_, controller))| format!("{}@127.0.0.1:{controller}", i + 1)).collect();
        let quorum = format!("controller.quorum.voters={}", voters.join(","));
        let mut brokers = Vec::with_capacity(nodes);
        for (i, (port, controller_port)) in ports.iter().enumerate() {
            let dir = process::scratch_dir("kafka")?;
            let data = dir.path().join("data");
            let properties = server_properties(*port, *controller_port, (0, &Secured::None), &data)
                .replace("node.id=1\n", &format!("node.id={}\n", i + 1))
                .replace(&format!("controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}"), &quorum);
            std::fs::write(dir.path().join("server.properties"), properties)?;
            std::fs::write(dir.path().join("log4j2.properties"), LOG4J2_PROPERTIES)?;
            let mut format = java(&lib, dir.path(), "kafka.tools.StorageTool");
            format.args(["format", "--cluster-id", &cluster_id, "--config", "server.properties"]);
            tokio::task::spawn_blocking(move || process::run("Kafka's StorageTool format", format)).await??;
            brokers.push(Broker { process: None, lib: lib.clone(), cluster_id: cluster_id.clone(), dir });
        }
        // A node becomes ready only once a majority of the quorum runs: start them together.
        let launches = brokers
            .iter_mut()
            .zip(&ports)
            .map(|(broker, (port, _))| async move { broker.launch(&format!("127.0.0.1:{port}")).await });
        for launched in futures::future::join_all(launches).await {
            launched?;
        }
        let bootstrap = ports.iter().map(|(port, _)| format!("127.0.0.1:{port}")).collect::<Vec<_>>().join(",");
        eprintln!("sluice-tests: a Kafka cluster of {nodes} at {bootstrap} ready in {:.1?}", started.elapsed());
        let mut brokers = brokers.into_iter();
        let first = brokers.next();
        Ok(Self { bootstrap, secured_bootstrap: None, broker: first, others: brokers.collect() })
    }

    /// The broker of this test process, started on first use; or the one at
    /// `$SLUICE_TEST_KAFKA` (bootstrap servers) if that is set.
    ///
    /// Blocks on first use. Give each test its own topics (see
    /// [`unique_name`](crate::unique_name)), since tests run in parallel.
    ///
    /// # Panics
    /// If the broker can't be started or reached: a precondition of the test.
    #[track_caller]
    pub fn shared() -> &'static Kafka {
        static SHARED: OnceLock<Result<Kafka, String>> = OnceLock::new();
        shared::get_or_start(&SHARED, "Kafka broker", || async {
            match std::env::var("SLUICE_TEST_KAFKA") {
                Ok(bootstrap) if !bootstrap.trim().is_empty() => Kafka::external(bootstrap).await,
                _ => Kafka::start().await,
            }
        })
    }

    /// A broker started by someone else, once it answers.
    pub async fn external(bootstrap: String) -> anyhow::Result<Self> {
        let probe = bootstrap.clone();
        tokio::task::spawn_blocking(move || check_metadata(&probe, None))
            .await?
            .with_context(|| format!("SLUICE_TEST_KAFKA={bootstrap} does not answer"))?;
        Ok(Self { bootstrap, secured_bootstrap: None, broker: None, others: Vec::new() })
    }

    /// The `bootstrap.servers` value for clients.
    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap.clone()
    }

    /// The second listener's `bootstrap.servers`, for a broker from [`Kafka::start_with_sasl`]
    /// or [`Kafka::start_with_tls`].
    pub fn secured_bootstrap_servers(&self) -> Option<String> {
        self.secured_bootstrap.clone()
    }

    /// Where the broker's stdout and stderr go; `None` for an external one.
    pub fn log_path(&self) -> Option<PathBuf> {
        self.broker.as_ref().map(Broker::log_path)
    }

    /// Creates `name` with `partitions` partitions, replication factor 1 and
    /// the given topic configs, and waits until every partition has a leader,
    /// so that producing to it at once succeeds.
    pub async fn create_topic(&self, name: &str, partitions: i32, config: &[(&str, &str)]) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = client_config(&self.bootstrap).create()?;
        let topic =
            config.iter().fold(NewTopic::new(name, partitions, TopicReplication::Fixed(1)), |topic, (key, value)| {
                topic.set(key, value)
            });
        let options = AdminOptions::new().operation_timeout(Some(CLIENT_TIMEOUT));
        for result in admin.create_topics([&topic], &options).await? {
            result.map_err(|(topic, code)| anyhow!("creating topic {topic}: {code}"))?;
        }
        let (bootstrap, name) = (self.bootstrap.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || await_leaders(&bootstrap, &name, partitions)).await?
    }

    /// Shuts the broker down cleanly: SIGTERM, then SIGKILL if it takes
    /// longer than 30 s. Its storage is kept for [`Kafka::restart`].
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.own_broker("stop")?.process.take() {
            let started = Instant::now();
            let status = process.terminate(STOP_GRACE).await?;
            eprintln!("sluice-tests: Kafka at {} stopped ({status}) in {:.1?}", self.bootstrap, started.elapsed());
        }
        Ok(())
    }

    /// Kills the broker with SIGKILL, as a crash would. Its storage is kept
    /// for [`Kafka::restart`].
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.own_broker("kill")?.process.take() {
            process.kill()?;
        }
        Ok(())
    }

    /// Starts the broker again on the same ports and storage (stopping it
    /// first if it runs), and returns once it answers again.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        let started = Instant::now();
        let bootstrap = self.bootstrap.clone();
        self.own_broker("restart")?.launch(&bootstrap).await?;
        eprintln!("sluice-tests: Kafka at {bootstrap} ready again in {:.1?}", started.elapsed());
        Ok(())
    }

    fn own_broker(&mut self, action: &str) -> anyhow::Result<&mut Broker> {
        self.broker.as_mut().ok_or_else(|| {
            anyhow!("can't {action} the broker at {}: the harness did not start it (SLUICE_TEST_KAFKA)", self.bootstrap)
        })
    }
}

impl Broker {
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("kafka.log")
    }

    /// Runs the broker on the prepared directory and waits until it is ready:
    /// its log says so, and it answers a metadata request as our cluster.
    async fn launch(&mut self, bootstrap: &str) -> anyhow::Result<()> {
        let log = self.log_path();
        // From the end: after a restart, the log holds the last run's line.
        let mut watcher = LogWatcher::from_end(&log)?;
        let mut cmd = java(&self.lib, self.dir.path(), "kafka.Kafka");
        cmd.arg("server.properties");
        let process = self.process.insert(Process::spawn("Kafka", cmd, &log)?);
        process.wait_ready(START_TIMEOUT, POLL_INTERVAL, async || watcher.seen(READY_LINE)).await?;
        let (probe, cluster_id) = (bootstrap.to_owned(), self.cluster_id.clone());
        tokio::task::spawn_blocking(move || check_metadata(&probe, Some(&cluster_id)))
            .await?
            .map_err(|e| process.failure(format_args!("logged it started but: {e:#}")))
    }
}

/// `java` running `main_class` from the jars in `lib`, in `dir`, logging
/// with `dir/log4j2.properties`.
fn java(lib: &Path, dir: &Path, main_class: &str) -> Command {
    let mut cmd = Command::new("java");
    cmd.current_dir(dir)
        // Enough for tests, and keeps two brokers plus a registry within
        // a small CI machine.
        .arg("-Xmx512m")
        .arg("-cp")
        .arg(lib.join("*"))
        .arg("-Dlog4j2.configurationFile=log4j2.properties")
        .arg(main_class);
    cmd
}

/// Assembles the Kafka jars into the cache once; returns their directory.
fn assemble() -> anyhow::Result<PathBuf> {
    let home = cache::ensure(&format!("kafka-{KAFKA_VERSION}"), POM, |home| {
        let pom = Path::new(env!("CARGO_MANIFEST_DIR")).join("harness/kafka-pom.xml");
        let mut mvn = Command::new("mvn");
        mvn.args(["-B", "-q", "-f"])
            .arg(&pom)
            .args(["dependency:copy-dependencies", "-DincludeScope=runtime"])
            .arg(format!("-DoutputDirectory={}", home.join("lib").display()));
        process::run("mvn dependency:copy-dependencies (Kafka)", mvn)
    })?;
    Ok(home.join("lib"))
}

/// A random cluster id as Kafka spells it: the 16 bytes of a UUID in
/// URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    loop {
        let id = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
        // Kafka's own generator skips these too: the command line would
        // take the id for an option.
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Users of the SASL listener: `(user, password)`, the first for `PLAIN`, the second for
/// `SCRAM-SHA-256`.
pub const SASL_USERS: [(&str, &str); 2] = [("sluice-plain", "plain-secret"), ("sluice-scram", "scram-secret")];

/// The listener a broker has beside its plain one.
#[derive(Clone)]
enum Secured {
    None,
    Sasl,
    /// `SSL`, with this PEM keystore.
    Tls(PathBuf),
}

fn server_properties(port: u16, controller_port: u16, secured: (u16, &Secured), data: &Path) -> String {
    let (listener, protocols, settings) = match secured {
        (_, Secured::None) => (String::new(), "", String::new()),
        (sasl, Secured::Sasl) => {
            let (user, password) = SASL_USERS[0];
            (
                format!(",SASL_PLAINTEXT://127.0.0.1:{sasl}"),
                ",SASL_PLAINTEXT:SASL_PLAINTEXT",
                format!(
                    "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256\n\
                     listener.name.sasl_plaintext.plain.sasl.jaas.config=\
                     org.apache.kafka.common.security.plain.PlainLoginModule required user_{user}=\"{password}\";\n\
                     listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=\
                     org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
                ),
            )
        }
        (tls, Secured::Tls(keystore)) => (
            format!(",SSL://localhost:{tls}"),
            ",SSL:SSL",
            format!("ssl.keystore.type=PEM\nssl.keystore.location={}\n", keystore.display()),
        ),
    };
    format!(
        "\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}{listener}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}{listener}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT{protocols}
{settings}log.dirs={data}
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.partitions=1
",
        data = data.display()
    )
}

/// Kafka's jars carry no logging configuration; without one log4j2 prints
/// only errors and the readiness line never appears.
const LOG4J2_PROPERTIES: &str = "\
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
";

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// Asks the broker for metadata and, if `cluster_id` is given, checks that
/// it is that cluster: a port taken by another broker between our probe and
/// our bind would otherwise pass for ours.
fn check_metadata(bootstrap: &str, cluster_id: Option<&str>) -> anyhow::Result<()> {
    let consumer: BaseConsumer = client_config(bootstrap).create()?;
    let metadata =
        consumer.fetch_metadata(None, CLIENT_TIMEOUT).with_context(|| format!("fetching metadata from {bootstrap}"))?;
    if metadata.brokers().is_empty() {
        bail!("{bootstrap} answered metadata without brokers");
    }
    if let Some(expected) = cluster_id {
        let actual = consumer.client().fetch_cluster_id(CLIENT_TIMEOUT);
        if actual.as_deref() != Some(expected) {
            bail!("{bootstrap} is cluster {actual:?}, not the one we formatted ({expected})");
        }
    }
    Ok(())
}

/// Waits until the metadata shows all `partitions` of `topic` with a leader.
fn await_leaders(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let consumer: BaseConsumer = client_config(bootstrap).create()?;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        let metadata = consumer.fetch_metadata(Some(topic), CLIENT_TIMEOUT)?;
        let ready = metadata.topics().iter().any(|t| {
            t.name() == topic
                && t.error().is_none()
                && t.partitions().len() == usize::try_from(partitions).unwrap_or(0)
                && t.partitions().iter().all(|p| p.leader() >= 0)
        });
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("topic {topic} has no leader for all {partitions} partitions after {CLIENT_TIMEOUT:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Reads `topic` from the beginning of every partition, without a consumer
/// group, until `expected_count` messages arrived or `timeout` passed; it
/// returns what it got either way, for the caller to assert on.
///
/// Reads committed messages only (librdkafka's default `read_committed`).
/// It stops at `expected_count`: to assert that no more than N arrive, ask
/// for N + 1 with a short timeout.
///
/// # Examples
/// ```no_run
/// # async fn example(bootstrap: &str) -> anyhow::Result<()> {
/// use rdkafka::Message as _;
/// use std::time::Duration;
///
/// let records = sluice_tests::consume_all(bootstrap, "orders", 3, Duration::from_secs(30)).await?;
/// assert_eq!(records.len(), 3);
/// assert_eq!(records[0].key(), Some(&b"order-1"[..]));
/// # Ok(())
/// # }
/// ```
pub async fn consume_all(
    bootstrap: &str,
    topic: &str,
    expected_count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<OwnedMessage>> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    // librdkafka's poll blocks; keep it off the runtime's workers, which
    // may be driving the gateway under test.
    tokio::task::spawn_blocking(move || consume_blocking(&bootstrap, &topic, expected_count, timeout)).await?
}

fn consume_blocking(
    bootstrap: &str,
    topic: &str,
    expected_count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<OwnedMessage>> {
    let deadline = Instant::now() + timeout;
    let consumer: BaseConsumer = client_config(bootstrap)
        // librdkafka refuses `assign` without a group id (UNKNOWN_GROUP).
        // With `assign` the group is never joined and nothing is committed,
        // so a unique id keeps it a name only.
        .set("group.id", crate::unique_name("sluice-tests-consume-all"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()?;
    let metadata = consumer
        .fetch_metadata(Some(topic), deadline.saturating_duration_since(Instant::now()))
        .with_context(|| format!("fetching metadata of {topic}"))?;
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .with_context(|| format!("no metadata for topic {topic}"))?;
    if let Some(error) = found.error() {
        bail!("topic {topic}: {}", RDKafkaErrorCode::from(error));
    }
    let mut assignment = TopicPartitionList::new();
    for partition in found.partitions() {
        assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;

    let mut messages = Vec::with_capacity(expected_count);
    while messages.len() < expected_count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match consumer.poll(left) {
            Some(Ok(message)) => messages.push(message.detach()),
            // Transient while a broker restarts; a lasting problem shows as
            // missing messages, and this line in the test's output says why.
            Some(Err(error)) => eprintln!("sluice-tests: consuming {topic}: {error}"),
            None => {}
        }
    }
    Ok(messages)
}

/// Which records a reader sees of a transactional topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Only records of committed transactions (and non-transactional ones), up to the last
    /// stable offset.
    ReadCommitted,
    /// Everything written, aborted transactions included, up to the high watermark.
    ReadUncommitted,
}

/// Every record of a topic, read to the end of each partition (as far as `isolation` lets a
/// reader go): what a consumer started now would see. Transaction markers take offsets but are
/// not records, so this counts records where watermarks cannot.
pub async fn read_to_end(bootstrap: &str, topic: &str, isolation: Isolation) -> anyhow::Result<Vec<OwnedMessage>> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let consumer: BaseConsumer = client_config(&bootstrap)
            .set("group.id", crate::unique_name("sluice-tests-read-to-end"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set(
                "isolation.level",
                if isolation == Isolation::ReadCommitted { "read_committed" } else { "read_uncommitted" },
            )
            .create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .with_context(|| format!("no metadata for topic {topic}"))?
            .partitions()
            .iter()
            .map(|p| p.id())
            .collect();
        let mut assignment = TopicPartitionList::new();
        for partition in &partitions {
            assignment.add_partition_offset(&topic, *partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let mut open: std::collections::BTreeSet<i32> = partitions.into_iter().collect();
        let mut messages = Vec::new();
        while !open.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            anyhow::ensure!(!left.is_zero(), "{topic}: partitions {open:?} were not read to their end in time");
            match consumer.poll(left.min(Duration::from_millis(200))) {
                Some(Ok(message)) => messages.push(message.detach()),
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                    open.remove(&partition);
                }
                Some(Err(error)) => eprintln!("sluice-tests: reading {topic}: {error}"),
                None => {}
            }
        }
        Ok(messages)
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_entry_is_named_for_the_version_the_pom_assembles() {
        assert!(POM.contains(&format!("<kafka.version>{KAFKA_VERSION}</kafka.version>")));
    }

    #[test]
    fn cluster_ids_are_22_url_safe_characters() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(!id.starts_with('-'));
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
