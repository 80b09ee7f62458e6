//! What a subscription is: declared in the config file (`[[subscriptions]]`) or created through
//! the API, in the same shape.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A webhook subscription.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// Unique name; also names its consumer group (`sluice-sub-{name}`).
    pub name: String,
    /// Topics whose records are delivered.
    pub topics: Vec<String>,
    /// Where events are POSTed.
    pub url: String,
    /// Signing secrets (`whsec_…`); the first signs, all sign during a rotation. Never returned
    /// by the API.
    #[serde(default, skip_serializing)]
    pub secrets: Vec<String>,
    /// Consume plugins run on each batch before delivery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<String>,
    /// Where a new subscription starts: `earliest`, `latest` (default) or an RFC 3339 time.
    #[serde(default = "default_start")]
    pub start: String,
    /// Deliveries in flight at once, across keys. Default 16.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// `key` (default): events with the same key in order, other keys concurrently.
    /// `partition`: strictly in order per partition.
    #[serde(default)]
    pub ordering: Ordering,
    /// `plain` (default): the event as JSON with Sluice's headers. `cloudevents`: also as a
    /// CloudEvent in binary content mode (`ce-*` headers).
    #[serde(default, skip_serializing_if = "DeliveryFormat::is_plain")]
    pub format: DeliveryFormat,
    /// Per-request timeout. Default 10000 ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Where events go when retries run out (required).
    pub dead_letter_topic: String,
    /// The principal that created it through the API; only it (or an admin) may see and manage
    /// it. Set by the gateway, never taken from a request; `None` for the configuration file's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl std::fmt::Debug for SubscriptionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionSpec")
            .field("name", &self.name)
            .field("topics", &self.topics)
            .field("url", &self.url)
            .field("secrets", &format_args!("<{} redacted>", self.secrets.len()))
            .field("dead_letter_topic", &self.dead_letter_topic)
            .finish_non_exhaustive()
    }
}

fn default_start() -> String {
    "latest".into()
}
fn default_concurrency() -> usize {
    16
}
fn default_timeout_ms() -> u64 {
    10_000
}

/// Upper bounds on a subscription's numbers, so that one subscription cannot hold a
/// connection, a delivery slot or a record for ever, or make the gateway keep unbounded state.
pub mod bounds {
    pub const NAME_CHARS: usize = 200;
    pub const TOPICS: usize = 100;
    pub const URL_CHARS: usize = 2048;
    pub const SECRETS: usize = 10;
    pub const PLUGINS: usize = 16;
    pub const CONCURRENCY: usize = 10_000;
    /// 5 minutes.
    pub const TIMEOUT_MS: u64 = 300_000;
    pub const MAX_ATTEMPTS: u32 = 1_000_000;
    /// 1 day.
    pub const BACKOFF_MS: u64 = 86_400_000;
    /// 7 days.
    pub const MAX_ELAPSED_MS: u64 = 604_800_000;
}

/// The key bytes of a signing secret: `whsec_` followed by base64 of 16 or more bytes.
pub fn secret_key(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let encoded = text.strip_prefix("whsec_").ok_or("a signing secret starts with whsec_")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("the part after whsec_ is not base64: {e}"))?;
    if key.len() < 16 {
        return Err("a signing secret needs at least 16 bytes of key".into());
    }
    Ok(key)
}

/// Delivery order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ordering {
    #[default]
    Key,
    Partition,
}

/// How each delivery is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryFormat {
    #[default]
    Plain,
    /// CloudEvents 1.0, HTTP binding, binary content mode.
    Cloudevents,
}

impl DeliveryFormat {
    fn is_plain(&self) -> bool {
        *self == DeliveryFormat::Plain
    }
}

/// Retries with exponential backoff and jitter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts before the event is dead-lettered. Default 8.
    pub max_attempts: u32,
    /// Delay after the first failure. Default 500 ms.
    pub initial_backoff_ms: u64,
    /// Upper bound of one delay. Default 60000 ms.
    pub max_backoff_ms: u64,
    /// Time after the first attempt when the event is dead-lettered regardless. Default 1 hour.
    pub max_elapsed_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 8, initial_backoff_ms: 500, max_backoff_ms: 60_000, max_elapsed_ms: 3_600_000 }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (1-based `attempt` just failed), with ±20% jitter
    /// so a recovering subscriber is not hit by every retry at once.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(32);
        let base = self.initial_backoff_ms.saturating_mul(1u64 << exponent).min(self.max_backoff_ms);
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let jittered = (base as f64 * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))) as u64;
        Duration::from_millis(jittered.max(1))
    }
}

/// Where a new subscription starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    /// Milliseconds since the epoch.
    Time(i64),
}

