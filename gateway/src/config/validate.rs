//! Cross-field checks that types alone cannot express. Each function appends every problem it
//! finds; none stops at the first.

use std::collections::HashMap;

use super::subscription::SubscriptionSpec;
use super::{
    AdminConfig, DeliveryConfig, ExactlyOnceConfig, Format, HttpConfig, KafkaConfig, OnPluginError, PluginConfig,
    PluginHostConfig, Problem, RegistryConfig, SchemaVersion, SubjectStrategy, TelemetryConfig, TopicConfig,
    TransformConfig, UnknownFields,
};

/// librdkafka properties that Sluice sets itself, from typed fields or to keep its guarantees
/// (idempotent `acks=all` delivery, Java-compatible partitioning, no topic auto-creation).
const RESERVED_LIBRDKAFKA: &[(&str, &str)] = &[
    ("bootstrap.servers", "kafka.bootstrap_servers"),
    ("metadata.broker.list", "kafka.bootstrap_servers"),
    ("security.protocol", "kafka.security_protocol"),
    ("sasl.mechanism", "kafka.sasl.mechanism"),
    ("sasl.mechanisms", "kafka.sasl.mechanism"),
    ("sasl.username", "kafka.sasl.username"),
    ("sasl.password", "kafka.sasl.password"),
    ("ssl.ca.location", "kafka.tls.ca_file"),
    ("ssl.certificate.location", "kafka.tls.cert_file"),
    ("ssl.key.location", "kafka.tls.key_file"),
    ("ssl.endpoint.identification.algorithm", "kafka.tls.verify_hostname"),
    ("client.id", "kafka.client_id"),
    ("linger.ms", "kafka.linger_ms"),
    ("queue.buffering.max.ms", "kafka.linger_ms"),
    ("message.timeout.ms", "kafka.delivery_timeout_ms"),
    ("delivery.timeout.ms", "kafka.delivery_timeout_ms"),
    ("queue.buffering.max.messages", "kafka.max_in_flight_events"),
    ("compression.type", "kafka.compression"),
    ("compression.codec", "kafka.compression"),
    ("acks", "Sluice's acks=all guarantee"),
    ("request.required.acks", "Sluice's acks=all guarantee"),
    ("enable.idempotence", "Sluice's idempotent producer"),
    ("max.in.flight.requests.per.connection", "Sluice's idempotent producer"),
    ("max.in.flight", "Sluice's idempotent producer"),
    ("transactional.id", "Sluice's idempotent producer"),
    ("partitioner", "Java-compatible murmur2 partitioning"),
    ("allow.auto.create.topics", "Sluice's no-auto-create rule"),
    ("queued.max.messages.kbytes", "delivery.max_prefetch_kbytes"),
];

pub(super) fn http(http: &HttpConfig, problems: &mut Vec<Problem>) {
    if http.max_body_bytes == 0 {
        problems.push(Problem::new("http.max_body_bytes", "must be greater than 0"));
    }
    if http.max_events_per_request == 0 {
        problems.push(Problem::new("http.max_events_per_request", "must be greater than 0"));
    }
    let prefix = &http.confluent_prefix;
    if !prefix.is_empty()
        && (!prefix.starts_with('/')
            || prefix.ends_with('/')
            || ["/v1", "/registry", "/admin"].iter().any(|own| prefix == own || prefix.starts_with(&format!("{own}/"))))
    {
        problems.push(Problem::new(
            "http.confluent_prefix",
            format!("'{prefix}' must be empty or a path such as /kafka (starting with '/', not ending with one, outside Sluice's own /v1, /registry and /admin)"),
        ));
    }
    if let Some(tls) = &http.tls {
        for (key, path) in [("http.tls.cert_file", &tls.cert_file), ("http.tls.key_file", &tls.key_file)] {
            if !path.is_file() {
                problems.push(Problem::new(key, format!("{} is not a readable file", path.display())));
            }
        }
        if tls.reload_interval_s == 0 {
            problems.push(Problem::new("http.tls.reload_interval_s", "must be greater than 0"));
        }
    }
    if http.idempotency_window_s > 0 && http.idempotency_max_bytes == 0 {
        problems.push(Problem::new("http.idempotency_max_bytes", "must be greater than 0 while the window is on"));
    }
}

