//! What every consumer reports about itself, for `/readyz` and the gauges read at scrape time: how far it
//! has delivered (the backlog is the log's head minus that, so it stays true while the consumer waits on
//! a backend), when it last succeeded, and since when and why it fails.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::logs::Log;

/// A consumer failing for longer than this makes its component `degraded` in `/readyz`.
pub const STALL_AFTER: Duration = Duration::from_secs(30);

/// One consumer's state, written by its driver.
pub struct ConsumerHealth {
    /// The component it serves: `exporters.<id>` (the store is `exporters.<id>` too) or
    /// `processors.<id>` for a tail sampler.
    pub component: String,
    /// The log it reads (pipeline id, or `<pipeline>.sampled`).
    pub log_name: String,
    /// The tenant of that log.
    pub tenant: String,
    /// The exporter id its backlog is published under (`None` for a tail sampler).
    pub exporter: Option<String>,
    log: Arc<Log>,
    delivered: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_success: Option<Instant>,
    failing_since: Option<Instant>,
    last_error: Option<String>,
}

/// How a component stands, as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Working (or idle and caught up).
    Healthy,
    /// Still taking data, but something needs attention: the reason.
    Degraded(String),
}

impl ConsumerHealth {
    /// The state of a consumer of `log` that starts at `start`.
    pub fn new(component: String, log_name: String, tenant: String, exporter: Option<String>, log: Arc<Log>) -> Self {
        let start = log.first_seq();
        ConsumerHealth {
            component,
            log_name,
            tenant,
            exporter,
            log,
            delivered: AtomicU64::new(start),
            state: Mutex::new(State { last_success: Some(Instant::now()), ..State::default() }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Everything before `delivered` is delivered, and the last step worked.
    pub fn succeeded(&self, delivered: u64) {
        self.delivered.store(delivered, Ordering::Relaxed);
        let mut state = self.state();
        state.last_success = Some(Instant::now());
        state.failing_since = None;
        state.last_error = None;
    }

    /// Everything before `delivered` is delivered (no step tried since).
    pub fn delivered_to(&self, delivered: u64) {
        self.delivered.store(delivered, Ordering::Relaxed);
    }

    /// The last step failed with `error`.
    pub fn failed(&self, error: &str) {
        let mut state = self.state();
        state.failing_since.get_or_insert_with(Instant::now);
        state.last_error = Some(error.to_string());
    }

    /// Records committed to the log and not yet delivered.
    pub fn backlog(&self) -> u64 {
        self.log.head().saturating_sub(self.delivered.load(Ordering::Relaxed))
    }

    /// Time since the last successful step (0 while working or caught up).
    pub fn since_success(&self) -> Duration {
        self.state().last_success.map_or(Duration::ZERO, |at| at.elapsed())
    }

    /// Degraded while failing for longer than [`STALL_AFTER`], or while the log holds quarantined damage.
    pub fn condition(&self) -> Condition {
        let state = self.state();
        if let Some(since) = state.failing_since.filter(|since| since.elapsed() >= STALL_AFTER) {
            let error = state.last_error.clone().unwrap_or_default();
            return Condition::Degraded(format!(
                "tenant {}: failing for {} s with {} records waiting: {error}",
                self.tenant,
                since.elapsed().as_secs(),
                self.backlog()
            ));
        }
        drop(state);
        let quarantined = self.log.quarantined();
        if !quarantined.is_empty() {
            return Condition::Degraded(format!(
                "tenant {}: log {} holds {} quarantined damaged range(s) (skipped; inspect, then remove {})",
                self.tenant,
                self.log_name,
                quarantined.len(),
                self.log.dir().join("quarantine").display()
            ));
        }
        Condition::Healthy
    }
}

/// Every running consumer's state, by (component, log, tenant).
#[derive(Default)]
pub struct ConsumerBoard {
    consumers: Mutex<BTreeMap<(String, String, String), Arc<ConsumerHealth>>>,
}

impl ConsumerBoard {
    /// Puts `health` on the board (replacing the entry of the same consumer from before a reload).
    pub fn register(&self, health: Arc<ConsumerHealth>) {
        let key = (health.component.clone(), health.log_name.clone(), health.tenant.clone());
        self.consumers.lock().unwrap_or_else(|poison| poison.into_inner()).insert(key, health);
    }

    /// Keeps only the consumers of `components` (after a reload removed some).
    pub fn retain(&self, components: &[String]) {
        self.consumers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|(component, _, _), _| components.contains(component));
    }

    /// Every consumer's state.
    pub fn all(&self) -> Vec<Arc<ConsumerHealth>> {
        self.consumers.lock().unwrap_or_else(|poison| poison.into_inner()).values().cloned().collect()
    }
}
