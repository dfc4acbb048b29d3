"""Rules and alerts on the embedded default against a real Alertmanager (Debian `prometheus-alertmanager`)
with a webhook receiver: stella writes its own metrics into its store (self-monitoring), evaluates the rules
`stella telemetry rules render` ships (`rules.builtin`) plus a recording rule of its own file, and when incident mode goes on the shipped
`StellaIncidentModeOn` alert fires and reaches the webhook through Alertmanager; when it goes off the
resolution arrives. `/api/v1/rules`, `/api/v1/alerts` and the `ALERTS` series answer as Prometheus's do."""
import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import Stella, free_port
from test_prometheus import api_get

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(ALERTMANAGER is None, reason="Debian's prometheus-alertmanager is not installed (scripts/test.sh installs it)")


class Webhook:
    """An HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self):
        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, name, status):
        return [alert for body in self.bodies for alert in body["alerts"]
                if alert["labels"].get("alertname") == name and alert["status"] == status]


class Alertmanager:
    def __init__(self, webhook_url):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="alertmanager-interop-"))
        (self.dir / "alertmanager.yml").write_text(
            "route: {receiver: hook, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}\n"
            f"receivers: [{{name: hook, webhook_configs: [{{url: '{webhook_url}', send_resolved: true}}]}}]\n")
        self.log = open(self.dir / "alertmanager.log", "ab")
        self.process = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={self.dir / 'alertmanager.yml'}", f"--storage.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 60
        while True:
            assert self.process.poll() is None, (self.dir / "alertmanager.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            assert time.time() < deadline, "alertmanager did not become ready"
            time.sleep(0.2)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def wait_until(condition, what, timeout=60):
    deadline = time.time() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.time() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.3)


def set_incident(stella, state):
    body = {"state": state, "reason": "interop test"}
    if state == "on":
        body["services"] = ["checkout"]
    request = urllib.request.Request(f"http://127.0.0.1:{stella.api}/telemetry/incidents/mode", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201), response.read()


def test_the_shipped_incident_alert_fires_into_a_real_alertmanager_and_resolves(tmp_path):
    (tmp_path / "recorded.yml").write_text(
        "groups:\n  - name: self\n    interval: 1s\n    rules:\n"
        "      - record: stella:build_info:count\n        expr: count by (job) (stella_build_info)\n")
    webhook = Webhook()
    alertmanager = Alertmanager(webhook.url)
    stella = Stella(f"""exporters:
  store: {{}}
service:
  pipelines:
    metrics: {{receivers: [otlp], processors: [], exporters: [store]}}
    traces: null
    logs: null
rules:
  builtin: true
  files: [{tmp_path / 'recorded.yml'}]
  interval: 1s
alerting:
  alertmanagers: [http://127.0.0.1:{alertmanager.port}]
self_monitoring: {{interval: 1s}}
""")
    try:
        # Self-monitoring: the server's own series are in its store under job="stella".
        wait_until(lambda: api_get(stella.api, "/api/v1/query", [("query", 'stella_build_info{job="stella"}')])[1]["data"]["result"],
                   "stella_build_info in the store")
        set_incident(stella, "on")
        firing = wait_until(lambda: webhook.alerts("StellaIncidentModeOn", "firing"), "the firing alert at the webhook")
        assert firing[0]["labels"]["severity"] == "info", firing
        assert firing[0]["annotations"]["summary"] == "Incident mode is on", firing
        assert f"127.0.0.1:{stella.api}" in firing[0]["annotations"]["description"], firing
        assert firing[0]["labels"]["instance"] == f"127.0.0.1:{stella.api}", firing

        status, alerts = api_get(stella.api, "/api/v1/alerts", [])
        assert status == 200 and [a["labels"]["alertname"] for a in alerts["data"]["alerts"]] == ["StellaIncidentModeOn"], alerts
        assert alerts["data"]["alerts"][0]["state"] == "firing" and alerts["data"]["alerts"][0]["value"] == "1e+00", alerts
        query = 'ALERTS{alertname="StellaIncidentModeOn", alertstate="firing"}'
        wait_until(lambda: api_get(stella.api, "/api/v1/query", [("query", query)])[1]["data"]["result"], "the ALERTS series in the store")
        status, rules = api_get(stella.api, "/api/v1/rules", [])
        assert status == 200, rules
        every = [rule for group in rules["data"]["groups"] for rule in group["rules"]]
        assert len(every) >= 30, len(every)
        broken = [(rule["name"], rule.get("lastError")) for rule in every if rule["health"] != "ok"]
        assert not broken, f"the shipped rules must evaluate without error: {broken}"
        incident_rule = next(rule for rule in every if rule["name"] == "StellaIncidentModeOn")
        assert incident_rule["state"] == "firing" and incident_rule["type"] == "alerting", incident_rule
        status, only_recording = api_get(stella.api, "/api/v1/rules", [("type", "record")])
        assert all(rule["type"] == "recording" for group in only_recording["data"]["groups"] for rule in group["rules"])
        recorded = wait_until(lambda: api_get(stella.api, "/api/v1/query", [("query", "stella:build_info:count")])[1]["data"]["result"],
                              "the recorded series")
        assert recorded[0]["metric"] == {"__name__": "stella:build_info:count", "job": "stella"}, recorded

        set_incident(stella, "off")
        resolved = wait_until(lambda: webhook.alerts("StellaIncidentModeOn", "resolved"), "the resolution at the webhook")
        assert resolved[0]["labels"] == firing[0]["labels"], resolved
        wait_until(lambda: not api_get(stella.api, "/api/v1/alerts", [])[1]["data"]["alerts"], "no active alert")
        # The ALERTS series ended with a staleness marker: it is gone at once, not 5 minutes later.
        wait_until(lambda: not api_get(stella.api, "/api/v1/query", [("query", query)])[1]["data"]["result"], "ALERTS ending")
        stella.stop()
        assert "rule evaluation failed" not in stella.log_text()
    finally:
        alertmanager.stop()
        if stella.process.poll() is None:
            stella.process.kill()
