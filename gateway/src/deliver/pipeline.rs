//! One record through the consume path, the mirror of `produce::Pipeline`: decode (by the
//! writer's schema id, through `Codec`) → consume plugins (the chain runner both paths share) →
//! the webhook, with retries and the failure hook → or the dead letter topic (the dead-letter
//! writer both paths share). It returns how the record ended; the worker counts it and commits.

use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::message::{Headers as _, OwnedMessage};
use tokio::sync::watch;

use super::deps::Deps;
use super::stats::Stats;
use super::webhook::{self, Failed, Target};
use crate::config::subscription::SubscriptionSpec;
use crate::kafka::dead_letter::DeadLetter;
use crate::plugin::bindings::{Decision, Event, Failure, Header, Hooks};
use crate::plugin::chain::{self, ConsumeOutcome};

/// A record to deliver, and the trace context its headers carry.
#[derive(Debug)]
pub struct Incoming {
    /// Shared with the worker's queue, which holds it until its outcome.
    pub record: std::sync::Arc<OwnedMessage>,
    pub context: opentelemetry::Context,
}

/// How a record got its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Delivered,
    /// By a plugin, or a tombstone.
    Skipped,
    /// By the failure hook.
    Dropped,
    DeadLettered,
}

/// The end of one record on this replica.
#[derive(Debug)]
pub enum RecordOutcome {
    /// It has its outcome: its offset may be committed.
    Done(Handled),
    /// 410 Gone: the subscription must be disabled.
    Gone(String),
    /// Stopped first (shutdown or revocation): not committed, delivered again later.
    Aborted,
}

/// Why a record's value could not be turned into a body.
enum Decode {
    /// For good: the record is dead-lettered with the reason.
    Permanent(String),
    /// For a while (the registry is down): it is tried again.
    Transient(String),
}

/// Decodes, runs the plugins, delivers with retries, or dead-letters one record.
pub async fn handle(
    spec: &SubscriptionSpec,
    generation: u64,
    deps: &Deps,
    target: &Target,
    stats: &Stats,
    incoming: Incoming,
    mut stop: watch::Receiver<bool>,
) -> RecordOutcome {
    let Incoming { record, context } = incoming;
    let started = Instant::now();
    let mut waited: u32 = 0;
    // Turning the record into a body can fail for a while (registry down) or for good.
    let body = loop {
        match decode(deps, &record).await {
            Ok(Some(body)) => break body,
            Ok(None) => return RecordOutcome::Done(Handled::Skipped),
            Err(Decode::Permanent(reason)) => {
                let why = DeadLetter { reason: &format!("undecodable: {reason}"), ..Default::default() };
                return dead_letter(spec, deps, stats, &record, why, &mut stop).await;
            }
            Err(Decode::Transient(reason)) => {
                stats.error(reason);
                waited += 1;
                if wait(spec.retry.backoff(waited, jitter()), &mut stop).await {
                    return RecordOutcome::Aborted;
                }
            }
        }
    };

    // The plugins, as the chain runner decides; a plugin that is not loaded (or not callable
    // now) makes the record wait, never pass without it.
    let body = loop {
        if spec.plugins.is_empty() {
            break body;
        }
        let plugins = chain::resolve(&deps.plugins, &spec.plugins);
        match chain::run_consume(&plugins, plugin_event(&record, body.clone())).await {
            ConsumeOutcome::Deliver(value) => break value,
            ConsumeOutcome::Skip { .. } => return RecordOutcome::Done(Handled::Skipped),
            ConsumeOutcome::DeadLetter { plugin, reason } => {
                let reason = format!("{plugin}: {reason}");
                let why = DeadLetter { reason: &reason, plugin: Some(&plugin), ..Default::default() };
                return dead_letter(spec, deps, stats, &record, why, &mut stop).await;
            }
            // A failing consume plugin must not lose the event: it goes to the dead letter topic.
            ConsumeOutcome::Failed { plugin, error } => {
                let reason = format!("plugin failed ({}): {error}", error.kind());
                let why = DeadLetter { reason: &reason, plugin: Some(&plugin), ..Default::default() };
                return dead_letter(spec, deps, stats, &record, why, &mut stop).await;
            }
            ConsumeOutcome::Unavailable { plugin, error } => {
                stats.error(format!("waiting for plugin {plugin}: {error}"));
                waited += 1;
                if wait(spec.retry.backoff(waited, jitter()), &mut stop).await {
                    return RecordOutcome::Aborted;
                }
            }
        }
    };

    let body = axum::body::Bytes::from(body);
    let id = webhook::webhook_id(&spec.name, generation, record.topic(), record.partition(), record.offset());
    let failure_hook =
        spec.plugins.iter().filter_map(|name| deps.plugins.get(name)).find(|plugin| plugin.implements(Hooks::FAILURE));
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let sent = Instant::now();
        let posted = webhook::post(spec, deps, target, &id, &record, &context, &body).await;
        stats.series(&spec.name).attempt(&Failed::status_label(&posted), sent.elapsed());
        let (status, error, retry_after) = match posted {
            Ok(_) => {
                if let Some(written) = record.timestamp().to_millis() {
                    let age = crate::telemetry::now_ms().saturating_sub(written);
                    stats.series(&spec.name).delivered_after(Duration::from_millis(u64::try_from(age).unwrap_or(0)));
                }
                return RecordOutcome::Done(Handled::Delivered);
            }
            Err(Failed::Gone) => return RecordOutcome::Gone(format!("{} answered 410 Gone", spec.url)),
            Err(Failed::Status { status, retry_after }) => (Some(status), format!("HTTP {status}"), retry_after),
            Err(Failed::Request(error)) => (None, error, None),
        };
        stats.attempt_failed(format!("{id}: {error}"));
        tracing::debug!(
            subscription = spec.name,
            webhook_id = id,
            attempt = attempts,
            error,
            "delivery attempt failed"
        );
        let exhausted = attempts >= spec.retry.max_attempts
            || started.elapsed() >= Duration::from_millis(spec.retry.max_elapsed_ms);
        let decision = match &failure_hook {
            Some(plugin) if !exhausted => plugin
                .failure(Failure {
                    event: plugin_event(&record, body.to_vec()),
                    attempt: attempts,
                    status,
                    error: error.clone(),
                })
                .await
                .unwrap_or_else(|e| match e {
                    // The hook could not be asked: retry as if it had no opinion.
                    e if e.is_unavailable() => Decision::RetryAfter(0),
                    e => Decision::DeadLetter(format!("failure hook failed: {e}")),
                }),
            _ if exhausted => Decision::DeadLetter(format!("gave up after {attempts} attempts: {error}")),
            _ => Decision::RetryAfter(0),
        };
        match decision {
            Decision::RetryAfter(ms) => {
                let delay = match (retry_after, ms) {
                    // The subscriber knows best when it can take more; bounded by the time the
                    // event may spend in retries at all.
                    (Some(server), _) => server.min(Duration::from_millis(spec.retry.max_elapsed_ms)),
                    (None, 0) => spec.retry.backoff(attempts, jitter()),
                    (None, ms) => Duration::from_millis(u64::from(ms)),
                };
                if wait(delay, &mut stop).await {
                    return RecordOutcome::Aborted;
                }
            }
            Decision::DeadLetter(reason) => {
                let why = DeadLetter { reason: &reason, status, attempts: Some(attempts), ..Default::default() };
                return dead_letter(spec, deps, stats, &record, why, &mut stop).await;
            }
            Decision::Drop(_) => return RecordOutcome::Done(Handled::Dropped),
        }
    }
}

