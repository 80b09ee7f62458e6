//! Admission to a plugin version's calls: a cap on calls at once, and a circuit breaker that stops
//! calling a version that keeps failing.
//!
//! A plugin that loops until its time limit, or grows its memory until it traps, costs a core
//! and a memory slot per call. Without these, a flood of requests to its route would take every
//! core from the other routes. With them, calls beyond `max_concurrency` are refused at once,
//! and after `failures` failures in a row the breaker opens: calls are refused at once (the
//! route's `on_plugin_error` policy answers) for `cooldown`, then one trial call is let through.
//! A trial that succeeds closes the breaker; one that fails opens it again for twice as long, up
//! to 16 times the cool-down.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long, at most, the cool-down grows to, as a multiple of the configured one.
const MAX_BACKOFF: u32 = 16;

/// The limits of one plugin's calls.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Calls of one version running at once; more are refused at once.
    pub max_concurrency: usize,
    /// Failed calls in a row (timeouts, traps, memory, bad output) that open the breaker.
    pub failures: u32,
    /// How long an open breaker refuses calls before it lets a trial call through.
    pub cooldown: Duration,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        Self { max_concurrency: 8, failures: 5, cooldown: Duration::from_secs(5) }
    }
}

/// Why a call was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_concurrency` calls are running.
    Busy { limit: usize },
    /// The breaker is open; it lets a trial call through after this long.
    Open { retry_after: Duration },
}

/// A call let through; ends the call's claim when dropped.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    trial: bool,
    recorded: bool,
}

/// The circuit's state, for the admin API.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CircuitStatus {
    /// `closed`, `open` or `half-open` (a trial call is running).
    pub state: &'static str,
    /// Failed calls in a row.
    pub consecutive_failures: u32,
    /// Times the breaker opened.
    pub opened: u64,
    /// While open: milliseconds until a trial call is let through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Calls running now.
    pub in_flight: usize,
}

#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    /// Names the metric series of the breaker's state.
    plugin: String,
    in_flight: AtomicUsize,
    circuit: Mutex<Circuit>,
}

#[derive(Debug, Default)]
struct Circuit {
    consecutive: u32,
    open_until: Option<Instant>,
    /// Whether the trial call of a half-open breaker is running.
    trial: bool,
    /// The cool-down of the next opening after a failed trial.
    backoff: u32,
    opened: u64,
}

impl Admission {
    pub fn new(plugin: &str, limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits: AdmissionLimits { max_concurrency: limits.max_concurrency.max(1), ..limits },
            plugin: plugin.to_owned(),
            in_flight: AtomicUsize::new(0),
            circuit: Mutex::new(Circuit { backoff: 1, ..Circuit::default() }),
        })
    }

    /// Lets a call through, or says why not.
    pub fn admit(self: &Arc<Self>) -> Result<Permit, Refusal> {
        let trial = {
            let mut circuit = self.circuit.lock().unwrap_or_else(PoisonError::into_inner);
            match circuit.open_until {
                Some(until) if Instant::now() < until => {
                    return Err(Refusal::Open { retry_after: until - Instant::now() });
                }
                Some(_) if circuit.trial => return Err(Refusal::Open { retry_after: Duration::ZERO }),
                Some(_) => {
                    circuit.trial = true;
                    true
                }
                None => false,
            }
        };
        let permit = Permit { admission: self.clone(), trial, recorded: false };
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.limits.max_concurrency {
            // Dropping the permit gives back the slot (and the trial).
            drop(permit);
            return Err(Refusal::Busy { limit: self.limits.max_concurrency });
        }
        Ok(permit)
    }

    pub fn status(&self) -> CircuitStatus {
        let circuit = self.circuit.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let (state, retry_after_ms) = match circuit.open_until {
            None => ("closed", None),
            Some(_) if circuit.trial => ("half-open", None),
            Some(until) => {
                ("open", Some(u64::try_from(until.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX)))
            }
        };
        CircuitStatus {
            state,
            consecutive_failures: circuit.consecutive,
            opened: circuit.opened,
            retry_after_ms,
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }

    fn set_gauge(&self, open: bool) {
        crate::telemetry::metrics::metrics().plugin_circuit(&self.plugin, open);
    }
}

