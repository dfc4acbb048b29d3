"""`prometheusremotewrite` against a real Prometheus (Debian `prometheus`, `--web.enable-remote-write-receiver`,
loopback): the OpenTelemetry Python SDK sends metrics to stella, stella remote-writes them, and PromQL on
Prometheus finds them under their translated names and labels; Prometheus also scrapes stella's /metrics.
Then an outage: Prometheus stopped, points keep coming, stella restarts, Prometheus comes back: every point
arrives."""
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import Stella, free_port

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed (scripts/test.sh installs it)")


class Prometheus:
    """A Prometheus server on loopback that accepts remote-write and scrapes `scrape_port`'s /metrics."""

    def __init__(self, scrape_port, port):
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="prometheus-interop-"))
        (self.dir / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: stella\n    static_configs: [{{targets: ['127.0.0.1:{scrape_port}']}}]\n")
        self.start()

    def start(self):
        self.log = open(self.dir / "prometheus.log", "ab")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.process.poll() is None, (self.dir / "prometheus.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("prometheus did not become ready")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)

    def query(self, promql):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def wait_for(self, promql, condition, what, timeout=60):
        deadline = time.time() + timeout
        result = None
        while time.time() < deadline:
            result = self.query(promql)
            if condition(result):
                return result
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}: {promql} -> {result}")


def remote_write_config(prometheus_port):
    return f"""exporters:
  prometheusremotewrite:
    endpoint: http://127.0.0.1:{prometheus_port}/api/v1/write
service:
  pipelines:
    metrics: {{receivers: [otlp], processors: [], exporters: [prometheusremotewrite]}}
    traces: null
    logs: null
"""


@contextlib.contextmanager
def stella_and_prometheus(config_for):
    """A stella with `config_for(prometheus_port)` and a Prometheus that receives its remote-write and
    scrapes it; both stopped at the end."""
    prometheus_port = free_port()
    stella = Stella(config_for(prometheus_port))
    prometheus = None
    try:
        prometheus = Prometheus(stella.api, prometheus_port)
        yield stella, prometheus
    finally:
        if prometheus is not None and prometheus.process.poll() is None:
            prometheus.stop()
        if stella.process.poll() is None:
            stella.process.kill()
            stella.process.wait()


@pytest.fixture
def pair():
    with stella_and_prometheus(remote_write_config) as both:
        yield both


def sdk_metrics(stella):
    """Counter, up-down counter and histogram from the OpenTelemetry SDK over OTLP/HTTP, flushed."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"http://127.0.0.1:{stella.http}/v1/metrics"), export_interval_millis=60_000)
    resource = Resource.create({"service.name": "checkout", "service.namespace": "shop",
                                "service.instance.id": "checkout-1", "deployment.environment": "interop"})
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("shop.checkout", "1.4.0")
    orders = meter.create_counter("orders.placed", unit="{order}")
    orders.add(5, {"payment.method": "card"})
    orders.add(2, {"payment.method": "voucher"})
    meter.create_up_down_counter("queue.depth", unit="{item}").add(7)
    latency = meter.create_histogram("http.server.duration", unit="ms")
    for value in (3, 30, 300):
        latency.record(value, {"http.route": "/cart"})
    provider.force_flush()
    provider.shutdown()


def value(result):
    return float(result[0]["value"][1]) if result else None


def test_sdk_metrics_reach_prometheus_with_translated_names_and_labels(pair):
    stella, prometheus = pair
    sdk_metrics(stella)
    job = '{job="shop/checkout"}'
    cards = prometheus.wait_for(f'orders_placed_total{{job="shop/checkout",payment_method="card"}}',
                                lambda result: value(result) == 5, "the counter")
    labels = cards[0]["metric"]
    assert labels["instance"] == "checkout-1", labels
    assert (labels["otel_scope_name"], labels["otel_scope_version"]) == ("shop.checkout", "1.4.0"), labels
    assert value(prometheus.query('orders_placed_total{payment_method="voucher"}')) == 2
    assert value(prometheus.query(f"queue_depth{job}")) == 7, "a non-monotonic sum is a gauge, no _total"
    buckets = {sample["metric"]["le"]: float(sample["value"][1])
               for sample in prometheus.query(f'http_server_duration_milliseconds_bucket{job}')}
    assert (buckets["5"], buckets["50"], buckets["250"], buckets["500"], buckets["+Inf"]) == (1, 2, 2, 3, 3), buckets
    assert value(prometheus.query(f"http_server_duration_milliseconds_count{job}")) == 3
    assert value(prometheus.query(f"http_server_duration_milliseconds_sum{job}")) == 333
    info = prometheus.query(f"target_info{job}")
    assert info and info[0]["metric"]["deployment_environment"] == "interop", info
    assert "service_name" not in info[0]["metric"], "service.name is the job, not a target_info label"
    # PromQL over the translated series works as over native ones.
    quantile = value(prometheus.query(f"histogram_quantile(0.5, sum by (le) (http_server_duration_milliseconds_bucket{job}))"))
    assert quantile is not None and 5 < quantile <= 50, quantile
    # Prometheus scrapes stella too: its own meta-metrics, under job "stella".
    prometheus.wait_for('up{job="stella"}', lambda result: value(result) == 1, "the scrape of /metrics")
    sent = prometheus.wait_for('collector_export_sent_items_total{job="stella",exporter="prometheusremotewrite"}',
                               lambda result: value(result) is not None and value(result) >= 8, "stella's export counter")
    assert sent
    stella.stop()


def post_gauge(stella, name, at_nanos, number):
    body = {"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "probe"}}]},
        "scopeMetrics": [{"metrics": [{"name": name, "gauge": {"dataPoints": [
            {"timeUnixNano": str(at_nanos), "asDouble": number}]}}]}]}]}
    request = urllib.request.Request(f"http://127.0.0.1:{stella.http}/v1/metrics", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_an_outage_and_a_restart_lose_no_point(pair):
    stella, prometheus = pair
    start = time.time_ns() - 60_000_000_000
    second = 1_000_000_000
    post_gauge(stella, "outage.probe", start, 0)
    prometheus.wait_for("outage_probe", lambda result: value(result) == 0, "the first point")
    prometheus.stop()
    for n in range(1, 21):
        post_gauge(stella, "outage.probe", start + n * second, n)
    # Acknowledged while Prometheus is down; stella restarts with them still undelivered.
    stella.stop()
    stella.start()
    for n in range(21, 31):
        post_gauge(stella, "outage.probe", start + n * second, n)
    prometheus.start()
    points = prometheus.wait_for("count_over_time(outage_probe[10m])", lambda result: value(result) == 31,
                                 "all 31 points", timeout=90)
    assert points
    total = value(prometheus.query("sum_over_time(outage_probe[10m])"))
    assert total == sum(range(31)), total
    stella.stop()
    log = stella.log_text()
    assert "refused the batch for good" not in log, log[-3000:]


def api_get(port, path, parameters, method="GET"):
    """A Prometheus-API answer (status, JSON) for `path` with `parameters` (a list of pairs), by GET query
    string or POST form body."""
    encoded = urllib.parse.urlencode(parameters)
    if method == "GET":
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}?{encoded}")
    else:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=encoded.encode(), method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def comparable(status, answer):
    """What must be the same whichever server answered: the status, and the data as a set where order
    is not part of the contract (series lists)."""
    if answer.get("status") != "success":
        return status, answer.get("status"), answer.get("errorType")
    data = answer["data"]
    if data and isinstance(data[0], dict):
        data = sorted(json.dumps(labels, sort_keys=True) for labels in data)
    return status, "success", data


def store_and_remote_write_config(prometheus_port):
    """The metrics pipeline into the store and, by remote-write, into Prometheus."""
    return remote_write_config(prometheus_port).replace(
        "exporters: [prometheusremotewrite]", "exporters: [store, prometheusremotewrite]").replace(
        "exporters:\n", "exporters:\n  store: {}\n", 1)


def test_the_store_answers_series_labels_and_values_as_prometheus_does():
    """One data set, two servers: stella keeps the SDK's metrics in its store and remote-writes them to a
    real Prometheus; the Prometheus API of each must answer series, label names and label values alike."""
    with stella_and_prometheus(store_and_remote_write_config) as (stella, prometheus):
        prometheus_port = prometheus.port
        sdk_metrics(stella)
        prometheus.wait_for('orders_placed_total{job="shop/checkout"}', lambda result: len(result) == 2, "the counter")
        job = '{job="shop/checkout"}'
        deadline = time.time() + 30
        while api_get(stella.api, "/api/v1/series", [("match[]", job)])[1].get("data") in (None, []):
            assert time.time() < deadline, stella.log_text()[-3000:]
            time.sleep(0.2)
        cases = [
            ("/api/v1/series", [("match[]", job)]),
            ("/api/v1/series", [("match[]", "http_server_duration_milliseconds_bucket"), ("match[]", "queue_depth")]),
            ("/api/v1/series", [("match[]", '{__name__=~"orders_.*", payment_method!="card"}')]),
            ("/api/v1/series", [("match[]", job), ("start", "2000-01-01T00:00:00Z"), ("end", "2000-01-02T00:00:00Z")]),
            ("/api/v1/labels", [("match[]", job)]),
            ("/api/v1/label/le/values", [("match[]", "http_server_duration_milliseconds_bucket")]),
            ("/api/v1/label/__name__/values", [("match[]", job)]),
            ("/api/v1/label/payment_method/values", [("match[]", job)]),
            ("/api/v1/series", []),
            ("/api/v1/series", [("match[]", '{job=~".*"}')]),
            ("/api/v1/series", [("match[]", "rate(up[5m])")]),
            ("/api/v1/series", [("match[]", job), ("start", "yesterday")]),
            ("/api/v1/format_query", [("query", "sum(rate(http_requests_total{job=~\"api|web\"}[5m])) by (job) > 0.5")]),
            ("/api/v1/format_query", [("query", "histogram_quantile(0.9, sum without (instance) (rate(x_bucket[1m] offset 5m)))")]),
            ("/api/v1/format_query", [("query", "foo * on (a) group_left (b) bar or baz unless ignoring (c) qux")]),
            ("/api/v1/format_query", [("query", "foo and on (a) bar unless ignoring (b) group_left qux")]),
            ("/api/v1/format_query", [("query", "sum(foo"), ]),
            ("/api/v1/format_query", []),
        ]
        for path, parameters in cases:
            for method in ("GET", "POST") if not path.startswith("/api/v1/label/") else ("GET",):
                ours = comparable(*api_get(stella.api, path, parameters, method))
                theirs = comparable(*api_get(prometheus_port, path, parameters, method))
                assert ours == theirs, f"{method} {path} {parameters}:\n stella     {ours}\n prometheus {theirs}"
        # `limit` (Prometheus 2.54 and later; Debian's Prometheus ignores it): the first names, and a warning.
        everything = api_get(stella.api, "/api/v1/labels", [("match[]", job)])[1]["data"]
        status, limited = api_get(stella.api, "/api/v1/labels", [("match[]", job), ("limit", "2")])
        assert status == 200 and limited["data"] == everything[:2], limited
        assert limited["warnings"] == ["results truncated due to limit"], limited
        status, answer = api_get(stella.api, "/api/v1/status/buildinfo", [])
        assert status == 200 and answer["data"]["version"], answer
        stella.stop()
