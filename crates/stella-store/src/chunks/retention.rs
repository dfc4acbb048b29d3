//! Where retention cuts: never trusting one clock step. The cutoff is `window` before the wall clock,
//! but the wall clock counts only up to `max_lead` past the newest record the store has sealed: a clock
//! stepped a year ahead (or a machine that was off for a year) does not delete a year of data at once.
//! Retention then pauses at that bound (the caller warns and counts) until data newer than it arrives.
use std::time::Duration;

/// How far the wall clock may run ahead of the newest sealed record before retention stops following it.
pub const MAX_CLOCK_LEAD: Duration = Duration::from_secs(24 * 3600);

/// Where retention cuts, and whether the clock bound held it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    /// Chunks whose newest item is older than this (unix nanos) may be deleted.
    pub at: u64,
    /// How far (nanos) the wall clock is past the bound, when it held retention back.
    pub paused_by: Option<u64>,
}

/// The cutoff for `window` at wall-clock `now` with `newest` the newest record sealed (both unix nanos;
/// `newest` 0 when nothing is known, which deletes nothing: an empty store is not a clock problem, so
/// nothing is reported as paused).
pub fn cutoff(now: u64, newest: u64, window: Duration, max_lead: Duration) -> Cutoff {
    let bound = newest.saturating_add(u64::try_from(max_lead.as_nanos()).unwrap_or(u64::MAX));
    let window = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    let clock = now.min(bound);
    let paused_by = (newest > 0 && now > bound).then(|| now - bound);
    Cutoff { at: clock.saturating_sub(window), paused_by }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * 3600 * 1_000_000_000;

    #[test]
    fn the_cutoff_follows_the_clock_while_data_keeps_up() {
        let now = 1_000 * DAY;
        let cut = cutoff(now, now - DAY / 2, Duration::from_secs(30 * 86_400), MAX_CLOCK_LEAD);
        assert_eq!(cut, Cutoff { at: now - 30 * DAY, paused_by: None });
    }

    #[test]
    fn a_clock_stepped_a_year_ahead_deletes_nothing_newer_than_the_data_allows() {
        let newest = 1_000 * DAY;
        let now = newest + 400 * DAY;
        let cut = cutoff(now, newest, Duration::from_secs(30 * 86_400), MAX_CLOCK_LEAD);
        assert_eq!(cut.at, newest + DAY - 30 * DAY, "chunks of the last 29 days of data are kept");
        assert_eq!(cut.paused_by, Some(399 * DAY));
    }

    #[test]
    fn nothing_known_deletes_nothing_and_is_no_paused_clock() {
        // A fresh install's first sweep: no record yet, so no warning that the clock is ahead of the data.
        let cut = cutoff(1_000 * DAY, 0, Duration::from_secs(86_400), MAX_CLOCK_LEAD);
        assert_eq!(cut, Cutoff { at: 0, paused_by: None });
    }
}
