use std::time::Duration;

use serde::Deserialize;

/// `processors.batch`: when to send a batch on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Items (spans, data points, log records) after which a batch is sent, whatever the timeout.
    /// 0 sends on the timeout only. Default 8192.
    #[serde(default = "default_send_batch_size")]
    pub send_batch_size: usize,
    /// Upper bound of items per batch sent; larger ones are split. 0 (default) means no bound.
    /// Must be 0 or at least `send_batch_size`.
    #[serde(default)]
    pub send_batch_max_size: usize,
    /// How long the oldest item may wait before its batch is sent, whatever its size. Default 200ms.
    #[serde(default = "default_timeout", deserialize_with = "crate::duration::deserialize")]
    pub timeout: Duration,
}

fn default_send_batch_size() -> usize {
    8192
}

fn default_timeout() -> Duration {
    Duration::from_millis(200)
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { send_batch_size: default_send_batch_size(), send_batch_max_size: 0, timeout: default_timeout() }
    }
}

impl BatchConfig {
    /// Problems as (key under this processor, what is wrong and how to fix it).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.send_batch_max_size != 0 && self.send_batch_max_size < self.send_batch_size {
            problems.push((
                "send_batch_max_size",
                format!(
                    "{} is smaller than send_batch_size ({}); set it to 0 or at least {}",
                    self.send_batch_max_size, self.send_batch_size, self.send_batch_size
                ),
            ));
        }
        if self.timeout.is_zero() && self.send_batch_size == 0 {
            problems.push(("timeout", "0 with send_batch_size 0 would never send; set a timeout such as 200ms".into()));
        }
        problems
    }
}