pub(super) fn exactly_once(config: &ExactlyOnceConfig, kafka: &KafkaConfig, problems: &mut Vec<Problem>) {
    let key = |field: &str| format!("exactly_once.{field}");
    if config.replica_id.is_empty()
        || config.replica_id.len() > 200
        || !config.replica_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        problems.push(Problem::new(key("replica_id"), "must be 1-200 characters of letters, digits, '.', '_' or '-'"));
    }
    if config.producers == 0 || config.producers > 256 {
        problems.push(Problem::new(key("producers"), "must be between 1 and 256"));
    }
    if config.acquire_timeout_ms == 0 {
        problems.push(Problem::new(key("acquire_timeout_ms"), "must be greater than 0"));
    }
    // librdkafka refuses a delivery timeout longer than the transaction timeout.
    if config.transaction_timeout_ms < 1000 || config.transaction_timeout_ms < kafka.delivery_timeout_ms {
        problems.push(Problem::new(
            key("transaction_timeout_ms"),
            format!("must be at least 1000 and at least kafka.delivery_timeout_ms ({})", kafka.delivery_timeout_ms),
        ));
    }
    if !(1..=1000).contains(&config.idempotency_partitions) {
        problems.push(Problem::new(key("idempotency_partitions"), "must be between 1 and 1000"));
    }
    if config.idempotency_topic.trim().is_empty() {
        problems.push(Problem::new(key("idempotency_topic"), "must not be empty"));
    }
}

pub(super) fn transforms(
    transforms: &[TransformConfig],
    topics: &[TopicConfig],
    plugins: &[PluginConfig],
    problems: &mut Vec<Problem>,
) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, transform) in transforms.iter().enumerate() {
        if let Some(first) = seen.insert(&transform.name, i) {
            problems.push(Problem::new(format!("transforms[{i}].name"), format!("duplicate of transforms[{first}]")));
        }
        let is_route = |name: &str| topics.iter().any(|t| t.name == name);
        let is_plugin = |name: &str| plugins.iter().any(|p| p.name == name);
        for (field, message) in transform.problems(&is_route, &is_plugin) {
            problems.push(Problem::new(format!("transforms[{i}].{field}"), message));
        }
    }
}

