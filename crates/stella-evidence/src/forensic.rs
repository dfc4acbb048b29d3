//! Cutting a forensic bundle out of the embedded store: every stored record of one tenant whose items
//! overlap the window, oldest first, as stored (never re-encoded).
//!
//! Chunks are read one at a time (a chunk is at most a few MiB), and records stream into the
//! [`BundleWriter`]'s spool files, so memory stays flat whatever the window holds. The order is the store's:
//! signals traces, metrics, logs; days oldest first; chunks in sealing order; records in chunk order. The
//! same stored records and window therefore give the same bundle bytes.
use std::io::Write;
use std::path::Path;

use stella_store::chunks::{ScanFilter, StoreError, StoreView, record_facts};

use crate::bundle::ProfileDigest;
use crate::{
    BundleHeader, BundleSummary, BundleWriter, Compression, RecordFacts, Signal, SigningKey, Window, WriteError,
};

/// The longest window a relative window (`24h`) may name.
const MAX_RELATIVE: jiff::SignedDuration = jiff::SignedDuration::from_secs(10 * 366 * 86_400);

/// A window the CLI or the API could not read.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid window {text:?}: {reason}; use a duration back from now (24h, 90m, 7d) or START..END in RFC 3339 (2026-11-01T00:00:00Z..2026-11-02T00:00:00Z)"
)]
pub struct WindowError {
    /// The window as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl WindowError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        "bundle.window_invalid"
    }
}

/// Reads a window: a duration back from `now` (`24h`, `90m`; the end is the whole second after `now`, so
/// everything up to now is inside and the window is reproducible from the manifest) or `START..END` in
/// RFC 3339. The end is exclusive.
pub fn parse_window(text: &str, now: jiff::Timestamp) -> Result<Window, WindowError> {
    let error = |reason: String| WindowError { text: text.to_string(), reason };
    let window = match text.split_once("..") {
        Some((start, end)) => {
            let time = |part: &str, which: &str| {
                part.trim().parse::<jiff::Timestamp>().map_err(|problem| error(format!("{which} {part:?}: {problem}")))
            };
            Window { start: time(start, "start")?, end: time(end, "end")? }
        }
        None => {
            // `24h`, `90m`, `7d`, `1h30m` or ISO 8601 `PT24H`; a day is 24 hours.
            let length = text
                .trim()
                .parse::<jiff::Span>()
                .and_then(|span| span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()))
                .map_err(|problem| error(format!("not a duration such as 24h or 7d: {problem}")))?;
            if length.is_zero() || length.is_negative() || length > MAX_RELATIVE {
                return Err(error("the duration must be above 0 and at most ten years".to_string()));
            }
            let end =
                jiff::Timestamp::from_second(now.as_second() + 1).map_err(|problem| error(problem.to_string()))?;
            let start = end.checked_sub(length).map_err(|problem| error(problem.to_string()))?;
            Window { start, end }
        }
    };
    if window.start >= window.end {
        return Err(error("the start must be before the end".to_string()));
    }
    Ok(window)
}

/// Why a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The store could not be read (or a chunk is damaged: run `stella telemetry store check`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bundle could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl CaptureError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            CaptureError::Store(error) => error.code(),
            CaptureError::Write(error) => error.code(),
        }
    }
}

/// Where a capture stands: chunks read of the chunks to read, records taken so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptureProgress {
    /// Chunks read.
    pub chunks_done: u64,
    /// Chunks overlapping the window.
    pub chunks_total: u64,
    /// Records in the bundle so far.
    pub records: u64,
}

/// Where a capture reads from and writes to.
pub struct CaptureSource<'a> {
    /// The store as its server sees it: a running server's consistent cut of sealed chunks and open-chunk
    /// records (the latter follow the signal's sealed records and name no source chunk), or the same
    /// rebuilt offline.
    pub view: &'a dyn StoreView,
    /// Where the spool files go.
    pub spool_dir: &'a Path,
}

