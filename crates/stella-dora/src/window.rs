//! The report window: half-open `[from, to)` in an IANA time zone, evaluated as of an instant.
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// The longest window a report covers (every local day gets a row).
pub const MAX_WINDOW_DAYS: i64 = 3_660;

/// A report window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The first instant in the window.
    pub from: Timestamp,
    /// The first instant after it.
    pub to: Timestamp,
    /// The time zone days are counted in.
    pub time_zone: TimeZone,
    /// Its IANA name (`UTC`, `Europe/Paris`).
    pub time_zone_name: String,
    /// What is known: events and state changes after this instant are not.
    pub as_of: Timestamp,
}

/// Why a window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct WindowError {
    /// `from`, `to`, `tz` or `as_of`.
    pub parameter: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn error(parameter: &'static str, message: impl Into<String>) -> WindowError {
    WindowError { parameter, message: message.into() }
}

/// One local calendar day of a window: its date and the part of the window it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDay {
    /// The local date.
    pub date: Date,
    /// Where the day (or the window, if later) starts.
    pub start: Timestamp,
    /// Where the day (or the window, if earlier) ends.
    pub end: Timestamp,
    /// The whole local day's length in seconds (86,400; 82,800 or 90,000 on DST days).
    pub length_seconds: i64,
}

impl Window {
    /// Parses `from` and `to` (RFC 3339 instants, or `YYYY-MM-DD` dates meaning local midnight in
    /// `tz`), `tz` (IANA name; default `UTC`) and `as_of` (default `to`).
    pub fn parse(from: &str, to: &str, tz: Option<&str>, as_of: Option<&str>) -> Result<Window, WindowError> {
        let name = tz.map(str::trim).filter(|name| !name.is_empty()).unwrap_or("UTC").to_string();
        // UTC needs no lookup (a lookup reads the time zone database, which fails when the process is out
        // of file descriptors: that must not read as a wrong zone name).
        let time_zone = if name == "UTC" {
            TimeZone::UTC
        } else {
            TimeZone::get(&name).map_err(|problem| {
                error(
                    "tz",
                    format!("cannot use time zone {name:?} (give an IANA name such as UTC or Europe/Paris): {problem}"),
                )
            })?
        };
        let instant = |parameter: &'static str, text: &str| -> Result<Timestamp, WindowError> {
            let text = text.trim();
            if let Ok(at) = text.parse::<Timestamp>() {
                return Ok(at);
            }
            let date = text.parse::<Date>().map_err(|_| {
                error(parameter, format!("{text:?}; give an RFC 3339 instant (2026-11-01T00:00:00Z) or a date (2026-11-01, local midnight)"))
            })?;
            date.to_zoned(time_zone.clone())
                .map(|zoned| zoned.timestamp())
                .map_err(|problem| error(parameter, problem.to_string()))
        };
        let from = instant("from", from)?;
        let to = instant("to", to)?;
        if from >= to {
            return Err(error("to", format!("{to} is not after from ({from})")));
        }
        if to.as_second() - from.as_second() > MAX_WINDOW_DAYS * 86_400 {
            return Err(error(
                "from",
                format!("the window is longer than {MAX_WINDOW_DAYS} days; report at most ten years at a time"),
            ));
        }
        let as_of = match as_of.map(str::trim).filter(|text| !text.is_empty()) {
            Some(text) => instant("as_of", text)?,
            None => to,
        };
        Ok(Window { from, to, time_zone, time_zone_name: name, as_of })
    }

    /// Whether `at` is in `[from, to)`.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.from <= at && at < self.to
    }

    /// The local date of `at`.
    pub fn local_date(&self, at: Timestamp) -> Date {
        at.to_zoned(self.time_zone.clone()).date()
    }

    /// Every local day the window touches, in order.
    pub fn days(&self) -> Vec<LocalDay> {
        let mut days = Vec::new();
        let mut date = self.local_date(self.from);
        while let Some((start, end)) = self.day_bounds(date) {
            if start >= self.to {
                break;
            }
            days.push(LocalDay {
                date,
                start: start.max(self.from),
                end: end.min(self.to),
                length_seconds: end.as_second() - start.as_second(),
            });
            match date.checked_add(1.day()) {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        days
    }

    /// The window's length in calendar days: each local day counts by the share of it the window
    /// covers (a window from local midnight to local midnight is a whole number of days, DST or not).
    pub fn calendar_days(&self) -> f64 {
        self.days()
            .iter()
            .map(|day| (day.end.as_second() - day.start.as_second()) as f64 / day.length_seconds.max(1) as f64)
            .sum()
    }

    fn day_bounds(&self, date: Date) -> Option<(Timestamp, Timestamp)> {
        let start = date.to_zoned(self.time_zone.clone()).ok()?.timestamp();
        let end = date.checked_add(1.day()).ok()?.to_zoned(self.time_zone.clone()).ok()?.timestamp();
        Some((start, end))
    }
}