pub(super) fn kafka(kafka: &KafkaConfig, problems: &mut Vec<Problem>) {
    if kafka.bootstrap_servers.trim().is_empty() {
        problems.push(Problem::new("kafka.bootstrap_servers", "must list at least one host:port"));
    }
    match (kafka.security_protocol.uses_sasl(), &kafka.sasl) {
        (true, None) => problems.push(Problem::new(
            "kafka.sasl",
            format!("required when security_protocol is {}", kafka.security_protocol.as_librdkafka()),
        )),
        (false, Some(_)) => problems.push(Problem::new(
            "kafka.sasl",
            "set, but security_protocol is not sasl_plaintext or sasl_ssl, so it would be ignored",
        )),
        _ => {}
    }
    if let Some(tls) = &kafka.tls {
        if !kafka.security_protocol.uses_tls() {
            problems.push(Problem::new(
                "kafka.tls",
                "set, but security_protocol is not ssl or sasl_ssl, so it would be ignored",
            ));
        }
        for (key, file) in [("ca_file", &tls.ca_file), ("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
            if let Some(file) = file
                && !file.is_file()
            {
                problems.push(Problem::new(
                    format!("kafka.tls.{key}"),
                    format!("{} is not a readable file", file.display()),
                ));
            }
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            problems.push(Problem::new("kafka.tls", "cert_file and key_file go together"));
        }
    }
    if kafka.delivery_timeout_ms <= kafka.linger_ms {
        problems.push(Problem::new("kafka.delivery_timeout_ms", "must be greater than linger_ms"));
    }
    if kafka.max_in_flight_events == 0 {
        problems.push(Problem::new("kafka.max_in_flight_events", "must be greater than 0"));
    }
    for key in kafka.librdkafka.keys() {
        if let Some((_, owner)) = RESERVED_LIBRDKAFKA.iter().find(|(reserved, _)| reserved == key) {
            problems.push(Problem::new(
                format!("kafka.librdkafka.\"{key}\""),
                format!("is set by {owner}; it cannot be passed through"),
            ));
        }
    }
}

pub(super) fn registry(registry: &RegistryConfig, problems: &mut Vec<Problem>) {
    if !registry.is_embedded() {
        match reqwest::Url::parse(&registry.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            Ok(url) => {
                problems.push(Problem::new("registry.url", format!("scheme '{}' is not http or https", url.scheme())))
            }
            Err(e) => {
                problems.push(Problem::new("registry.url", format!("expected \"embedded\" or an http(s) URL: {e}")))
            }
        }
    }
    if let Some(auth) = &registry.auth {
        if registry.is_embedded() {
            problems.push(Problem::new("registry.auth", "the embedded registry takes no credentials"));
        }
        if auth.bearer_token.is_some() && (auth.username.is_some() || auth.password.is_some()) {
            problems.push(Problem::new("registry.auth", "use either username/password or bearer_token, not both"));
        }
        if auth.username.is_some() != auth.password.is_some() {
            problems.push(Problem::new("registry.auth", "username and password go together"));
        }
    }
    if registry.timeout_ms == 0 {
        problems.push(Problem::new("registry.timeout_ms", "must be greater than 0"));
    }
    if let Err(why) = check_topic_name(&registry.topic) {
        problems.push(Problem::new("registry.topic", why));
    }
}

pub(super) fn topics(topics: &[TopicConfig], problems: &mut Vec<Problem>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, topic) in topics.iter().enumerate() {
        let at = |key: &str| format!("topics[{i}].{key}");
        // A pattern (`orders.*`): `*` stands for one or more characters of a topic name.
        let name = topic.name.replace('*', "x");
        if let Err(why) = check_topic_name(&name) {
            problems.push(Problem::new(at("name"), why));
        }
        if crate::route::is_pattern(&topic.name) && topic.subject.as_ref().is_some_and(|s| !s.contains("{topic}")) {
            problems.push(Problem::new(
                at("subject"),
                "a pattern route's topics need subjects of their own: use {topic} in it, or a subject_strategy",
            ));
        }
        if let Some(first) = seen.insert(&topic.name, i) {
            problems.push(Problem::new(at("name"), format!("duplicate of topics[{first}]")));
        }
        if topic.format == Format::Bytes {
            let fields = [
                ("subject", topic.subject.is_some()),
                ("record", topic.record.is_some()),
                ("schema_version", topic.schema_version != SchemaVersion::Latest),
                ("key", topic.key.is_some()),
                ("key_format", topic.key_format.is_some()),
                ("event_id", topic.event_id.is_some()),
            ];
            for (field, _) in fields.iter().filter(|(_, set)| *set) {
                problems.push(Problem::new(
                    at(field),
                    "a bytes route's values are not JSON: it has no schema and no JSON pointers",
                ));
            }
        }
        if topic.format == Format::Json {
            if topic.subject.is_some() {
                problems.push(Problem::new(at("subject"), "a json (schemaless) route has no schema"));
            }
            if topic.schema_version != SchemaVersion::Latest {
                problems.push(Problem::new(at("schema_version"), "a json (schemaless) route has no schema"));
            }
        }
        if !matches!(topic.format, Format::Avro | Format::Protobuf) && topic.unknown_fields != UnknownFields::Reject {
            problems.push(Problem::new(
                at("unknown_fields"),
                "applies to avro and protobuf routes only; JSON Schema decides with additionalProperties",
            ));
        }
        if let Some(subject) = &topic.subject
            && subject.trim().is_empty()
        {
            problems.push(Problem::new(at("subject"), "must not be empty"));
        }
        match (topic.subject_strategy, &topic.record, &topic.subject) {
            // A Protobuf route may name its message under any strategy.
            (SubjectStrategy::Topic, Some(_), _) if topic.format != Format::Protobuf => {
                problems.push(Problem::new(at("record"), "only used by the record and topic-record subject strategies"))
            }
            (SubjectStrategy::Record | SubjectStrategy::TopicRecord, None, _) => problems.push(Problem::new(
                at("record"),
                "required by the record and topic-record subject strategies (the record's full name)",
            )),
            (SubjectStrategy::Record | SubjectStrategy::TopicRecord, _, Some(_)) => {
                problems.push(Problem::new(at("subject"), "give either subject or subject_strategy, not both"))
            }
            _ => {}
        }
        for (field, pointer) in [("key", &topic.key), ("event_id", &topic.event_id)] {
            if let Some(pointer) = pointer
                && let Err(why) = check_pointer(pointer)
            {
                problems.push(Problem::new(at(field), why));
            }
        }
        if let Some(create) = &topic.create {
            if crate::route::is_pattern(&topic.name) {
                problems.push(Problem::new(at("create"), "a pattern route names no topic to create"));
            }
            if create.partitions < 1 {
                problems.push(Problem::new(at("create.partitions"), "must be at least 1"));
            }
            if create.replication_factor.is_some_and(|r| r < 1) {
                problems.push(Problem::new(at("create.replication_factor"), "must be at least 1"));
            }
            match (create.min_insync_replicas, create.replication_factor) {
                (Some(min), _) if min < 1 => {
                    problems.push(Problem::new(at("create.min_insync_replicas"), "must be at least 1"))
                }
                (Some(min), Some(replicas)) if min > i32::from(replicas) => problems.push(Problem::new(
                    at("create.min_insync_replicas"),
                    format!("{min} is more than the replication factor ({replicas}): no write could succeed"),
                )),
                _ => {}
            }
            if create.retention_ms.is_some_and(|ms| ms < -1) {
                problems.push(Problem::new(at("create.retention_ms"), "must be -1 (forever) or more"));
            }
            if let Some(policy) = &create.cleanup_policy
                && !["delete", "compact", "compact,delete", "delete,compact"].contains(&policy.as_str())
            {
                problems.push(Problem::new(at("create.cleanup_policy"), "is delete, compact or compact,delete"));
            }
        }
        if matches!(topic.key_format, Some(Format::Json | Format::Bytes)) {
            problems.push(Problem::new(
                at("key_format"),
                "a key schema is avro, protobuf or json-schema (leave key_format out for text keys)",
            ));
        }
        if topic.key_subject.is_some() && topic.key_format.is_none() {
            problems.push(Problem::new(at("key_subject"), "only used with key_format"));
        }
    }
}

