//! The ingest logs of a running collector, one per pipeline and tenant, opened on first use and kept
//! across reloads (a reload never reopens a log, so no acknowledged record is ever lost in between).
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use stella_store::chunks::directory_name;
use stella_store::log::{IngestLog, LogError, LogOptions, RealFs};

/// An ingest log on the real filesystem.
pub type Log = IngestLog<RealFs>;

/// Every open log, by (pipeline id, tenant).
pub struct LogRegistry {
    root: PathBuf,
    options: LogOptions,
    open: Mutex<HashMap<(String, String), Arc<Log>>>,
}

impl LogRegistry {
    /// Logs under `root` (`<data-dir>/log`), opened with `options`.
    pub fn new(root: PathBuf, options: LogOptions) -> Self {
        LogRegistry { root, options, open: Mutex::new(HashMap::new()) }
    }

    /// The log of `pipeline` for `tenant`, opening (and recovering) it on first use.
    pub fn get(&self, pipeline: &str, tenant: &str) -> Result<Arc<Log>, LogError> {
        let mut open = self.open.lock().unwrap_or_else(|poison| poison.into_inner());
        let key = (pipeline.to_string(), tenant.to_string());
        if let Some(log) = open.get(&key) {
            return Ok(Arc::clone(log));
        }
        let dir = self.root.join(directory_name(pipeline)).join(directory_name(tenant));
        let (log, report) = IngestLog::open(Arc::new(RealFs), dir.clone(), self.options)?;
        tracing::info!(
            pipeline,
            tenant,
            dir = %dir.display(),
            next_seq = report.next_seq,
            segments = report.segments,
            truncated_bytes = report.truncated_bytes,
            skipped_seqs = report.skipped_seqs,
            damaged_ranges = report.damage.len(),
            "ingest log opened"
        );
        open.insert(key, Arc::clone(&log));
        Ok(log)
    }

    /// The tenants that already have a log of `pipeline` on disk (so their backlog is delivered after a restart).
    pub fn tenants_on_disk(&self, pipeline: &str) -> Vec<String> {
        let dir = self.root.join(directory_name(pipeline));
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// (log name, tenant, log) of every open log.
    pub fn open_logs(&self) -> Vec<(String, String, Arc<Log>)> {
        let open = self.open.lock().unwrap_or_else(|poison| poison.into_inner());
        open.iter().map(|((log, tenant), opened)| (log.clone(), tenant.clone(), Arc::clone(opened))).collect()
    }

    /// Bytes held by every open log.
    pub fn total_bytes(&self) -> u64 {
        self.open.lock().unwrap_or_else(|poison| poison.into_inner()).values().map(|log| log.bytes()).sum()
    }

    /// Writes and syncs what is pending and stops every writer.
    pub fn close_all(&self) {
        let logs: Vec<Arc<Log>> =
            self.open.lock().unwrap_or_else(|poison| poison.into_inner()).drain().map(|(_, log)| log).collect();
        for log in logs {
            log.close();
        }
    }
}