/// Writes the bundle of `header.tenant` and `header.window` to `out`, signed with `key`. `progress` is
/// called after each chunk.
pub fn capture(
    source: &CaptureSource<'_>,
    header: BundleHeader,
    key: &SigningKey,
    compression: Compression,
    out: impl Write,
    progress: &mut dyn FnMut(CaptureProgress),
) -> Result<BundleSummary, CaptureError> {
    let store = source.view.store();
    let tenant = header.tenant.clone();
    let start = unix_nanos(header.window.start);
    // The window is half-open: a record overlaps it when it has an item at or after `start` and one
    // before `end`.
    let end = unix_nanos(header.window.end).saturating_sub(1);
    let mut writer = BundleWriter::new(header, source.spool_dir)?;
    let cuts = Signal::ALL
        .map(|signal| source.view.cut(&tenant, signal, (start, end), ScanFilter::default()).map(|cut| (signal, cut)));
    let cuts = cuts.into_iter().collect::<Result<Vec<_>, _>>()?;
    let total = cuts.iter().map(|(_, cut)| cut.chunks.len() as u64).sum();
    let mut state = CaptureProgress { chunks_total: total, ..CaptureProgress::default() };
    progress(state);
    // Each signal's chunks, then its unsealed records.
    for (signal, cut) in cuts {
        for chunk in &cut.chunks {
            let mut taken = false;
            for record in store.read_chunk(&chunk.path)? {
                if take(&mut writer, signal, &record, (start, end))? {
                    taken = true;
                    state.records += 1;
                }
            }
            if taken {
                writer.add_source_chunk(&chunk.chunk.sha256)?;
            }
            state.chunks_done += 1;
            progress(state);
        }
        for record in &cut.unsealed {
            state.records += u64::from(take(&mut writer, signal, &record.payload, (start, end))?);
        }
    }
    Ok(writer.finish(key, compression, out)?)
}

/// Adds `record` if it has an item in `[start, end]`; whether it did.
fn take(
    writer: &mut BundleWriter,
    signal: Signal,
    record: &[u8],
    (start, end): (u64, u64),
) -> Result<bool, WriteError> {
    let Some(facts) = record_facts(signal, record) else { return Ok(false) };
    if facts.items == 0 || facts.max_time < start || facts.min_time > end {
        return Ok(false);
    }
    for profile in facts.redaction_profiles.iter().filter_map(|value| ProfileDigest::from_attribute(value)) {
        writer.add_redaction_profile(profile);
    }
    let facts =
        RecordFacts { items: facts.items, min_time_unix_nano: facts.min_time, max_time_unix_nano: facts.max_time };
    writer.add_record(signal, record, facts)?;
    Ok(true)
}

/// What writes Stella's bundles, recorded in every manifest: `stella <version>`.
pub fn generator() -> String {
    format!("stella {}", env!("CARGO_PKG_VERSION"))
}

fn unix_nanos(at: jiff::Timestamp) -> u64 {
    u64::try_from(at.as_nanosecond()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_durations_back_from_now_or_rfc3339_ranges() {
        let now: jiff::Timestamp = match "2026-11-29T12:00:00.750Z".parse() {
            Ok(now) => now,
            Err(error) => panic!("{error}"),
        };
        let day = parse_window("24h", now).map(|window| (window.start.to_string(), window.end.to_string()));
        assert_eq!(day.ok(), Some(("2026-11-28T12:00:01Z".to_string(), "2026-11-29T12:00:01Z".to_string())));
        let range = parse_window("2026-11-01T00:00:00Z..2026-11-02T00:00:00+01:00", now)
            .map(|window| (window.start.to_string(), window.end.to_string()));
        assert_eq!(range.ok(), Some(("2026-11-01T00:00:00Z".to_string(), "2026-11-01T23:00:00Z".to_string())));
        let week = parse_window("7d", now).map(|window| window.end.duration_since(window.start));
        assert_eq!(week.ok(), Some(jiff::SignedDuration::from_hours(7 * 24)), "a day is 24 hours");
        let iso = parse_window("PT90M", now).map(|window| window.end.duration_since(window.start));
        assert_eq!(iso.ok(), Some(jiff::SignedDuration::from_mins(90)));
        for bad in ["", "0s", "-1h", "11y", "yesterday", "2026-11-02T00:00:00Z..2026-11-01T00:00:00Z", "2026-11-01..x"]
        {
            let error = parse_window(bad, now).err().map(|error| error.to_string()).unwrap_or_default();
            assert!(error.contains("invalid window") && error.contains("RFC 3339"), "{bad:?}: {error}");
        }
    }
}