/// The JSON body for a record: `None` for a tombstone (nothing to deliver).
async fn decode(deps: &Deps, record: &OwnedMessage) -> Result<Option<Vec<u8>>, Decode> {
    let Some(payload) = record.payload() else { return Ok(None) };
    match crate::codec::wire::split(payload) {
        Ok((id, body)) => {
            let codec = deps.schemas.by_id(id).await.map_err(|e| match e {
                crate::registry::RegistryError::Unavailable(reason) => Decode::Transient(reason),
                other => Decode::Permanent(format!("schema {id}: {other}")),
            })?;
            codec.decode_to_json(body).map(Some).map_err(|e| Decode::Permanent(format!("schema {id}: {e}")))
        }
        Err(_) => {
            serde_json::from_slice::<serde::de::IgnoredAny>(payload)
                .map_err(|e| Decode::Permanent(format!("neither Confluent-framed nor JSON: {e}")))?;
            Ok(Some(payload.to_vec()))
        }
    }
}

fn plugin_event(record: &OwnedMessage, value: Vec<u8>) -> Event {
    let headers = record
        .headers()
        .map(|h| {
            h.iter().map(|h| Header { key: h.key.to_owned(), value: h.value.unwrap_or_default().to_vec() }).collect()
        })
        .unwrap_or_default();
    Event {
        topic: record.topic().to_owned(),
        key: record.key().map(<[u8]>::to_vec),
        value,
        headers,
        timestamp_ms: record.timestamp().to_millis().unwrap_or(0),
    }
}

/// Sends a record to the dead letter topic with the shared dead-letter headers, retrying until
/// Kafka takes it (or the worker stops).
async fn dead_letter(
    spec: &SubscriptionSpec,
    deps: &Deps,
    stats: &Stats,
    record: &OwnedMessage,
    why: DeadLetter<'_>,
    stop: &mut watch::Receiver<bool>,
) -> RecordOutcome {
    let why = DeadLetter {
        original_topic: record.topic(),
        original: Some((record.partition(), record.offset())),
        subscription: Some(&spec.name),
        ..why
    };
    let mut retry = 0;
    loop {
        let original =
            record.headers().into_iter().flat_map(|h| h.iter()).map(|h| (h.key, h.value.unwrap_or_default()));
        let headers = why.headers(original);
        let sent = match deps.producer.send(
            &spec.dead_letter_topic,
            None,
            record.key(),
            record.payload(),
            Some(headers),
            None,
        ) {
            Ok(delivery) => deps.producer.delivered(delivery).await,
            Err(error) => Err(error),
        };
        match sent {
            Ok(_) => {
                tracing::warn!(
                    subscription = spec.name,
                    topic = record.topic(),
                    offset = record.offset(),
                    reason = why.reason,
                    "event dead-lettered"
                );
                return RecordOutcome::Done(Handled::DeadLettered);
            }
            Err(error) => {
                stats.error(format!("dead letter topic {}: {error}", spec.dead_letter_topic));
                retry += 1;
                if wait(spec.retry.backoff(retry, jitter()), stop).await {
                    return RecordOutcome::Aborted;
                }
            }
        }
    }
}

/// Sleeps, unless told to stop first (then true).
pub async fn wait(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(delay) => None,
        _ = stop.wait_for(|stopped| *stopped) => Some(true),
    };
    stopped.unwrap_or_else(|| *stop.borrow())
}

/// A number in [0, 1) for backoff jitter, without a random number crate: the clock's nanoseconds.
pub fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}