impl SubscriptionSpec {
    /// Every problem with the spec, each with the field it is about.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| problems.push((field.to_owned(), message));
        if self.name.is_empty()
            || self.name.len() > bounds::NAME_CHARS
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            problem("name", format!("use 1 to {} ASCII letters, digits, '-', '_' and '.'", bounds::NAME_CHARS));
        }
        if self.topics.is_empty() || self.topics.len() > bounds::TOPICS {
            problem("topics", format!("list 1 to {} topics", bounds::TOPICS));
        }
        if self.url.len() > bounds::URL_CHARS {
            problem("url", format!("must be at most {} characters", bounds::URL_CHARS));
        }
        match reqwest::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            Ok(_) => problem("url", "must be an http(s) URL with a host".into()),
            Err(e) => problem("url", format!("not a URL: {e}")),
        }
        if self.secrets.is_empty() || self.secrets.len() > bounds::SECRETS {
            problem(
                "secrets",
                format!("give 1 to {} signing secrets (whsec_ + base64 of 16 or more random bytes)", bounds::SECRETS),
            );
        }
        if self.plugins.len() > bounds::PLUGINS {
            problem("plugins", format!("at most {} plugins", bounds::PLUGINS));
        }
        for (i, secret) in self.secrets.iter().enumerate() {
            if let Err(e) = secret_key(secret) {
                problem(&format!("secrets/{i}"), e);
            }
        }
        if let Err(e) = self.start_position() {
            problem("start", e);
        }
        let mut range = |field: &str, value: u64, min: u64, max: u64| {
            if !(min..=max).contains(&value) {
                problem(field, format!("must be between {min} and {max}"));
            }
        };
        range("concurrency", self.concurrency as u64, 1, bounds::CONCURRENCY as u64);
        range("timeout_ms", self.timeout_ms, 1, bounds::TIMEOUT_MS);
        range("retry/max_attempts", u64::from(self.retry.max_attempts), 1, u64::from(bounds::MAX_ATTEMPTS));
        range("retry/initial_backoff_ms", self.retry.initial_backoff_ms, 1, bounds::BACKOFF_MS);
        range("retry/max_backoff_ms", self.retry.max_backoff_ms, 1, bounds::BACKOFF_MS);
        range("retry/max_elapsed_ms", self.retry.max_elapsed_ms, 1, bounds::MAX_ELAPSED_MS);
        if self.dead_letter_topic.is_empty() || self.topics.contains(&self.dead_letter_topic) {
            problem("dead_letter_topic", "must name a topic other than the subscribed ones".into());
        }
        problems
    }

    /// Problems with the topics it names, given the gateway's internal topics.
    pub fn internal_topic_problems(&self, internal: &crate::config::InternalTopics) -> Vec<(String, String)> {
        let why = |topic: &str| format!("'{topic}' is an internal topic (Sluice's own state or Kafka's)");
        let mut problems: Vec<(String, String)> = self
            .topics
            .iter()
            .enumerate()
            .filter(|(_, topic)| internal.contains(topic))
            .map(|(i, topic)| (format!("topics/{i}"), why(topic)))
            .collect();
        if internal.contains(&self.dead_letter_topic) {
            problems.push(("dead_letter_topic".into(), why(&self.dead_letter_topic)));
        }
        problems
    }

    pub fn start_position(&self) -> Result<Start, String> {
        match self.start.as_str() {
            "earliest" => Ok(Start::Earliest),
            "latest" => Ok(Start::Latest),
            text => time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| Start::Time(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)))
                .map_err(|_| format!("'{text}' is not earliest, latest or an RFC 3339 time")),
        }
    }

    pub fn group_id(&self) -> String {
        format!("sluice-sub-{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let policy = RetryPolicy { initial_backoff_ms: 100, max_backoff_ms: 1000, ..RetryPolicy::default() };
        assert_eq!(policy.backoff(1, 0.5), Duration::from_millis(100));
        assert_eq!(policy.backoff(3, 0.5), Duration::from_millis(400));
        assert_eq!(policy.backoff(10, 0.5), Duration::from_millis(1000));
        assert_eq!(policy.backoff(2, 0.0), Duration::from_millis(160));
        assert_eq!(policy.backoff(2, 1.0), Duration::from_millis(240));
    }

    #[test]
    fn specs_report_every_problem() {
        let spec: SubscriptionSpec = serde_json::from_value(serde_json::json!({
            "name": "bad name", "topics": [], "url": "ftp://x", "secrets": ["nope"], "start": "yesterday",
            "concurrency": 0, "dead_letter_topic": ""
        }))
        .unwrap();
        let fields: Vec<String> = spec.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["name", "topics", "url", "secrets/0", "start", "concurrency", "dead_letter_topic"]);
    }
}
