//! The monitoring kit for the Prometheus that scrapes our `/metrics` and receives our remote-write:
//! alerting and recording rules with their `promtool test rules` unit tests, and Grafana dashboards
//! (the files under `crates/stella-export/monitoring/`, built into the binary). `stella telemetry rules
//! render` and `dashboards render` write them out; the offline kit carries them.

/// One file of the kit, by its path relative to the directory it is rendered into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The relative path (`stella-telemetry.rules.yml`, `tests/slo-errors.test.yml`).
    pub path: &'static str,
    /// Its contents.
    pub content: &'static str,
}

macro_rules! assets {
    ($dir:literal: $($path:literal),+ $(,)?) => {
        &[$(Asset { path: $path, content: include_str!(concat!("../monitoring/", $dir, "/", $path)) }),+]
    };
}

/// The rules file and its unit tests (`promtool test rules tests/*.test.yml` from the rendered
/// directory: the tests name the rules file as `../stella-telemetry.rules.yml`).
pub const RULES: &[Asset] = assets!("rules":
    "stella-telemetry.rules.yml",
    "tests/exporters.test.yml",
    "tests/incident-bundles.test.yml",
    "tests/ingest.test.yml",
    "tests/policy-dora.test.yml",
    "tests/slo-errors.test.yml",
    "tests/slo-latency.test.yml",
);

/// The Grafana dashboards (JSON model, schema 39, a `datasource` variable for the Prometheus).
pub const DASHBOARDS: &[Asset] = assets!("dashboards":
    "stella-dora.json",
    "stella-exporters.json",
    "stella-incident-mode.json",
    "stella-ingestion.json",
    "stella-retention.json",
    "stella-rule-evaluations.json",
);

/// Where the rules' `runbook_url`s point unless `rules render --runbook-base-url` says otherwise.
pub const RUNBOOK_BASE_URL: &str = "https://stella.example/runbooks";

/// Writes `assets` under `dir` (creating directories; existing files are replaced); the paths written.
/// With `runbook_base_url`, every runbook URL (rules and their tests alike) starts with it instead of
/// [`RUNBOOK_BASE_URL`].
pub fn render(
    assets: &[Asset],
    dir: &std::path::Path,
    runbook_base_url: Option<&str>,
) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for asset in assets {
        let path = dir.join(asset.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let content = match runbook_base_url {
            Some(base) => asset.content.replace(RUNBOOK_BASE_URL, base.trim_end_matches('/')),
            None => asset.content.to_string(),
        };
        std::fs::write(&path, content)?;
        written.push(path);
    }
    Ok(written)
}
