//! Sealing stored signing secrets again after `[delivery] secrets_keys` changed (see
//! [`super::seal`]).

use std::sync::{Arc, PoisonError};

use super::store::{Key, StoredSpec, SubscriptionsState};
use super::{Deliveries, SubscriptionError};
use crate::kafka::log::{Outcome, Plan, record};

impl Deliveries {
    /// Starts sealing again the stored secrets that are not sealed with the first of
    /// `secrets_keys` (stored before there were keys, or before a rotation), once per
    /// subscription at a time on this replica. Other replicas may do the same at the same time;
    /// each write is checked against the state it lands on, so one of them wins and the others
    /// find nothing to do.
    pub(super) fn reseal_stale(self: &Arc<Self>) {
        let sealer = &self.deps.sealer;
        let stale: Vec<String> = self
            .log
            .read()
            .created
            .iter()
            .filter(|(name, spec)| !sealer.is_current(name, &spec.secrets) && sealer.open(name, &spec.secrets).is_ok())
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if !self.resealing.lock().unwrap_or_else(PoisonError::into_inner).insert(name.clone()) {
                continue;
            }
            let this = Arc::downgrade(self);
            tokio::spawn(async move {
                let Some(this) = this.upgrade() else { return };
                match this.reseal(&name).await {
                    Ok(()) => tracing::info!(subscription = name, "signing secrets sealed with the first secrets key"),
                    Err(error) => {
                        tracing::warn!(subscription = name, error = %error, "cannot seal the signing secrets again; will retry on the next change")
                    }
                }
                this.resealing.lock().unwrap_or_else(PoisonError::into_inner).remove(&name);
            });
        }
    }

    /// Writes subscription `name` again with its secrets sealed with the first key.
    async fn reseal(&self, name: &str) -> Result<(), SubscriptionError> {
        let sealer = self.deps.sealer.clone();
        self.log
            .write(|current: &SubscriptionsState| {
                let Some(spec) = current.created.get(name) else { return Ok(Outcome::Nothing(())) };
                if sealer.is_current(name, &spec.secrets) {
                    return Ok(Outcome::Nothing(()));
                }
                let secrets = sealer.open(name, &spec.secrets).map_err(SubscriptionError::Unavailable)?;
                let sealed = sealer.seal(name, &secrets).map_err(SubscriptionError::Unavailable)?;
                let stored =
                    record(&Key::Subscription { name: name.to_owned() }, Some(&StoredSpec { spec, secrets: &sealed }))?;
                let (name, sealer) = (name.to_owned(), sealer.clone());
                Ok(Outcome::Write(Plan {
                    records: vec![stored],
                    result: (),
                    applied: Box::new(move |s: &SubscriptionsState| {
                        s.created.get(&name).is_none_or(|spec| sealer.is_current(&name, &spec.secrets))
                    }),
                }))
            })
            .await
    }
}