/// Kafka's own rule for topic names.
pub(crate) fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err("a topic name has 1 to 249 characters".into());
    }
    if name == "." || name == ".." {
        return Err(format!("'{name}' is not a legal topic name"));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("'{name}' contains {bad:?}; topic names use ASCII letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

/// RFC 6901: empty, or `/`-separated tokens where `~` is only followed by `0` or `1`.
fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.starts_with('/') {
        return Err(format!("'{pointer}' is not a JSON pointer (it must start with '/', e.g. \"/{pointer}\")"));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!("'{pointer}': '~' must be followed by 0 or 1"));
        }
    }
    Ok(())
}

pub(super) fn plugins(plugins: &[PluginConfig], host: Option<&PluginHostConfig>, problems: &mut Vec<Problem>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let max_memory_mb = host.map_or(PluginHostConfig::default().max_memory_mb, |h| h.max_memory_mb);
    if let Some(host) = host
        && host.nice > 19
    {
        problems.push(Problem::new("plugin_host.nice", "must be between 0 and 19"));
    }
    for (i, plugin) in plugins.iter().enumerate() {
        let at = |key: &str| format!("plugins[{i}].{key}");
        if plugin.name.is_empty()
            || !plugin.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            problems.push(Problem::new(at("name"), "use ASCII letters, digits, '-', '_' and '.'"));
        }
        if let Some(first) = seen.insert(&plugin.name, i) {
            problems.push(Problem::new(at("name"), format!("duplicate of plugins[{first}]")));
        }
        if let Some(path) = &plugin.path
            && !path.is_file()
        {
            problems.push(Problem::new(at("path"), format!("{} is not a readable file", path.display())));
        }
        if plugin.timeout_ms == 0 {
            problems.push(Problem::new(at("timeout_ms"), "must be greater than 0"));
        }
        if plugin.max_concurrency == 0 {
            problems.push(Problem::new(at("max_concurrency"), "must be greater than 0"));
        }
        if plugin.circuit_failures == 0 {
            problems.push(Problem::new(at("circuit_failures"), "must be greater than 0"));
        }
        if plugin.circuit_cooldown_ms == 0 {
            problems.push(Problem::new(at("circuit_cooldown_ms"), "must be greater than 0"));
        }
        if plugin.memory_mb == 0 || plugin.memory_mb > max_memory_mb {
            problems.push(Problem::new(
                at("memory_mb"),
                format!("must be between 1 and plugin_host.max_memory_mb ({max_memory_mb})"),
            ));
        }
        for host_dir in plugin.dirs.values() {
            if !std::path::Path::new(host_dir).is_dir() {
                problems.push(Problem::new(at("dirs"), format!("{host_dir} is not a directory")));
            }
        }
    }
}

