"""Hostile clients: 1,000 idle connections held by another process, and bad gRPC input from a real
gRPC client. The server answers each precisely and keeps serving real SDK clients."""
import gzip
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def spans(name):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("hostile").start_as_current_span(name):
        pass
    return memory.get_finished_spans()


def test_a_thousand_idle_connections_do_not_stop_real_clients(stella):
    holder = subprocess.Popen([sys.executable, str(Path(__file__).with_name("hold_connections.py")), "1000",
                               str(stella.http), str(stella.grpc)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held 2000"
        grpc_exporter = GrpcSpanExporter(endpoint=f"http://127.0.0.1:{stella.grpc}", insecure=True)
        http_exporter = HttpSpanExporter(endpoint=f"http://127.0.0.1:{stella.http}/v1/traces")
        assert grpc_exporter.export(spans("while-held-grpc")) == SpanExportResult.SUCCESS
        assert http_exporter.export(spans("while-held-http")) == SpanExportResult.SUCCESS
        with urllib.request.urlopen(f"http://127.0.0.1:{stella.api}/readyz", timeout=5) as ready:
            assert ready.status == 200
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    stella.stop()
    names = [span["name"] for line in stella.export_lines("traces")
             for rs in line["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]
    assert sorted(names) == ["while-held-grpc", "while-held-http"]


def raw_export(channel, payload, compression=None):
    call = channel.unary_unary(EXPORT, request_serializer=lambda body: body, response_deserializer=lambda body: body)
    return call(payload, timeout=10, compression=compression)


def test_bad_grpc_input_gets_a_status_and_the_server_keeps_serving(stella):
    channel = grpc.insecure_channel(f"127.0.0.1:{stella.grpc}",
                                    options=[("grpc.max_send_message_length", 512 * 1024 * 1024)])
    good = ExportTraceServiceRequest()
    span = good.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes(range(1, 17)), bytes(range(1, 9)), "good"
    encoded = good.SerializeToString()

    try:
        raw_export(channel, encoded[:-3])
        raise AssertionError("truncated protobuf was accepted")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        assert error.details().startswith("invalid protobuf ExportTraceServiceRequest"), error.details()

    try:
        raw_export(channel, b"\x00" * (65 * 1024 * 1024))
        raise AssertionError("an oversized message was accepted")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error

    bomb_payload = encoded + b"\x00" * (80 * 1024 * 1024)
    try:
        raw_export(channel, bomb_payload, compression=grpc.Compression.Gzip)
        raise AssertionError("a message inflating past the cap was accepted")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    assert len(gzip.compress(bomb_payload)) < 1024 * 1024, "the bomb is small on the wire"

    bad_ids = ExportTraceServiceRequest()
    bad = bad_ids.resource_spans.add().scope_spans.add().spans.add()
    bad.trace_id, bad.span_id, bad.name = b"short", bytes(range(1, 9)), "bad"
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
    answer = ExportTraceServiceResponse.FromString(raw_export(channel, bad_ids.SerializeToString()))
    assert answer.partial_success.rejected_spans == 1
    assert "traceId must be 16 bytes" in answer.partial_success.error_message

    assert raw_export(channel, b"") == b""
    assert raw_export(channel, encoded) == b""
    channel.close()
    stella.stop()
    names = [span["name"] for line in stella.export_lines("traces")
             for rs in line["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]
    assert names == ["good"]
