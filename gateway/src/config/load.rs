//! Reading a configuration file and reporting every problem in it at once.
//!
//! serde stops at the first error, which makes fixing a config a slow loop. Here each section and
//! each `[[topics]]` entry is deserialized on its own, and after an error the offending key is
//! removed and deserialization retried, so one pass lists every unknown key, wrong type and bad
//! value with its key path (`topics[2].format`). Cross-field checks then run on whatever parsed.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::subscription::SubscriptionSpec;
use super::{
    AdminConfig, AuthConfig, Config, DeliveryConfig, ExactlyOnceConfig, HttpConfig, KafkaConfig, LimitsConfig,
    PluginConfig, PluginHostConfig, RegistryConfig, TelemetryConfig, TopicConfig, TransformConfig, validate, vars,
};

/// One thing wrong with a configuration, at a key path like `topics[1].key` (empty for the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Reads, expands and checks a configuration file.
pub fn load_file(path: &Path) -> Result<Config, Vec<Problem>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Problem::new("", format!("cannot read {}: {e}", path.display()))])?;
    load_str(&text, |name| std::env::var(name).ok())
}

/// Expands and checks configuration text; `env` looks up variables.
pub fn load_str(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, Vec<Problem>> {
    let text = vars::expand(text, env).map_err(|ps| ps.into_iter().map(|m| Problem::new("", m)).collect::<Vec<_>>())?;
    let mut root: toml::Table = toml::from_str(&text).map_err(|e| vec![Problem::new("", e.to_string().trim_end())])?;

    let mut problems = Vec::new();
    let http = section::<HttpConfig>(&mut root, "http", &mut problems).or_else(|| Some(HttpConfig::default()));
    let kafka = match root.remove("kafka") {
        Some(value) => collect::<KafkaConfig>(value, "kafka", &mut problems),
        None => {
            problems.push(Problem::new("kafka", "missing section (bootstrap_servers is required)"));
            None
        }
    };
    let registry =
        section::<RegistryConfig>(&mut root, "registry", &mut problems).or_else(|| Some(RegistryConfig::default()));
    let topics = array::<TopicConfig>(&mut root, "topics", &mut problems);
    let plugins = array::<PluginConfig>(&mut root, "plugins", &mut problems);
    let plugin_host = section::<PluginHostConfig>(&mut root, "plugin_host", &mut problems)
        .or_else(|| Some(PluginHostConfig::default()));
    let admin = match root.remove("admin") {
        None => Some(None),
        Some(value) => collect::<AdminConfig>(value, "admin", &mut problems).map(Some),
    };
    let subscriptions = array::<SubscriptionSpec>(&mut root, "subscriptions", &mut problems);
    let delivery =
        section::<DeliveryConfig>(&mut root, "delivery", &mut problems).or_else(|| Some(DeliveryConfig::default()));
    let auth = match root.remove("auth") {
        None => Some(None),
        Some(value) => collect::<AuthConfig>(value, "auth", &mut problems).map(Some),
    };
    let limits = section::<LimitsConfig>(&mut root, "limits", &mut problems).or_else(|| Some(LimitsConfig::default()));
    let telemetry =
        section::<TelemetryConfig>(&mut root, "telemetry", &mut problems).or_else(|| Some(TelemetryConfig::default()));
    let exactly_once = section::<ExactlyOnceConfig>(&mut root, "exactly_once", &mut problems)
        .or_else(|| Some(ExactlyOnceConfig::default()));
    let transforms = array::<TransformConfig>(&mut root, "transforms", &mut problems);
    for key in root.keys() {
        problems.push(Problem::new(
            key.clone(),
            "unknown section (expected http, kafka, registry, topics, plugins, plugin_host, admin, subscriptions, \
             delivery, auth, limits, telemetry, exactly_once or transforms)",
        ));
    }

    if let Some(http) = &http {
        validate::http(http, &mut problems);
    }
    if let Some(kafka) = &kafka {
        validate::kafka(kafka, &mut problems);
    }
    if let Some(registry) = &registry {
        validate::registry(registry, &mut problems);
    }
    if let Some(topics) = &topics {
        validate::topics(topics, &mut problems);
    }
    if let Some(plugins) = &plugins {
        validate::plugins(plugins, plugin_host.as_ref(), &mut problems);
        if let Some(topics) = &topics {
            validate::route_plugins(topics, plugins, &mut problems);
        }
    }
    if let Some(Some(admin)) = &admin {
        validate::admin(admin, &mut problems);
    }
    if let Some(delivery) = &delivery {
        validate::delivery(delivery, &mut problems);
    }
    if let Some(subscriptions) = &subscriptions {
        validate::subscriptions(subscriptions, plugins.as_deref().unwrap_or_default(), &mut problems);
    }
    if let Some(Some(auth)) = &auth {
        validate::auth(auth, &mut problems);
    }
    if let Some(limits) = &limits {
        validate::limits(limits, &mut problems);
    }
    if let Some(telemetry) = &telemetry {
        validate::telemetry(telemetry, &mut problems);
    }
    if let (Some(exactly_once), Some(kafka)) = (&exactly_once, &kafka) {
        validate::exactly_once(exactly_once, kafka, &mut problems);
    }
    if let (Some(transforms), Some(topics)) = (&transforms, &topics) {
        validate::transforms(transforms, topics, plugins.as_deref().unwrap_or_default(), &mut problems);
    }

    let sections = (
        http,
        kafka,
        registry,
        topics,
        plugins,
        plugin_host,
        admin,
        subscriptions,
        delivery,
        auth,
        limits,
        telemetry,
        exactly_once,
        transforms,
    );
    match sections {
        (
            Some(http),
            Some(kafka),
            Some(registry),
            Some(topics),
            Some(plugins),
            Some(plugin_host),
            Some(admin),
            Some(subscriptions),
            Some(delivery),
            Some(auth),
            Some(limits),
            Some(telemetry),
            Some(exactly_once),
            Some(transforms),
        ) if problems.is_empty() => {
            let config = Config {
                http,
                kafka,
                registry,
                topics,
                plugins,
                plugin_host,
                admin,
                subscriptions,
                delivery,
                auth,
                limits,
                telemetry,
                exactly_once,
                transforms,
            };
            validate::internal_topics(&config, &mut problems);
            if problems.is_empty() { Ok(config) } else { Err(problems) }
        }
        _ => Err(problems),
    }
}

/// An array of tables (`[[name]]`), each entry deserialized and reported on its own.
fn array<T: DeserializeOwned>(root: &mut toml::Table, name: &str, problems: &mut Vec<Problem>) -> Option<Vec<T>> {
    match root.remove(name) {
        None => Some(Vec::new()),
        Some(toml::Value::Array(entries)) => {
            let parsed: Vec<Option<T>> = entries
                .into_iter()
                .enumerate()
                .map(|(i, entry)| collect::<T>(entry, &format!("{name}[{i}]"), problems))
                .collect();
            parsed.into_iter().collect::<Option<Vec<_>>>()
        }
        Some(_) => {
            problems.push(Problem::new(name, format!("must be an array of tables: write each entry as [[{name}]]")));
            None
        }
    }
}

fn section<T: DeserializeOwned>(root: &mut toml::Table, name: &str, problems: &mut Vec<Problem>) -> Option<T> {
    let value = root.remove(name)?;
    collect(value, name, problems)
}

/// Deserializes `value`, and after each error removes the offending key and tries again, so that
/// every problem in the value is reported.
fn collect<T: DeserializeOwned>(mut value: toml::Value, prefix: &str, problems: &mut Vec<Problem>) -> Option<T> {
    let mut removed: HashSet<String> = HashSet::new();
    for _ in 0..64 {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(parsed) => return Some(parsed),
            Err(error) => error,
        };
        let segments: Vec<String> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                Segment::Map { key } => Some(key.clone()),
                Segment::Seq { index } => Some(index.to_string()),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect();
        let message = error.inner().to_string();
        // serde names a missing field in the message, at its parent's path.
        if let Some(field) = missing_field(&message) {
            let mut full = segments.clone();
            full.push(field.to_owned());
            let path = join(prefix, &full);
            // A missing field that we removed ourselves was already reported as a bad value.
            if !removed.contains(&path) {
                problems.push(Problem::new(path, format!("missing required key '{field}'")));
            }
            return None;
        }
        let path = join(prefix, &segments);
        problems.push(Problem::new(path.clone(), message));
        if segments.is_empty() || !remove(&mut value, &segments) {
            return None;
        }
        removed.insert(path);
    }
    None
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn remove(value: &mut toml::Value, segments: &[String]) -> bool {
    let Some((last, parents)) = segments.split_last() else { return false };
    let mut current = value;
    for segment in parents {
        current = match current {
            toml::Value::Table(table) => match table.get_mut(segment) {
                Some(next) => next,
                None => return false,
            },
            toml::Value::Array(items) => match segment.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match current {
        toml::Value::Table(table) => table.remove(last).is_some(),
        _ => false,
    }
}

/// `kafka` + `["librdkafka", "acks"]` → `kafka.librdkafka."acks"`-style paths; keys with dots are
/// quoted as in TOML.
fn join(prefix: &str, segments: &[String]) -> String {
    let mut out = prefix.to_owned();
    for segment in segments {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            if segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                out.push_str(segment);
            } else {
                out.push_str(&format!("\"{segment}\""));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Ack, Format, SchemaVersion, TopicConfig};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn loads_a_full_config_with_defaults() {
        let config = load_str(
            r#"
            [kafka]
            bootstrap_servers = "${BOOTSTRAP:-localhost:9092}"
            [kafka.librdkafka]
            "socket.keepalive.enable" = "true"

            [[topics]]
            name = "orders.placed"
            format = "avro"
            key = "/order_id"

            [[topics]]
            name = "clicks"
            format = "json"
            ack = "fire-and-forget"
            "#,
            no_env,
        )
        .unwrap();
        assert_eq!(config.kafka.bootstrap_servers, "localhost:9092");
        assert_eq!(config.http.max_body_bytes, 1 << 20);
        assert!(config.registry.is_embedded());
        assert_eq!(config.topics[0].subject(), "orders.placed-value");
        assert_eq!(config.topics[0].schema_version, SchemaVersion::Latest);
        assert_eq!(config.topics[0].format, Format::Avro);
        assert_eq!(config.topics[1].ack, Ack::FireAndForget);
    }

    #[test]
    fn subjects_follow_confluents_name_strategies() {
        let config = load_str(
            r#"
            [kafka]
            bootstrap_servers = "k:9092"
            [[topics]]
            name = "a"
            format = "avro"
            [[topics]]
            name = "b"
            format = "avro"
            subject_strategy = "record"
            record = "shop.OrderPlaced"
            [[topics]]
            name = "c"
            format = "avro"
            subject_strategy = "topic-record"
            record = "shop.OrderPlaced"
            [[topics]]
            name = "d"
            format = "json-schema"
            subject = "shared-{topic}"
            "#,
            no_env,
        )
        .unwrap();
        let subjects: Vec<String> = config.topics.iter().map(TopicConfig::subject).collect();
        assert_eq!(subjects, ["a-value", "shop.OrderPlaced", "c-shop.OrderPlaced", "shared-d"]);
        let problems = load_str(
            "[kafka]\nbootstrap_servers = \"k\"\n[[topics]]\nname = \"a\"\nformat = \"avro\"\nsubject_strategy = \"record\"\n",
            no_env,
        )
        .unwrap_err();
        assert_eq!(problems[0].path, "topics[0].record");
    }

    #[test]
    fn a_protobuf_route_names_its_message_under_any_strategy() {
        let config = load_str(
            r#"
            [kafka]
            bootstrap_servers = "k:9092"
            [[topics]]
            name = "payments"
            format = "protobuf"
            message = "shop.v1.PaymentConfirmed"
            unknown_fields = "ignore"
            "#,
            no_env,
        )
        .unwrap();
        let route = crate::route::Route::from(&config.topics[0]);
        assert_eq!(
            (route.subject.as_str(), route.message.as_deref()),
            ("payments-value", Some("shop.v1.PaymentConfirmed"))
        );
        assert!(!route.reject_unknown);
        // Elsewhere `record` still belongs to the record strategies, and JSON Schema keeps its own rule.
        let problems = load_str(
            "[kafka]\nbootstrap_servers = \"k\"\n[[topics]]\nname = \"a\"\nformat = \"avro\"\nrecord = \"R\"\n\
             [[topics]]\nname = \"b\"\nformat = \"json-schema\"\nunknown_fields = \"ignore\"\n",
            no_env,
        )
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["topics[0].record", "topics[1].unknown_fields"]);
    }

    #[test]
    fn reports_every_problem_with_its_key_path() {
        let problems = load_str(
            r#"
            [http]
            listen = "nowhere"
            max_body_bytes = "big"

            [kafka]
            bootstrap_servers = ""
            linger = 5
            [kafka.librdkafka]
            "acks" = "1"
            "bootstrap.servers" = "other:9092"
            "queued.max.messages.kbytes" = "65536"

            [registry]
            url = "ftp://registry"

            [[topics]]
            name = "orders.placed"
            format = "xml"
            colour = "red"

            [[topics]]
            name = "orders.placed"
            format = "avro"
            key = "order_id"
            schema_version = 0

            [[topics]]
            format = "json"

            [metrics]
            "#,
            no_env,
        )
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        for expected in [
            "http.listen",
            "http.max_body_bytes",
            "kafka.linger",
            "kafka.bootstrap_servers",
            "kafka.librdkafka.\"acks\"",
            "kafka.librdkafka.\"bootstrap.servers\"",
            "kafka.librdkafka.\"queued.max.messages.kbytes\"",
            "registry.url",
            "topics[0].colour",
            "topics[0].format",
            "topics[1].schema_version",
            "topics[2].name",
            "metrics",
        ] {
            assert!(paths.contains(&expected), "{expected} not in {problems:#?}");
        }
        assert!(!paths.contains(&"topics[1].key"), "topics[1] failed structurally, so its key is not checked yet");
        assert_eq!(problems.iter().filter(|p| p.path == "topics[0].format").count(), 1, "{problems:#?}");
    }

    #[test]
    fn cross_field_problems_are_reported_together() {
        let problems = load_str(
            r#"
            [kafka]
            bootstrap_servers = "k:9092"
            security_protocol = "sasl_ssl"
            [registry]
            url = "http://r:8081"
            [registry.auth]
            username = "u"
            bearer_token = "t"
            [[topics]]
            name = "a"
            format = "json"
            subject = "a-value"
            [[topics]]
            name = "a"
            format = "avro"
            key = "order_id"
            [[topics]]
            name = "bad topic!"
            format = "avro"
            [delivery]
            max_prefetch_kbytes = 0
            [plugin_host]
            nice = 20
            "#,
            no_env,
        )
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        for expected in [
            "kafka.sasl: required",
            "delivery.max_prefetch_kbytes: must be",
            "plugin_host.nice: must be between 0 and 19",
            "registry.auth: ",
            "topics[0].subject: ",
            "topics[1].name: duplicate",
            "topics[1].key: ",
            "topics[2].name: ",
        ] {
            assert!(text.iter().any(|t| t.starts_with(expected)), "{expected} not in {text:#?}");
        }
    }

    #[test]
    fn bytes_routes_have_no_schema_or_pointers_and_the_confluent_prefix_is_a_path() {
        let problems = load_str(
            r#"
            [http]
            confluent_prefix = "/v1/kafka"
            [kafka]
            bootstrap_servers = "k:9092"
            [[topics]]
            name = "raw"
            format = "bytes"
            subject = "raw-value"
            key = "/id"
            event_id = "/id"
            key_format = "avro"
            "#,
            no_env,
        )
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        for expected in [
            "http.confluent_prefix: ",
            "topics[0].subject: a bytes route",
            "topics[0].key: a bytes route",
            "topics[0].event_id: a bytes route",
            "topics[0].key_format: a bytes route",
        ] {
            assert!(text.iter().any(|t| t.starts_with(expected)), "{expected} not in {text:#?}");
        }
        let config = load_str(
            "[http]\nconfluent_prefix = \"/kafka\"\n[kafka]\nbootstrap_servers = \"k:9092\"\n[[topics]]\nname = \"raw\"\nformat = \"bytes\"\n",
            no_env,
        )
        .unwrap();
        assert_eq!((config.topics[0].format, config.http.confluent_prefix.as_str()), (Format::Bytes, "/kafka"));
    }

    #[test]
    fn transforms_and_exactly_once_settings_are_checked_together() {
        let problems = load_str(
            r#"
            [kafka]
            bootstrap_servers = "k:9092"
            delivery_timeout_ms = 20000
            [exactly_once]
            replica_id = "two words"
            producers = 0
            [[topics]]
            name = "orders.shipped"
            format = "json"
            [[transforms]]
            name = "ship"
            inputs = ["orders.shipped", "_sluice_schemas"]
            output = "orders.shipped"
            plugins = ["ghost"]
            on_plugin_error = "dead-letter"
            [[transforms]]
            name = "ship"
            inputs = ["a"]
            output = "nowhere"
            "#,
            no_env,
        )
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        for expected in [
            "exactly_once.replica_id: ",
            "exactly_once.producers: ",
            "exactly_once.transaction_timeout_ms: must be at least 1000 and at least kafka.delivery_timeout_ms",
            "transforms[0].inputs: must not include the output",
            "transforms[0].plugins: 'ghost' is not declared",
            "transforms[0].dead_letter_topic: required",
            "transforms[1].name: duplicate",
            "transforms[1].output: 'nowhere' is not a [[topics]] route",
        ] {
            assert!(text.iter().any(|t| t.starts_with(expected)), "{expected} not in {text:#?}");
        }
    }

    #[test]
    fn unset_variables_and_syntax_errors_are_reported() {
        let problems = load_str("[kafka]\nbootstrap_servers = \"${KAFKA}\"\n", no_env).unwrap_err();
        assert!(problems[0].message.contains("KAFKA is not set"));
        let problems = load_str("[kafka\n", no_env).unwrap_err();
        assert!(problems[0].message.contains("line 1"), "{problems:?}");
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sluice.toml");
        let config = load_file(&path).unwrap_or_else(|problems| panic!("{problems:#?}"));
        assert_eq!(config.topics.len(), 3);
    }

    /// The configs deploy/ ships (compose, Kubernetes) load, with the variables their
    /// environments set there (a variable the environment lacks would be an error).
    #[test]
    fn the_deploy_configs_are_valid() {
        let env = |name: &str| {
            let value = match name {
                "KAFKA_BOOTSTRAP" => "kafka:9092",
                "KAFKA_SASL_USERNAME" | "KAFKA_SASL_PASSWORD" | "OTLP_API_KEY" => "secret",
                "SCHEMA_REGISTRY_URL" => "http://schema-registry:8081",
                "CHECKOUT_KEY_SHA256" => "0000000000000000000000000000000000000000000000000000000000000000",
                "OTLP_ENDPOINT" => "http://otel-collector:4318/v1/traces",
                "SLUICE_ADMIN_TOKEN" => "change-me-to-at-least-32-random-characters",
                "SLUICE_SECRETS_KEY" => "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
                _ => return None,
            };
            Some(value.to_owned())
        };
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let compose = std::fs::read_to_string(deploy.join("compose/sluice.toml")).unwrap();
        let config = load_str(&compose, env).unwrap_or_else(|problems| panic!("compose: {problems:#?}"));
        assert_eq!(config.subscriptions.len(), 1);
        let kubernetes = std::fs::read_to_string(deploy.join("kubernetes/sluice.toml")).unwrap();
        let config = load_str(&kubernetes, env).unwrap_or_else(|problems| panic!("kubernetes: {problems:#?}"));
        assert!(config.auth.is_some() && config.admin.is_some() && config.telemetry.otlp_endpoint.is_some());
        assert_eq!(config.plugin_host.cache_dir.as_deref(), Some(Path::new("/var/cache/sluice/compiled")));
    }
}
