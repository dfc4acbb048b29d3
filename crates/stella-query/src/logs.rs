//! Log search: records matching every filter, newest first, handed out as soon as no record still unread
//! can be newer, stopping once the limit is out.
use std::collections::BTreeMap;

use stella_otlp::attributes::label_text;
use stella_otlp::{OtlpRequest, Signal, attributes};
use stella_store::chunks::Visit;

use crate::{ScanFilter, StoreError, StoreView};

/// What a log search asks for.
#[derive(Debug, Default, Clone)]
pub struct LogFilter {
    /// `service.name` of the record's resource.
    pub service: Option<String>,
    /// The least severity number (0: any).
    pub severity_min: i32,
    /// Text the body (as text) must contain.
    pub contains: Option<String>,
    /// Record attributes that must have these values (as text).
    pub attributes: Vec<(String, String)>,
    /// The time range, unix nanos, inclusive.
    pub range: (u64, u64),
}

/// A matching log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundLog {
    /// Its time (or observed time when it has none), unix nanos.
    pub at: u64,
    /// The service of its resource (`unknown_service` when none).
    pub service: String,
    /// Severity number and text.
    pub severity: (i32, String),
    /// The body as text.
    pub body: String,
    /// Its attributes as text.
    pub attributes: BTreeMap<String, String>,
    /// Hex trace and span ids (empty when none).
    pub trace: (String, String),
}

impl LogFilter {
    /// The log records of one stored request that match every filter.
    fn matches(&self, record: &[u8]) -> Vec<FoundLog> {
        let Ok(OtlpRequest::Logs(request)) = OtlpRequest::decode_protobuf(Signal::Logs, record) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for group in &request.resource_logs {
            let service_name = attributes::service_name(group.resource.as_ref()).unwrap_or("unknown_service");
            if self.service.as_deref().is_some_and(|wanted| wanted != service_name) {
                continue;
            }
            for log in group.scope_logs.iter().flat_map(|scope| &scope.log_records) {
                let at = if log.time_unix_nano > 0 { log.time_unix_nano } else { log.observed_time_unix_nano };
                let body = label_text(log.body.as_ref());
                let attribute = |key: &str| {
                    log.attributes
                        .iter()
                        .find(|attribute| attribute.key == key)
                        .map(|attribute| label_text(attribute.value.as_ref()))
                };
                let matches = at >= self.range.0
                    && at <= self.range.1
                    && log.severity_number >= self.severity_min
                    && self.contains.as_deref().is_none_or(|needle| body.contains(needle))
                    && self.attributes.iter().all(|(key, value)| attribute(key).as_deref() == Some(value.as_str()));
                if !matches {
                    continue;
                }
                found.push(FoundLog {
                    at,
                    service: service_name.to_string(),
                    severity: (log.severity_number, log.severity_text.clone()),
                    body,
                    attributes: log
                        .attributes
                        .iter()
                        .map(|attribute| (attribute.key.clone(), label_text(attribute.value.as_ref())))
                        .collect(),
                    trace: (hex::encode(&log.trace_id), hex::encode(&log.span_id)),
                });
            }
        }
        found
    }
}

/// Hands every record of `tenant` matching `filter` to `emit`, newest first, until `limit` are out or
/// `emit` returns false. Holds at most `limit` matches: those that can still be among the newest `limit`.
/// Sources are read by descending latest item time, and a held record goes out as soon as no source
/// still unread can hold a newer one, so the first records go out before the scan ends.
pub fn newest_first(
    view: &dyn StoreView,
    tenant: &str,
    filter: &LogFilter,
    limit: usize,
    emit: &mut dyn FnMut(FoundLog) -> bool,
) -> Result<(), StoreError> {
    let scan_filter = ScanFilter {
        service: filter.service.as_deref(),
        severity_min: (filter.severity_min > 0).then_some(filter.severity_min),
        ..ScanFilter::default()
    };
    let cut = view.cut(tenant, Signal::Logs, filter.range, scan_filter)?;
    // Keyed by (time, order found): the last entry is the newest.
    let mut held: BTreeMap<(u64, u64), FoundLog> = BTreeMap::new();
    let (mut found, mut out, mut open) = (0u64, 0usize, true);
    let mut release = |held: &mut BTreeMap<(u64, u64), FoundLog>, bound: Option<u64>, out: &mut usize| {
        while *out < limit {
            let Some(entry) = held.last_entry() else { break };
            if bound.is_some_and(|bound| entry.key().0 <= bound) {
                break;
            }
            *out += 1;
            if !emit(entry.remove()) {
                return false;
            }
        }
        *out < limit
    };
    cut.visit_newest_first(view.store(), &mut |step| match step {
        Visit::Bound(bound) => {
            open = release(&mut held, Some(bound), &mut out);
            open
        }
        Visit::Record(record) => {
            for log in filter.matches(record) {
                held.insert((log.at, found), log);
                found += 1;
                if held.len() > limit - out {
                    held.pop_first();
                }
            }
            true
        }
    })?;
    if open {
        release(&mut held, None, &mut out);
    }
    Ok(())
}
