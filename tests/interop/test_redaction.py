"""The official OpenTelemetry Python SDK sends secrets and personal data (as the shared bench's smoke
client does: an e-mail, a bearer JWT, a card number, a password in a URL) through the `default`
profile's pipelines (resource detection, redaction with the built-in `default` policy, batch, file):
none of it reaches any file under the data dir, while the service identity survives."""
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import Stella

EMAIL = "jane.doe@example.com"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJl"
CARD = "4111-1111-1111-1111"
PASSWORD = "hunter2hunter2"
SECRETS = [EMAIL, JWT, CARD, PASSWORD]


@pytest.fixture
def default_profile():
    # The default profile's processors, exporters and pipelines; tail sampling keeps everything, quickly.
    server = Stella("processors:\n  tail_sampling: {decision_wait: 200ms, policies: [{name: all, type: always_sample}]}\n")
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def test_sdk_secrets_never_reach_disk_under_the_default_profile(default_profile):
    resource = Resource.create({"service.name": "checkout", "service.namespace": "shop",
                                "deployment.environment.name": "production"})
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("interop")
    with tracer.start_as_current_span("checkout") as root:
        root.set_attribute("user.email", EMAIL)
        root.set_attribute("http.request.header.authorization", f"Bearer {JWT}")
        root.set_attribute("http.route", "/checkout")
        with tracer.start_as_current_span("charge") as child:
            child.set_attribute("payment.card_number", CARD)
            child.set_attribute("db.system", "postgresql")
            child.set_attribute("exception.message", f"connect postgres://app:{PASSWORD}@db/pay for {EMAIL}")
    span_exporter = GrpcSpanExporter(endpoint=f"http://127.0.0.1:{default_profile.grpc}", insecure=True)
    assert span_exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS

    logs = InMemoryLogRecordExporter()
    log_provider = LoggerProvider(resource=resource)
    log_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    from opentelemetry._logs import LogRecord, SeverityNumber
    log_provider.get_logger("interop").emit(LogRecord(
        body=f"login for {EMAIL} failed with card {CARD}", severity_number=SeverityNumber.WARN,
        attributes={"user.email": EMAIL}))
    log_exporter = HttpLogExporter(endpoint=f"http://127.0.0.1:{default_profile.http}/v1/logs")
    assert log_exporter.export(logs.get_finished_logs()) == LogRecordExportResult.SUCCESS
    default_profile.stop()

    files = [path for path in Path(default_profile.dir).rglob("*") if path.is_file() and path.name != "stella.yaml"]
    assert any(path.name == "traces.jsonl" for path in files), files
    for path in files:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} reached {path}"

    spans = {}
    for line in default_profile.export_lines("traces"):
        for resource_spans in line["resourceSpans"]:
            keys = {a["key"]: a["value"] for a in resource_spans["resource"]["attributes"]}
            assert keys["service.name"] == {"stringValue": "checkout"}
            assert keys["stella.redaction.profile"]["stringValue"].startswith("default@sha256:")
            for scope in resource_spans["scopeSpans"]:
                for span in scope["spans"]:
                    spans[span["name"]] = {a["key"]: a["value"] for a in span.get("attributes", [])}
    assert "user.email" not in spans["checkout"] and spans["checkout"]["http.route"] == {"stringValue": "/checkout"}
    assert spans["charge"]["exception.message"] == {"stringValue": "connect postgres://app:****@db/pay for ****"}
    records = [record for line in default_profile.export_lines("logs") for resource in line["resourceLogs"]
               for scope in resource["scopeLogs"] for record in scope["logRecords"]]
    assert [record["body"]["stringValue"] for record in records] == ["login for **** failed with card ****"]
