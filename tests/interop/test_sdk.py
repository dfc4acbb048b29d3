"""The official OpenTelemetry Python SDK exporters, over OTLP/gRPC and OTLP/HTTP, against the real
stella binary with only a batch processor: the file export holds exactly what was sent."""
import logging

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

PROTOCOLS = ["grpc", "http"]


def exporters(stella, protocol):
    if protocol == "grpc":
        endpoint = f"http://127.0.0.1:{stella.grpc}"
        return (GrpcSpanExporter(endpoint=endpoint, insecure=True),
                GrpcMetricExporter(endpoint=endpoint, insecure=True),
                GrpcLogExporter(endpoint=endpoint, insecure=True))
    base = f"http://127.0.0.1:{stella.http}"
    return (HttpSpanExporter(endpoint=f"{base}/v1/traces"),
            HttpMetricExporter(endpoint=f"{base}/v1/metrics"),
            HttpLogExporter(endpoint=f"{base}/v1/logs"))


def make_spans(protocol):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"sdk-{protocol}"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("interop")
    with tracer.start_as_current_span(f"parent-{protocol}", attributes={"http.route": "/checkout", "retries": 3}):
        for index in range(4):
            with tracer.start_as_current_span(f"child-{index}", attributes={"ratio": 0.5, "ok": True}):
                pass
    return memory.get_finished_spans()


def make_metrics(protocol):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": f"sdk-{protocol}"}))
    meter = provider.get_meter("interop")
    counter = meter.create_counter(f"orders_{protocol}")
    counter.add(5, {"region": "eu"})
    counter.add(7, {"region": "us"})
    histogram = meter.create_histogram(f"latency_{protocol}", unit="ms")
    for value in (1.5, 20.0, 300.0):
        histogram.record(value)
    return reader.get_metrics_data()


def make_logs(protocol):
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": f"sdk-{protocol}"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("interop")
    from opentelemetry._logs import LogRecord, SeverityNumber
    for index in range(3):
        logger.emit(LogRecord(body=f"log {protocol} {index}", severity_number=SeverityNumber.WARN,
                              attributes={"index": index}))
    return memory.get_finished_logs()


def exported_spans(stella):
    spans = {}
    for line in stella.export_lines("traces"):
        for resource_spans in line["resourceSpans"]:
            service = next(a["value"]["stringValue"] for a in resource_spans["resource"]["attributes"] if a["key"] == "service.name")
            for scope in resource_spans["scopeSpans"]:
                for span in scope["spans"]:
                    spans[(span["traceId"], span["spanId"])] = (service, span)
    return spans


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sdk_exports_of_every_signal_land_unchanged(stella, protocol):
    span_exporter, metric_exporter, log_exporter = exporters(stella, protocol)
    spans = make_spans(protocol)
    assert span_exporter.export(spans) == SpanExportResult.SUCCESS
    metrics = make_metrics(protocol)
    assert metric_exporter.export(metrics) == MetricExportResult.SUCCESS
    logs = make_logs(protocol)
    assert log_exporter.export(logs) == LogRecordExportResult.SUCCESS
    stella.stop()

    stored = exported_spans(stella)
    assert len(stored) == len(spans) == 5
    for span in spans:
        key = (format(span.context.trace_id, "032x"), format(span.context.span_id, "016x"))
        assert key in stored, f"span {span.name} missing"
        service, written = stored[key]
        assert service == f"sdk-{protocol}"
        assert written["name"] == span.name
        parent = format(span.parent.span_id, "016x") if span.parent else None
        assert written.get("parentSpanId") == parent
        attributes = {a["key"]: a["value"] for a in written.get("attributes", [])}
        for key_name, value in span.attributes.items():
            if isinstance(value, bool):
                assert attributes[key_name] == {"boolValue": value}
            elif isinstance(value, int):
                assert attributes[key_name] == {"intValue": str(value)}
            elif isinstance(value, float):
                assert attributes[key_name] == {"doubleValue": value}
            else:
                assert attributes[key_name] == {"stringValue": value}
        assert int(written["startTimeUnixNano"]) == span.start_time
        assert int(written["endTimeUnixNano"]) == span.end_time

    metric_lines = stella.export_lines("metrics")
    by_name = {}
    for line in metric_lines:
        for resource in line["resourceMetrics"]:
            for scope in resource["scopeMetrics"]:
                for metric in scope["metrics"]:
                    by_name[metric["name"]] = metric
    counter = by_name[f"orders_{protocol}"]["sum"]
    assert counter["isMonotonic"] is True
    values = sorted(int(point["asInt"]) for point in counter["dataPoints"])
    assert values == [5, 7]
    histogram = by_name[f"latency_{protocol}"]
    assert histogram["unit"] == "ms"
    point = histogram["histogram"]["dataPoints"][0]
    assert int(point["count"]) == 3 and point["sum"] == 321.5
    assert sum(int(c) for c in point["bucketCounts"]) == 3

    bodies = []
    for line in stella.export_lines("logs"):
        for resource in line["resourceLogs"]:
            for scope in resource["scopeLogs"]:
                for record in scope["logRecords"]:
                    bodies.append((record["body"]["stringValue"], record["severityNumber"],
                                   record["attributes"][0]["value"]["intValue"]))
    assert sorted(bodies) == [(f"log {protocol} {i}", 13, str(i)) for i in range(3)]
