//! `Export*ServiceResponse` messages, with `partial_success` only when something was rejected.
use stella_otlp::proto::collector::logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse};
use stella_otlp::proto::collector::metrics::v1::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse};
use stella_otlp::proto::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use stella_otlp::validate::Rejection;

fn partial<T>(rejection: &Rejection, make: impl FnOnce(i64, String) -> T) -> Option<T> {
    let rejected = rejection.count > 0 || !rejection.message.is_empty();
    rejected.then(|| make(rejection.count, rejection.message.clone()))
}

pub(crate) fn traces(rejection: &Rejection) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: partial(rejection, |rejected_spans, error_message| ExportTracePartialSuccess {
            rejected_spans,
            error_message,
        }),
    }
}

pub(crate) fn metrics(rejection: &Rejection) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: partial(rejection, |rejected_data_points, error_message| ExportMetricsPartialSuccess {
            rejected_data_points,
            error_message,
        }),
    }
}

pub(crate) fn logs(rejection: &Rejection) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: partial(rejection, |rejected_log_records, error_message| ExportLogsPartialSuccess {
            rejected_log_records,
            error_message,
        }),
    }
}
