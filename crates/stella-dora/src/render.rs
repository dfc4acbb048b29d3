//! The report as Markdown, CSV (the daily cohorts) and one self-contained HTML page (headline tiles,
//! inline-SVG trends of the daily cohorts, the pipeline and severity tables; no network, no script).
//! JSON is the report serialised and canonicalised by the caller.
use std::fmt::Write;

use crate::report::{DailyCohort, MetricSummary, Report};

fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |value| format!("{value}"))
}

fn headline(report: &Report) -> [(&'static str, &MetricSummary); 4] {
    let metrics = &report.metrics;
    [
        ("Deployment frequency", &metrics.deployment_frequency),
        ("Lead time for changes", &metrics.lead_time),
        ("Change failure rate", &metrics.change_failure_rate),
        ("Time to recovery", &metrics.mttr),
    ]
}

fn slo_text(metric: &MetricSummary) -> &'static str {
    match metric.slo {
        crate::SloStatus::Met => "met",
        crate::SloStatus::Breached => "breached",
        crate::SloStatus::InsufficientData => "insufficient data",
    }
}

/// The report as Markdown.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let window = &report.window;
    let _ = writeln!(out, "# DORA report: {}\n", report.tenant);
    let _ = writeln!(
        out,
        "Window [{}, {}) in {} ({} calendar days), as of {}. Production: {}. Preset: {}.\n",
        window.from,
        window.to,
        window.time_zone,
        window.calendar_days,
        window.as_of,
        report.production_environments.join(", "),
        report.preset
    );
    let _ = writeln!(out, "**Overall tier: {}**\n", report.overall_tier.as_str());
    let _ = writeln!(out, "| Metric | Value | Unit | Tier | SLO target | SLO |\n|---|---|---|---|---|---|");
    for (name, metric) in headline(report) {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |",
            figure(metric.value),
            metric.unit,
            metric.tier.as_str(),
            metric.slo_target,
            slo_text(metric)
        );
    }
    let _ = writeln!(out, "\nMTTA: {} hours.\n", figure(report.metrics.mtta_hours));
    let _ = writeln!(
        out,
        "## Pipelines\n\n| Pipeline | Deployments | Failed | CFR % | Median lead time (h) |\n|---|---|---|---|---|"
    );
    for row in &report.pipelines {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.pipeline,
            row.deployments,
            row.failed,
            figure(row.change_failure_rate_percent),
            figure(row.median_lead_time_hours)
        );
    }
    let _ = writeln!(
        out,
        "\n## Incidents by severity\n\n| Severity | Incidents | Acknowledged | Resolved | MTTA (h) | MTTR (h) |\n|---|---|---|---|---|---|"
    );
    for row in &report.severities {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.severity,
            row.incidents,
            row.acknowledged,
            row.resolved,
            figure(row.mtta_hours),
            figure(row.mttr_hours)
        );
    }
    let _ = writeln!(
        out,
        "\n## Daily\n\n| Date | Deployments | Successful | Failed | CFR % | Median lead time (h) | Incidents | MTTR (h) |\n|---|---|---|---|---|---|---|---|"
    );
    for day in &report.daily {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            day.date,
            day.deployments,
            day.successful,
            day.failed,
            figure(day.change_failure_rate_percent),
            figure(day.median_lead_time_hours),
            day.incidents,
            figure(day.mttr_hours)
        );
    }
    let _ = writeln!(out, "\n## Definitions\n");
    for definition in report.definitions {
        let _ = writeln!(out, "- {definition}");
    }
    out
}

