"""`loki` exporter: no Loki server runs here, so what stella pushes is decoded by an independent
implementation (tests/interop/loki_decode.py: the upstream push.proto compiled by Debian's protoc, Google's
Python protobuf runtime, cramjam for snappy) and checked: stream labels, structured metadata, timestamps,
line; JSON as well; 429 retried until taken, 400 dropped and counted."""
import json
import time
import urllib.request

import pytest

from conftest import Stella
from loki_decode import LokiReceiver, compile_schema, decode


@pytest.fixture(scope="module")
def push_pb2(tmp_path_factory):
    return compile_schema(tmp_path_factory.mktemp("loki-schema"))


def loki_config(url, extra=""):
    return f"""exporters:
  loki:
    endpoint: {url}
    headers: {{X-Scope-OrgID: acme}}
{extra}service:
  pipelines:
    logs: {{receivers: [otlp], processors: [], exporters: [loki]}}
    traces: null
    metrics: null
"""


def post_logs(stella, records, resource=None):
    """OTLP/HTTP JSON logs: `records` are OTLP JSON log records."""
    attributes = resource or [{"key": "service.name", "value": {"stringValue": "checkout"}},
                              {"key": "deployment.environment", "value": {"stringValue": "interop"}},
                              {"key": "host.name", "value": {"stringValue": "node-1"}}]
    body = {"resourceLogs": [{"resource": {"attributes": attributes}, "scopeLogs": [{"logRecords": records}]}]}
    request = urllib.request.Request(f"http://127.0.0.1:{stella.http}/v1/logs", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def streams_of(receiver, push_pb2):
    """Every stream of every accepted request, decoded."""
    found = []
    for (headers, body), status in zip(receiver.requests, receiver.responses):
        if status == 204:
            found.extend(decode(headers, body, push_pb2))
    return found


def wait_entries(receiver, push_pb2, count, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        streams = streams_of(receiver, push_pb2)
        if sum(len(stream["entries"]) for stream in streams) >= count:
            return streams
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} entries arrived: {streams_of(receiver, push_pb2)}")


def wait_until(condition, what, timeout=20):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def sdk_logs(stella):
    """Two records from the OpenTelemetry Python SDK (logging bridge), one inside a span."""
    import logging
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create({"service.name": "checkout", "deployment.environment": "interop"})
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"http://127.0.0.1:{stella.http}/v1/logs")))
    logger = logging.getLogger("interop.loki")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    tracer = TracerProvider(resource=resource).get_tracer("interop")
    with tracer.start_as_current_span("pay") as span:
        logger.error("payment declined", extra={"order.id": "7"})
        trace_id = format(span.get_span_context().trace_id, "032x")
    logger.info("order placed")
    provider.force_flush()
    logger.removeHandler(handler)
    provider.shutdown()
    return trace_id


def test_sdk_logs_arrive_as_loki_streams_with_labels_metadata_and_nanosecond_times(push_pb2):
    with LokiReceiver() as receiver:
        stella = Stella(loki_config(receiver.url))
        try:
            before = time.time_ns()
            trace_id = sdk_logs(stella)
            exact = 1_795_910_400_123_456_789
            post_logs(stella, [{"timeUnixNano": str(exact), "severityNumber": 13, "body": {"stringValue": "slow"},
                                "attributes": [{"key": "k8s.pod.name", "value": {"stringValue": "cart-1"}}]}])
            streams = wait_entries(receiver, push_pb2, 3)
            headers = receiver.requests[0][0]
            assert headers.get("x-scope-orgid") == "acme", headers
            assert headers.get("content-type") == "application/x-protobuf", headers
            by_labels = {stream["labels"]: stream for stream in streams}
            error = by_labels['{deployment_environment="interop", service_name="checkout", severity="error"}']
            [declined] = error["entries"]
            assert declined["line"] == "payment declined"
            assert declined["metadata"]["order_id"] == "7", declined
            assert declined["metadata"]["trace_id"] == trace_id, declined
            assert len(declined["metadata"]["span_id"]) == 16
            assert "service_name" not in declined["metadata"], "stream labels are not repeated as metadata"
            assert before <= declined["ts_ns"] <= time.time_ns(), declined
            info = by_labels['{deployment_environment="interop", service_name="checkout", severity="info"}']
            assert [entry["line"] for entry in info["entries"]] == ["order placed"]
            warn = by_labels['{deployment_environment="interop", service_name="checkout", severity="warn"}']
            [slow] = warn["entries"]
            assert slow["ts_ns"] == exact, "nanoseconds, exactly as sent"
            assert slow["metadata"] == {"host_name": "node-1", "k8s_pod_name": "cart-1"}, slow
        finally:
            stella.stop()


def test_json_format_429_is_retried_and_400_is_dropped_and_counted(push_pb2):
    with LokiReceiver() as receiver:
        stella = Stella(loki_config(receiver.url, "    format: json\n"))
        try:
            receiver.fail_next(2, status=429, headers={"Retry-After": "1"})
            post_logs(stella, [{"timeUnixNano": "1795910400000000001", "severityNumber": 9,
                                "body": {"kvlistValue": {"values": [{"key": "user", "value": {"stringValue": "ann"}}]}}}])
            streams = wait_entries(receiver, push_pb2, 1)
            assert receiver.responses[:3] == [429, 429, 204], receiver.responses
            assert receiver.requests[-1][0].get("content-type") == "application/json"
            [stream] = streams
            assert stream["label_map"] == {"deployment_environment": "interop", "service_name": "checkout", "severity": "info"}
            assert stream["entries"][0]["ts_ns"] == 1795910400000000001
            assert json.loads(stream["entries"][0]["line"]) == {"user": "ann"}

            receiver.fail_next(1, status=400, body=b"entry too far behind")
            post_logs(stella, [{"timeUnixNano": "1795910400000000002", "body": {"stringValue": "refused"}}])
            # "after" goes in its own push: posted together, both records may share the refused push
            wait_until(lambda: 400 in receiver.responses, "the 400 answer")
            post_logs(stella, [{"timeUnixNano": "1795910400000000003", "body": {"stringValue": "after"}}])
            streams = wait_entries(receiver, push_pb2, 2)
            lines = [entry["line"] for stream in streams for entry in stream["entries"]]
            assert "refused" not in lines and "after" in lines, lines
            assert receiver.responses.count(400) == 1, "a 400 is never retried"
            with urllib.request.urlopen(f"http://127.0.0.1:{stella.api}/metrics", timeout=10) as response:
                metrics = response.read().decode()
            assert 'collector_export_failures_total{exporter="loki",reason="http_400"} 1' in metrics, metrics
        finally:
            stella.stop()
