"""The DORA report's HTML page in a real browser: headless Chromium (Debian `chromium`) renders the page the
server answers, offline; the headline figures are asserted on the rendered DOM (`--dump-dom`), and a
screenshot is kept as an artefact (target/test-artifacts/dora-report.png)."""
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

from conftest import ROOT, Stella

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def post(stella, path, body):
    request = urllib.request.Request(f"http://127.0.0.1:{stella.api}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def deployment(n, day, outcome="succeeded", kind="normal"):
    return {"id": f"d{n}", "environment": "production", "service": "checkout", "pipeline": "Release Train",
            "commits": [{"id": f"c{n}", "time": f"2026-11-{day:02d}T06:00:00Z"}],
            "started": f"2026-11-{day:02d}T09:00:00Z", "finished": f"2026-11-{day:02d}T10:00:00Z",
            "outcome": outcome, "kind": kind}


def test_the_html_report_renders_offline_in_chromium_with_its_headline_figures(tmp_path):
    assert CHROMIUM, "Debian's chromium is not installed; ./scripts/test.sh installs it"
    stella = Stella("exporters: {nop: {}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], processors: [], exporters: [nop]}\n")
    try:
        # Ten deployments over ten days, one failed: 9 successful = 0.9/day (High), CFR 10%, lead time 4h.
        events = [deployment(n, 1 + n, "failed" if n == 3 else "succeeded") for n in range(10)]
        assert post(stella, "/telemetry/dora/deployments", events)["recorded"] == 10
        url = f"http://127.0.0.1:{stella.api}/telemetry/dora/report?from=2026-11-01&to=2026-11-11&tz=UTC&format=html"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/html")
            page = response.read()
        assert b"http://" not in page.replace(b"http://www.w3.org/2000/svg", b""), "the page loads nothing from the network"
        report = tmp_path / "report.html"
        report.write_bytes(page)
        dom = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", report.as_uri()], capture_output=True, timeout=120, text=True)
        assert dom.returncode == 0, dom.stderr[-2000:]
        text = dom.stdout
        assert 'data-metric="Deployment frequency">0.9<' in text, text[:3000]
        assert 'data-metric="Change failure rate">10<' in text, text[:3000]
        assert 'data-metric="Lead time for changes">4<' in text, text[:3000]
        assert "Overall tier: <strong>High</strong>" in text
        assert text.count("<svg") == 3 and "release-train" in text
        artefacts = ROOT / "target" / "test-artifacts"
        artefacts.mkdir(parents=True, exist_ok=True)
        shot = artefacts / "dora-report.png"
        shot.unlink(missing_ok=True)
        taken = subprocess.run([CHROMIUM, *FLAGS, "--window-size=1280,1800", f"--screenshot={shot}", report.as_uri()],
                               capture_output=True, timeout=120, text=True)
        assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        stella.stop()
