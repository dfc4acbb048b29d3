use crate::Signal;

/// The archive path of a signal's records: `otlp/traces.pb`, `otlp/metrics.pb` or `otlp/logs.pb`.
pub fn payload_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "otlp/traces.pb",
        Signal::Metrics => "otlp/metrics.pb",
        Signal::Logs => "otlp/logs.pb",
    }
}

/// The signal whose records live at `path`, if it is a payload path.
pub(crate) fn signal_of_path(path: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|signal| payload_path(*signal) == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file_set::{ENVELOPE_FILE, MANIFEST_FILE};

    #[test]
    fn sorted_names_put_the_envelope_then_the_manifest_first() {
        let mut names = vec![payload_path(Signal::Traces), payload_path(Signal::Metrics), payload_path(Signal::Logs)];
        names.extend([MANIFEST_FILE, ENVELOPE_FILE]);
        names.sort();
        assert_eq!(names[..2], [ENVELOPE_FILE, MANIFEST_FILE]);
        for signal in Signal::ALL {
            assert_eq!(signal_of_path(payload_path(signal)), Some(signal));
        }
        assert_eq!(signal_of_path(MANIFEST_FILE), None);
    }
}