pub(super) fn route_plugins(topics: &[TopicConfig], plugins: &[PluginConfig], problems: &mut Vec<Problem>) {
    for (i, topic) in topics.iter().enumerate() {
        let at = |key: &str| format!("topics[{i}].{key}");
        for name in &topic.plugins {
            if !plugins.iter().any(|p| p.name == *name) {
                problems.push(Problem::new(at("plugins"), format!("'{name}' is not declared in [[plugins]]")));
            }
        }
        if topic.on_plugin_error == OnPluginError::DeadLetter && topic.dead_letter_topic.is_none() {
            problems.push(Problem::new(at("dead_letter_topic"), "required when on_plugin_error is dead-letter"));
        }
        if let Some(dlq) = &topic.dead_letter_topic {
            if let Err(why) = check_topic_name(dlq) {
                problems.push(Problem::new(at("dead_letter_topic"), why));
            }
            if *dlq == topic.name {
                problems.push(Problem::new(at("dead_letter_topic"), "must differ from the route's topic"));
            }
        }
    }
}

pub(super) fn admin(admin: &AdminConfig, problems: &mut Vec<Problem>) {
    if admin.token.chars().count() < 16 {
        problems.push(Problem::new("admin.token", "must be at least 16 characters (use a random secret)"));
    }
    if admin.max_upload_bytes == 0 {
        problems.push(Problem::new("admin.max_upload_bytes", "must be greater than 0"));
    }
}

pub(super) fn delivery(delivery: &DeliveryConfig, problems: &mut Vec<Problem>) {
    if let Err(why) = check_topic_name(&delivery.topic) {
        problems.push(Problem::new("delivery.topic", why));
    }
    if delivery.max_buffered_records == 0 {
        problems.push(Problem::new("delivery.max_buffered_records", "must be at least 1"));
    }
    if delivery.max_buffered_kbytes == 0 {
        problems.push(Problem::new("delivery.max_buffered_kbytes", "must be at least 1"));
    }
    // librdkafka's range for queued.max.messages.kbytes.
    if !(1..=2_097_151).contains(&delivery.max_prefetch_kbytes) {
        problems.push(Problem::new("delivery.max_prefetch_kbytes", "must be between 1 and 2097151"));
    }
    if let Err(why) = super::decode_secrets_keys(&delivery.secrets_keys) {
        // The message names the entry: `secrets_keys[i] …`.
        problems.push(Problem::new("delivery", why));
    }
    for (i, network) in delivery.allow_networks.iter().enumerate() {
        if network.parse::<ipnet::IpNet>().is_err() {
            problems.push(Problem::new(
                format!("delivery.allow_networks[{i}]"),
                format!("'{network}' is not a CIDR like 10.0.0.0/8"),
            ));
        }
    }
}

/// No route, dead letter topic or subscription may use an internal topic.
pub(super) fn internal_topics(config: &super::Config, problems: &mut Vec<Problem>) {
    let internal = config.internal_topics();
    let refuse = |problems: &mut Vec<Problem>, at: String, topic: &str| {
        problems.push(Problem::new(at, format!("'{topic}' is an internal topic (Sluice's own state or Kafka's)")));
    };
    for (i, topic) in config.topics.iter().enumerate() {
        if internal.contains(&topic.name) {
            refuse(problems, format!("topics[{i}].name"), &topic.name);
        }
        if let Some(dlq) = topic.dead_letter_topic.as_deref().filter(|t| internal.contains(t)) {
            refuse(problems, format!("topics[{i}].dead_letter_topic"), dlq);
        }
    }
    for (i, transform) in config.transforms.iter().enumerate() {
        for topic in transform.inputs.iter().chain(&transform.dead_letter_topic).filter(|t| internal.contains(t)) {
            refuse(problems, format!("transforms[{i}].inputs"), topic);
        }
    }
    for (i, subscription) in config.subscriptions.iter().enumerate() {
        for (field, message) in subscription.internal_topic_problems(&internal) {
            problems.push(Problem::new(format!("subscriptions[{i}].{}", field.replace('/', ".")), message));
        }
    }
}

