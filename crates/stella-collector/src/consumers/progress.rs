//! Where each consumer of one log stands, so the log can drop the segments all of them have passed.
use std::collections::HashMap;
use std::sync::Mutex;

/// The consumers of one log and where each stands.
#[derive(Default)]
pub struct LogProgress {
    positions: Mutex<HashMap<String, u64>>,
}

impl LogProgress {
    /// Records `consumer`'s position and returns the slowest position of all.
    pub(crate) fn update(&self, consumer: &str, next_seq: u64) -> u64 {
        let mut positions = self.positions.lock().unwrap_or_else(|poison| poison.into_inner());
        positions.insert(consumer.to_string(), next_seq);
        positions.values().copied().min().unwrap_or(next_seq)
    }
}
