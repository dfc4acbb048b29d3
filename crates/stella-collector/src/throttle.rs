//! Rate-limited logging for errors that can repeat at request rate (a full disk, a down backend, no file
//! descriptors left): one line per interval, carrying the count of the lines held back since.
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one log line through per interval and counts the ones it holds back. Usable as a `static`.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// One line per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Throttle { interval, state: Mutex::new((None, 0)) }
    }

    /// `Some(held back since the last line)` when a line may be written now; `None` (counted) when not.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|poison| poison.into_inner());
        let (last, suppressed) = &mut *state;
        if last.is_some_and(|last| now.duration_since(last) < self.interval) {
            *suppressed += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(suppressed))
    }
}

/// The interval of the throttles on the data path.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_next_one_carries_the_count() {
        let throttle = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(throttle.allow_at(start), Some(0));
        for second in 1..10 {
            assert_eq!(throttle.allow_at(start + Duration::from_secs(second)), None);
        }
        assert_eq!(throttle.allow_at(start + Duration::from_secs(10)), Some(9), "nine lines were held back");
        assert_eq!(throttle.allow_at(start + Duration::from_secs(11)), None);
    }
}
