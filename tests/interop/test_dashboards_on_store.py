"""Every panel of every dashboard `stella telemetry dashboards render` ships evaluates without error on the
embedded store, as Grafana's Prometheus data source would ask it (range queries by form POST, Grafana's
`$__rate_interval` and `$__range` filled in as Grafana fills them), with stella's own metrics written into
its store (self-monitoring) and the shipped rules evaluated; panels about stella itself have data."""
import glob
import json
import re
import subprocess
import time

from conftest import STELLA, Stella
from test_alerting import wait_until
from test_prometheus import api_get


def panel_queries(directory):
    """(dashboard file, panel title, expression) of every panel target."""
    found = []

    def walk(file, panel):
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append((file, panel.get("title", "?"), target["expr"]))
        for inner in panel.get("panels", []):
            walk(file, inner)

    for path in sorted(glob.glob(f"{directory}/*.json")):
        dashboard = json.load(open(path))
        for panel in dashboard.get("panels", []):
            walk(path.rsplit("/", 1)[-1], panel)
    return found


def test_every_shipped_dashboard_panel_evaluates_on_the_embedded_store(tmp_path):
    subprocess.run([str(STELLA), "telemetry", "dashboards", "render", "--out", str(tmp_path / "dashboards")], check=True, capture_output=True)
    subprocess.run([str(STELLA), "telemetry", "rules", "render", "--out", str(tmp_path / "rules")], check=True, capture_output=True)
    queries = panel_queries(tmp_path / "dashboards")
    assert len(queries) >= 60, len(queries)
    stella = Stella(f"""exporters:
  store: {{}}
service:
  pipelines:
    metrics: {{receivers: [otlp], processors: [], exporters: [store]}}
    traces: null
    logs: null
rules:
  files: [{tmp_path / 'rules' / 'stella-telemetry.rules.yml'}]
  interval: 1s
self_monitoring: {{interval: 1s}}
""")
    try:
        wait_until(lambda: api_get(stella.api, "/api/v1/query", [("query", "count(prometheus_rule_evaluations_total)")])[1]["data"]["result"],
                   "rule-manager metrics in the store")
        time.sleep(3)
        end = time.time()
        failures, with_data = [], []
        for file, title, expr in queries:
            query = expr.replace("$__rate_interval", "1m").replace("$__range", "1h")
            assert not re.search(r"\$\w", query), f"{file} {title}: a variable is left: {query}"
            status, answer = api_get(stella.api, "/api/v1/query_range",
                                     [("query", query), ("start", str(end - 600)), ("end", str(end)), ("step", "15")], "POST")
            if status != 200 or answer.get("status") != "success":
                failures.append(f"{file} / {title}: {status} {answer.get('errorType')}: {answer.get('error')}\n    {query}")
            elif answer["data"]["result"]:
                with_data.append(f"{file} / {title}")
        assert not failures, "\n".join(failures)
        print(f"{len(queries)} panel queries evaluated, {len(with_data)} with data")
        # Panels about stella itself see its own metrics.
        assert any("stella-rule-evaluations.json" in panel for panel in with_data), with_data
        assert any("stella-ingestion.json" in panel for panel in with_data), with_data
        stella.stop()
    finally:
        if stella.process.poll() is None:
            stella.process.kill()
