//! Redrive: the records of a subscription's dead letter topic delivered again, from where the
//! last redrive stopped up to the end as it is when asked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::stats::Stats;
use super::{Deliveries, SubscriptionError, worker};
use crate::config::subscription::SubscriptionSpec;
use crate::kafka::groups;

impl Deliveries {
    /// Delivers the records of the subscription's dead letter topic again, from where the last
    /// redrive stopped up to the end as it is now. Records that fail again go back to it.
    pub async fn redrive(self: &Arc<Self>, name: &str) -> Result<i64, SubscriptionError> {
        let spec = self.require(name)?;
        let redrive = SubscriptionSpec {
            name: format!("{}-redrive", spec.name),
            topics: vec![spec.dead_letter_topic.clone()],
            start: "earliest".into(),
            ..spec.clone()
        };
        let ends = {
            let (kafka, group, topic) = (self.deps.kafka.clone(), redrive.group_id(), spec.dead_letter_topic.clone());
            tokio::task::spawn_blocking(move || groups::pending_to_end(&kafka, &group, &topic))
                .await
                .map_err(|e| SubscriptionError::Unavailable(e.to_string()))?
                .map_err(|e| SubscriptionError::Unavailable(e.to_string()))?
        };
        let pending: i64 = ends.iter().map(|(_, from, to)| to - from).sum();
        if pending == 0 {
            return Ok(0);
        }
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(Stats::default());
        let generation = self.log.read().state(name).generation;
        let deps = self.deps.clone();
        let redrive = Arc::new(redrive);
        let watcher_stats = stats.clone();
        let target = pending as u64;
        tokio::spawn(async move {
            let work = tokio::spawn(worker::run(redrive.clone(), generation, deps, stats, stopped));
            // Stop once as many records were handled as were waiting when the redrive began.
            let started = Instant::now();
            loop {
                let handled = watcher_stats.delivered.load(std::sync::atomic::Ordering::Relaxed)
                    + watcher_stats.dead_lettered.load(std::sync::atomic::Ordering::Relaxed)
                    + watcher_stats.skipped.load(std::sync::atomic::Ordering::Relaxed);
                if handled >= target || started.elapsed() > Duration::from_secs(3600) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = stop.send(true);
            let _ = work.await;
            tracing::info!(subscription = redrive.name, "redrive finished");
        });
        Ok(pending)
    }
}