/// The daily cohorts as CSV (RFC 4180, header row, empty cells where a figure has no data).
pub fn csv(report: &Report) -> String {
    let mut out = String::from(
        "date,deployments,successful,failed,change_failure_rate_percent,median_lead_time_hours,incidents,mttr_hours\r\n",
    );
    let cell = |value: Option<f64>| value.map(|value| format!("{value}")).unwrap_or_default();
    for day in &report.daily {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{}\r\n",
            day.date,
            day.deployments,
            day.successful,
            day.failed,
            cell(day.change_failure_rate_percent),
            cell(day.median_lead_time_hours),
            day.incidents,
            cell(day.mttr_hours)
        );
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An inline SVG trend of one daily figure (bars; a gap where a day has no data).
fn trend(title: &str, days: &[DailyCohort], value: impl Fn(&DailyCohort) -> Option<f64>) -> String {
    let (width, height, gap) = (640.0_f64, 120.0_f64, 2.0_f64);
    let values: Vec<Option<f64>> = days.iter().map(&value).collect();
    let top = values.iter().flatten().copied().fold(0.0_f64, f64::max);
    let bar = if days.is_empty() { 0.0 } else { width / days.len() as f64 };
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {}\" role=\"img\" aria-label=\"{}\">",
        escape(title),
        height + 16.0,
        escape(title)
    );
    for (index, (day, value)) in days.iter().zip(&values).enumerate() {
        let Some(value) = value else { continue };
        let h = if top > 0.0 { value / top * height } else { 0.0 };
        let _ = write!(
            svg,
            "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\"><title>{}: {value}</title></rect>",
            index as f64 * bar,
            height - h,
            (bar - gap).max(1.0),
            h,
            day.date
        );
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\">{}</text><text x=\"{width}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            height + 14.0,
            first.date,
            height + 14.0,
            last.date
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// The report as one self-contained HTML page.
pub fn html(report: &Report) -> String {
    let window = &report.window;
    let mut out = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>DORA report</title><style>\
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}h1{margin-bottom:.2rem}.meta{color:#57606a}\
.tiles{display:flex;flex-wrap:wrap;gap:1rem;margin:1.5rem 0}.tile{border:1px solid #d0d7de;border-radius:8px;padding:1rem;min-width:12rem}\
.tile .value{font-size:1.8rem;font-weight:600}.met{color:#1a7f37}.breached{color:#cf222e}.insufficient{color:#57606a}\
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:right}th:first-child,td:first-child{text-align:left}\
svg{width:100%;max-width:640px;height:auto}rect{fill:#0969da}text{font-size:10px;fill:#57606a}</style></head><body>",
    );
    let _ = write!(
        out,
        "<h1>DORA report: {}</h1><p class=\"meta\">Window [{}, {}) in {} ({} calendar days), as of {}. Production: {}. Preset: {}.</p>",
        escape(&report.tenant),
        escape(&window.from),
        escape(&window.to),
        escape(&window.time_zone),
        window.calendar_days,
        escape(&window.as_of),
        escape(&report.production_environments.join(", ")),
        escape(&report.preset)
    );
    let _ = write!(
        out,
        "<p id=\"overall\">Overall tier: <strong>{}</strong></p><div class=\"tiles\">",
        report.overall_tier.as_str()
    );
    for (name, metric) in headline(report) {
        let class = match metric.slo {
            crate::SloStatus::Met => "met",
            crate::SloStatus::Breached => "breached",
            crate::SloStatus::InsufficientData => "insufficient",
        };
        let _ = write!(
            out,
            "<div class=\"tile\"><div>{name}</div><div class=\"value\" data-metric=\"{name}\">{}</div><div>{} &middot; {}</div><div class=\"{class}\">SLO {} (target {})</div></div>",
            figure(metric.value),
            metric.unit,
            metric.tier.as_str(),
            slo_text(metric),
            metric.slo_target
        );
    }
    out.push_str("</div><h2>Daily trends</h2>");
    out.push_str(&trend("Production deployments per day", &report.daily, |day| Some(day.deployments as f64)));
    out.push_str(&trend("Change failure rate per day (%)", &report.daily, |day| day.change_failure_rate_percent));
    out.push_str(&trend("Median lead time per day (hours)", &report.daily, |day| day.median_lead_time_hours));
    out.push_str("<h2>Pipelines</h2><table><tr><th>Pipeline</th><th>Deployments</th><th>Failed</th><th>CFR %</th><th>Median lead time (h)</th></tr>");
    for row in &report.pipelines {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.pipeline),
            row.deployments,
            row.failed,
            figure(row.change_failure_rate_percent),
            figure(row.median_lead_time_hours)
        );
    }
    out.push_str("</table><h2>Incidents by severity</h2><table><tr><th>Severity</th><th>Incidents</th><th>Acknowledged</th><th>Resolved</th><th>MTTA (h)</th><th>MTTR (h)</th></tr>");
    for row in &report.severities {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.severity),
            row.incidents,
            row.acknowledged,
            row.resolved,
            figure(row.mtta_hours),
            figure(row.mttr_hours)
        );
    }
    out.push_str("</table><h2>Definitions</h2><ul>");
    for definition in report.definitions {
        let _ = write!(out, "<li>{}</li>", escape(definition));
    }
    out.push_str("</ul></body></html>\n");
    out
}
