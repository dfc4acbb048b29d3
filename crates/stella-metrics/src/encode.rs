//! Prometheus text exposition format 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>).
use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::family::{Family, Meta};

/// Which series to write: all, or those of one tenant (series with a `tenant` label of another value are
/// left out; series without a `tenant` label are process-wide and always written).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every series.
    All,
    /// Only what a token of this tenant may see.
    Tenant(&'a str),
}

impl Scope<'_> {
    fn shows(&self, meta: &Meta, values: &[String]) -> bool {
        let Scope::Tenant(tenant) = self else { return true };
        meta.labels.iter().zip(values).all(|(label, value)| *label != "tenant" || value == tenant)
    }
}

pub(crate) fn family(out: &mut String, family: &Family, scope: Scope<'_>) {
    match family {
        Family::Counter(counters) => {
            header(out, &counters.meta, "counter");
            let series = counters.series.read().unwrap_or_else(|poison| poison.into_inner());
            for (values, cell) in series.iter().filter(|(values, _)| scope.shows(&counters.meta, values)) {
                sample(out, counters.meta.name, &counters.meta, values, None, cell.load(Ordering::Relaxed) as f64);
            }
        }
        Family::Gauge(gauges) => {
            header(out, &gauges.meta, "gauge");
            let series = gauges.series.read().unwrap_or_else(|poison| poison.into_inner());
            for (values, cell) in series.iter().filter(|(values, _)| scope.shows(&gauges.meta, values)) {
                sample(out, gauges.meta.name, &gauges.meta, values, None, cell.load(Ordering::Relaxed) as f64);
            }
        }
        Family::FloatGauge(gauges) => {
            header(out, &gauges.meta, "gauge");
            let series = gauges.series.read().unwrap_or_else(|poison| poison.into_inner());
            for (values, cell) in series.iter().filter(|(values, _)| scope.shows(&gauges.meta, values)) {
                sample(out, gauges.meta.name, &gauges.meta, values, None, f64::from_bits(cell.load(Ordering::Relaxed)));
            }
        }
        Family::Histogram(histograms) => {
            header(out, &histograms.meta, "histogram");
            let series = histograms.series.read().unwrap_or_else(|poison| poison.into_inner());
            let meta = &histograms.meta;
            for (values, cells) in series.iter().filter(|(values, _)| scope.shows(meta, values)) {
                let mut cumulative = 0;
                for (bound, bucket) in cells.bounds.iter().zip(&cells.buckets) {
                    cumulative += bucket.load(Ordering::Relaxed);
                    let le = format_value(*bound);
                    sample(out, &format!("{}_bucket", meta.name), meta, values, Some(&le), cumulative as f64);
                }
                let count = cells.count.load(Ordering::Relaxed) as f64;
                sample(out, &format!("{}_bucket", meta.name), meta, values, Some("+Inf"), count);
                let sum = f64::from_bits(cells.sum_bits.load(Ordering::Relaxed));
                sample(out, &format!("{}_sum", meta.name), meta, values, None, sum);
                sample(out, &format!("{}_count", meta.name), meta, values, None, count);
            }
        }
    }
}

fn header(out: &mut String, meta: &Meta, kind: &str) {
    let help = meta.help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {} {help}", meta.name);
    let _ = writeln!(out, "# TYPE {} {kind}", meta.name);
}

fn sample(out: &mut String, name: &str, meta: &Meta, values: &[String], le: Option<&str>, value: f64) {
    out.push_str(name);
    let mut pairs: Vec<(&str, &str)> = meta.labels.iter().copied().zip(values.iter().map(String::as_str)).collect();
    if let Some(le) = le {
        pairs.push(("le", le));
    }
    if !pairs.is_empty() {
        out.push('{');
        for (index, (label, value)) in pairs.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let _ = write!(out, "{label}=\"{escaped}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", format_value(value));
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use crate::Registry;

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let registry = Registry::default();
        let sizes = registry.histogram("request_size_bytes", "Sizes.", &["signal"], &[10.0, 100.0]);
        let traces = sizes.with(&["traces"]);
        traces.observe(5.0);
        traces.observe(50.0);
        traces.observe(500.0);
        let text = registry.encode();
        assert!(text.contains("# TYPE request_size_bytes histogram\n"), "{text}");
        assert!(text.contains("request_size_bytes_bucket{signal=\"traces\",le=\"10\"} 1\n"), "{text}");
        assert!(text.contains("request_size_bytes_bucket{signal=\"traces\",le=\"100\"} 2\n"), "{text}");
        assert!(text.contains("request_size_bytes_bucket{signal=\"traces\",le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("request_size_bytes_sum{signal=\"traces\"} 555\n"), "{text}");
        assert!(text.contains("request_size_bytes_count{signal=\"traces\"} 3\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let registry = Registry::default();
        let failures = registry.counter("failures_total", "Failures.", &["reason"]);
        failures.with(&["a \"quoted\"\nline \\"]).inc();
        assert!(registry.encode().contains(r#"failures_total{reason="a \"quoted\"\nline \\"} 1"#));
    }

    #[test]
    fn a_tenant_scope_hides_other_tenants_series_and_keeps_process_wide_ones() {
        let registry = Registry::default();
        let backlog = registry.gauge("backlog_records", "Backlog.", &["exporter", "tenant"]);
        backlog.with(&["file", "acme"]).set(1);
        backlog.with(&["file", "globex"]).set(2);
        registry.counter("requests_total", "Requests.", &["status"]).with(&["200"]).inc();
        let acme = registry.encode_scoped(crate::Scope::Tenant("acme"));
        assert!(acme.contains(r#"backlog_records{exporter="file",tenant="acme"} 1"#), "{acme}");
        assert!(!acme.contains("globex"), "{acme}");
        assert!(acme.contains(r#"requests_total{status="200"} 1"#), "{acme}");
        assert!(registry.encode().contains("globex"));
    }

    #[test]
    fn registering_again_returns_the_same_series() {
        let registry = Registry::default();
        registry.counter("x_total", "X.", &[]).with(&[]).add(2);
        registry.counter("x_total", "X.", &[]).with(&[]).add(3);
        assert!(registry.encode().contains("x_total 5\n"));
    }
}