impl Permit {
    /// Records how the call went (calls whose permit is dropped unrecorded count as neither).
    pub fn record(mut self, failed: bool) {
        self.recorded = true;
        let admission = &self.admission;
        let limits = admission.limits;
        let mut circuit = admission.circuit.lock().unwrap_or_else(PoisonError::into_inner);
        if !failed {
            circuit.consecutive = 0;
            if self.trial {
                circuit.open_until = None;
                circuit.trial = false;
                circuit.backoff = 1;
                drop(circuit);
                tracing::info!(plugin = admission.plugin, "plugin circuit closed: its trial call succeeded");
                admission.set_gauge(false);
            }
            return;
        }
        circuit.consecutive = circuit.consecutive.saturating_add(1);
        let cooldown = if self.trial {
            circuit.trial = false;
            circuit.backoff = (circuit.backoff * 2).min(MAX_BACKOFF);
            Some(limits.cooldown * circuit.backoff)
        } else if circuit.open_until.is_none() && circuit.consecutive >= limits.failures {
            Some(limits.cooldown)
        } else {
            None
        };
        if let Some(cooldown) = cooldown {
            circuit.open_until = Some(Instant::now() + cooldown);
            circuit.opened += 1;
            let failures = circuit.consecutive;
            drop(circuit);
            tracing::warn!(
                plugin = admission.plugin,
                failures,
                cooldown_ms = u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX),
                "plugin circuit opened: calls are refused until the cool-down ends"
            );
            admission.set_gauge(true);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.trial && !self.recorded {
            self.admission.circuit.lock().unwrap_or_else(PoisonError::into_inner).trial = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_concurrency: usize, cooldown_ms: u64) -> AdmissionLimits {
        AdmissionLimits { max_concurrency, failures: 3, cooldown: Duration::from_millis(cooldown_ms) }
    }

    #[test]
    fn calls_beyond_the_cap_are_refused_at_once_and_slots_come_back() {
        let admission = Admission::new("cap", limits(2, 1000));
        let a = admission.admit().unwrap();
        let b = admission.admit().unwrap();
        assert_eq!(admission.admit().unwrap_err(), Refusal::Busy { limit: 2 });
        a.record(false);
        let c = admission.admit().unwrap();
        drop((b, c));
        assert_eq!(admission.status().in_flight, 0);
    }

    #[test]
    fn failures_in_a_row_open_the_breaker_and_a_successful_trial_closes_it() {
        let admission = Admission::new("flaky", limits(4, 30));
        for _ in 0..2 {
            admission.admit().unwrap().record(true);
        }
        admission.admit().unwrap().record(false);
        assert_eq!(admission.status().state, "closed", "a success resets the count");
        for _ in 0..3 {
            admission.admit().unwrap().record(true);
        }
        assert_eq!(admission.status().state, "open");
        assert!(matches!(admission.admit(), Err(Refusal::Open { .. })));
        std::thread::sleep(Duration::from_millis(40));
        let trial = admission.admit().unwrap();
        assert_eq!(admission.status().state, "half-open");
        assert!(matches!(admission.admit(), Err(Refusal::Open { .. })), "one trial at a time");
        trial.record(false);
        assert_eq!(admission.status().state, "closed");
        assert_eq!(admission.status().opened, 1);
    }

    #[test]
    fn a_failed_trial_opens_it_again_for_longer() {
        let admission = Admission::new("broken", limits(4, 20));
        for _ in 0..3 {
            admission.admit().unwrap().record(true);
        }
        std::thread::sleep(Duration::from_millis(25));
        admission.admit().unwrap().record(true);
        let status = admission.status();
        assert_eq!((status.state, status.opened), ("open", 2));
        assert!(status.retry_after_ms.unwrap() > 20, "doubled: {status:?}");
    }

    #[test]
    fn a_trial_dropped_without_an_outcome_lets_the_next_call_try() {
        let admission = Admission::new("dropped", limits(4, 10));
        for _ in 0..3 {
            admission.admit().unwrap().record(true);
        }
        std::thread::sleep(Duration::from_millis(15));
        drop(admission.admit().unwrap());
        assert!(admission.admit().is_ok());
    }
}