pub(super) fn subscriptions(subscriptions: &[SubscriptionSpec], plugins: &[PluginConfig], problems: &mut Vec<Problem>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, subscription) in subscriptions.iter().enumerate() {
        for (field, message) in subscription.problems() {
            problems.push(Problem::new(format!("subscriptions[{i}].{}", field.replace('/', ".")), message));
        }
        if let Some(first) = seen.insert(&subscription.name, i) {
            problems
                .push(Problem::new(format!("subscriptions[{i}].name"), format!("duplicate of subscriptions[{first}]")));
        }
        for name in &subscription.plugins {
            if !plugins.iter().any(|p| p.name == *name) {
                problems.push(Problem::new(
                    format!("subscriptions[{i}].plugins"),
                    format!("'{name}' is not declared in [[plugins]]"),
                ));
            }
        }
    }
}

pub(super) fn auth(auth: &super::AuthConfig, problems: &mut Vec<Problem>) {
    if auth.api_keys.is_empty() && auth.jwt.is_none() {
        problems.push(Problem::new("auth", "lets nobody in: add [[auth.api_keys]] or [auth.jwt]"));
    }
    let mut names = HashMap::new();
    for (i, key) in auth.api_keys.iter().enumerate() {
        let at = |field: &str| format!("auth.api_keys[{i}].{field}");
        if let Some(first) = names.insert(key.name.as_str(), i) {
            problems.push(Problem::new(at("name"), format!("'{}' is also the name of api_keys[{first}]", key.name)));
        }
        if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            problems.push(Problem::new(at("sha256"), "must be 64 hex digits (`sluice auth new-key` prints it)"));
        }
        if key.scopes.is_empty() {
            problems.push(Problem::new(at("scopes"), "list what the key may do"));
        }
        for (j, scope) in key.scopes.iter().enumerate() {
            if let Err(why) = scope.parse::<super::scope::Scope>() {
                problems.push(Problem::new(format!("auth.api_keys[{i}].scopes[{j}]"), why));
            }
        }
        if key.requests_per_second == Some(0) {
            problems.push(Problem::new(at("requests_per_second"), "must be at least 1 (leave it out for the default)"));
        }
    }
    if let Some(jwt) = &auth.jwt {
        match (&jwt.jwks_url, &jwt.jwks_file) {
            (None, None) | (Some(_), Some(_)) => {
                problems.push(Problem::new("auth.jwt", "give exactly one of jwks_url and jwks_file"));
            }
            (Some(url), None) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                problems.push(Problem::new("auth.jwt.jwks_url", "must be an http(s) URL"));
            }
            _ => {}
        }
        if jwt.issuer.is_empty() {
            problems.push(Problem::new("auth.jwt.issuer", "required: tokens from any issuer would be accepted"));
        }
        if jwt.audience.is_empty() {
            problems.push(Problem::new("auth.jwt.audience", "required: tokens for any service would be accepted"));
        }
        if jwt.refresh_s == 0 {
            problems.push(Problem::new("auth.jwt.refresh_s", "must be at least 1"));
        }
    }
}

pub(super) fn limits(limits: &super::LimitsConfig, problems: &mut Vec<Problem>) {
    if limits.request_timeout_ms == 0 {
        problems.push(Problem::new("limits.request_timeout_ms", "must be greater than 0"));
    }
    if limits.max_concurrent_requests == 0 {
        problems.push(Problem::new("limits.max_concurrent_requests", "must be at least 1"));
    }
}

pub(super) fn telemetry(telemetry: &TelemetryConfig, problems: &mut Vec<Problem>) {
    if let Some(endpoint) = &telemetry.otlp_endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        problems.push(Problem::new("telemetry.otlp_endpoint", "must be an http:// or https:// URL"));
    }
    if !(0.0..=1.0).contains(&telemetry.sample_ratio) {
        problems.push(Problem::new("telemetry.sample_ratio", "must be between 0.0 and 1.0"));
    }
}
