//! `Export*ServiceResponse` messages, with `partial_success` only when something was rejected.
use prost::Message;
use stella_otlp::Signal;
use stella_otlp::proto::collector::logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse};
use stella_otlp::proto::collector::metrics::v1::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse};
use stella_otlp::proto::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use stella_otlp::validate::Rejection;

fn partial<T>(rejection: &Rejection, make: impl FnOnce(i64, String) -> T) -> Option<T> {
    let rejected = rejection.count > 0 || !rejection.message.is_empty();
    rejected.then(|| make(rejection.count, rejection.message.clone()))
}

fn traces(rejection: &Rejection) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: partial(rejection, |rejected_spans, error_message| ExportTracePartialSuccess {
            rejected_spans,
            error_message,
        }),
    }
}

fn metrics(rejection: &Rejection) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: partial(rejection, |rejected_data_points, error_message| ExportMetricsPartialSuccess {
            rejected_data_points,
            error_message,
        }),
    }
}

fn logs(rejection: &Rejection) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: partial(rejection, |rejected_log_records, error_message| ExportLogsPartialSuccess {
            rejected_log_records,
            error_message,
        }),
    }
}

/// The protobuf encoding of the `Export*ServiceResponse` of `signal`.
pub(crate) fn protobuf(signal: Signal, rejection: &Rejection) -> Vec<u8> {
    match signal {
        Signal::Traces => traces(rejection).encode_to_vec(),
        Signal::Metrics => metrics(rejection).encode_to_vec(),
        Signal::Logs => logs(rejection).encode_to_vec(),
    }
}
