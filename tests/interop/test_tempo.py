"""Grafana's Tempo data source on the embedded store: traces sent by the OpenTelemetry Python SDK are found
with TraceQL through Tempo's search API, and tag discovery lists their attributes and values. Every answer
is decoded with Tempo's own search messages (tests/interop/tempo/tempo_search.proto, compiled by Debian's
`protoc`) with unknown fields refused, as a strict protobuf-JSON decoder reads it."""
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from conftest import Stella

SCHEMA = Path(__file__).resolve().parent / "tempo" / "tempo_search.proto"
MS = 1_000_000


@pytest.fixture(scope="module")
def tempo_pb2(tmp_path_factory):
    protoc = shutil.which("protoc")
    if protoc is None:
        raise RuntimeError("protoc not found: install Debian's protobuf-compiler")
    out = tmp_path_factory.mktemp("tempo_pb2")
    subprocess.run([protoc, f"-I{SCHEMA.parent}", f"--python_out={out}", SCHEMA.name], cwd=SCHEMA.parent, check=True)
    sys.path.insert(0, str(out))
    import tempo_search_pb2
    return tempo_search_pb2


def get(stella, path, params=()):
    url = f"http://127.0.0.1:{stella.api}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def strict(message_type, text):
    """Decodes `text` as `message_type`, refusing unknown fields, and returns it as a dict again."""
    message = json_format.Parse(text, message_type(), ignore_unknown_fields=False)
    return json_format.MessageToDict(message)


@pytest.fixture(scope="module")
def sent():
    """Two traces through the SDK's OTLP/HTTP exporter: a checkout (frontend server span -> client call ->
    orders-db span that fails, plus a render span) lasting 300 ms, and a 1 ms health check."""
    stella = Stella("""exporters:
  store: {}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [], exporters: [store]}
    metrics: null
    logs: null
""")
    providers = []

    def tracer(service, **resource):
        provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{stella.http}/v1/traces")))
        providers.append(provider)
        return provider.get_tracer("interop")

    frontend = tracer("frontend", **{"deployment.environment": "prod"})
    database = tracer("orders-db")
    base = time.time_ns() - 60_000 * MS
    root = frontend.start_span("GET /checkout", kind=SpanKind.SERVER, start_time=base,
                               attributes={"http.method": "GET", "http.status_code": 500})
    call = frontend.start_span("call orders", kind=SpanKind.CLIENT, start_time=base + 10 * MS,
                               context=trace.set_span_in_context(root))
    query = database.start_span("SELECT orders", kind=SpanKind.CLIENT, start_time=base + 20 * MS,
                                context=trace.set_span_in_context(call), attributes={"db.system": "postgres"})
    query.set_status(Status(StatusCode.ERROR, "deadlock"))
    query.end(end_time=base + 280 * MS)
    call.end(end_time=base + 290 * MS)
    render = frontend.start_span("render", start_time=base + 290 * MS, context=trace.set_span_in_context(root))
    render.end(end_time=base + 299 * MS)
    root.end(end_time=base + 300 * MS)
    health = frontend.start_span("GET /health", kind=SpanKind.SERVER, start_time=base + 1000 * MS,
                                 attributes={"http.method": "GET", "http.status_code": 200})
    health.end(end_time=base + 1001 * MS)
    for provider in providers:
        provider.shutdown()
    ids = {"checkout": format(root.get_span_context().trace_id, "032x"),
           "health": format(health.get_span_context().trace_id, "032x"),
           "query_span": format(query.get_span_context().span_id, "016x"), "base": base}
    deadline = time.time() + 30
    while time.time() < deadline:
        status, body = get(stella, "/api/search", [("q", "{}")])
        if status == 200 and len(json.loads(body).get("traces", [])) == 2:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the two traces never became searchable: {status} {body}\n{stella.log_text()}")
    yield stella, ids
    stella.stop()


def search(stella, tempo_pb2, **params):
    status, body = get(stella, "/api/search", list(params.items()))
    assert status == 200, f"{params}: {status} {body}"
    return strict(tempo_pb2.SearchResponse, body).get("traces", [])


def names(found):
    return sorted(trace["rootTraceName"] for trace in found)


TRACEQL = [
    # (query, root names of the traces found, names of the spans matched in the checkout)
    ("{}", ["GET /checkout", "GET /health"], None),
    ("{ status = error }", ["GET /checkout"], ["SELECT orders"]),
    ('{ resource.service.name = "orders-db" && span.db.system =~ "post.*" }', ["GET /checkout"], ["SELECT orders"]),
    ("{ .http.status_code >= 500 }", ["GET /checkout"], ["GET /checkout"]),
    ('{ span.http.method = "GET" && duration > 100ms }', ["GET /checkout"], ["GET /checkout"]),
    ('{ span.http.method = "GET" }', ["GET /checkout", "GET /health"], None),
    ("{ kind = client }", ["GET /checkout"], ["SELECT orders", "call orders"]),
    ('{ rootServiceName = "frontend" && traceDuration < 10ms }', ["GET /health"], None),
    ('{ resource.deployment.environment = "prod" && !(name =~ "GET.*") }', ["GET /checkout"], ["call orders", "render"]),
    ("{ span.db.system != nil }", ["GET /checkout"], ["SELECT orders"]),
    ('{ .http.method = "POST" }', [], None),
    ('{ status = error } && { name = "render" }', ["GET /checkout"], ["SELECT orders", "render"]),
    ('{ status = error } || { name = "GET /health" }', ["GET /checkout", "GET /health"], None),
    ("{ kind = client } > { status = error }", ["GET /checkout"], ["SELECT orders"]),
    ("{ kind = server } > { status = error }", [], None),
    ("{ kind = server } >> { status = error }", ["GET /checkout"], ["SELECT orders"]),
    # Structural operators return the right-hand spans: here the ancestor, and the sibling.
    ("{ status = error } << { kind = server }", ["GET /checkout"], ["GET /checkout"]),
    ('{ name = "render" } ~ { name = "call orders" }', ["GET /checkout"], ["call orders"]),
    ("{ } | count() > 3", ["GET /checkout"], None),
    ('{ rootName = "GET /checkout" && statusMessage = "deadlock" }', ["GET /checkout"], ["SELECT orders"]),
]


@pytest.mark.parametrize("query,roots,matched", TRACEQL, ids=[query for query, _, _ in TRACEQL])
def test_traceql_finds_the_traces_and_spans_it_names(sent, tempo_pb2, query, roots, matched):
    stella, _ = sent
    found = search(stella, tempo_pb2, q=query, spss=10)
    assert names(found) == roots, found
    if matched is not None:
        checkout = next(trace for trace in found if trace["rootTraceName"] == "GET /checkout")
        spans = checkout["spanSets"][0]["spans"]
        assert sorted(span["name"] for span in spans) == matched, checkout
        assert checkout["spanSets"][0]["matched"] == len(matched)


def test_a_result_carries_what_grafana_shows(sent, tempo_pb2):
    stella, ids = sent
    [found] = search(stella, tempo_pb2, q="{ status = error } | select(span.db.system)")
    assert found["traceID"] == ids["checkout"].lstrip("0")
    assert (found["rootServiceName"], found["rootTraceName"]) == ("frontend", "GET /checkout")
    assert (int(found["startTimeUnixNano"]), found["durationMs"]) == (ids["base"], 300)
    [span] = found["spanSets"][0]["spans"]
    assert (span["spanID"], span["name"], span["durationNanos"]) == (ids["query_span"], "SELECT orders", str(260 * MS))
    assert {"key": "db.system", "value": {"stringValue": "postgres"}} in span["attributes"], span
    # The trace found is the one trace-by-id returns.
    status, body = get(stella, f"/api/traces/{found['traceID']}")
    assert status == 200 and "SELECT orders" in body


def test_search_parameters_narrow_as_tempo_documents(sent, tempo_pb2):
    stella, ids = sent
    assert names(search(stella, tempo_pb2, q="{}", minDuration="100ms")) == ["GET /checkout"]
    assert names(search(stella, tempo_pb2, q="{}", maxDuration="100ms")) == ["GET /health"]
    assert len(search(stella, tempo_pb2, q="{}", limit=1)) == 1
    [checkout] = search(stella, tempo_pb2, q="{}", minDuration="100ms", spss=2)
    assert (len(checkout["spanSets"][0]["spans"]), checkout["spanSets"][0]["matched"]) == (2, 4)
    seconds = ids["base"] // 1_000_000_000
    assert names(search(stella, tempo_pb2, q="{}", start=seconds - 3600, end=seconds - 60)) == []
    assert len(search(stella, tempo_pb2, q="{}", start=seconds - 10, end=seconds + 10)) == 2
    # The older form Grafana's search tab sent before TraceQL: logfmt tags.
    assert names(search(stella, tempo_pb2, tags='service.name=frontend name="GET /health"')) == ["GET /health"]
    assert names(search(stella, tempo_pb2, tags="db.system=postgres")) == ["GET /checkout"]


@pytest.mark.parametrize("query,column,what", [
    ("{ foo = 1 }", 3, "is not a known field"),
    ("{ span.a = 1 } | rate()", 18, "this pipeline stage is not supported; supported: spanset filters"),
    ('{ .a = "x }', 8, "unterminated string"),
])
def test_unsupported_or_broken_traceql_is_refused_with_its_position(sent, query, column, what):
    stella, _ = sent
    status, body = get(stella, "/api/search", [("q", query)])
    assert status == 400, body
    assert f"invalid TraceQL query: col {column}" in body and what in body, body


def test_bad_parameters_are_refused_with_what_to_fix(sent):
    stella, _ = sent
    for params, expected in [
        ([("q", "{}"), ("limit", "-1")], "invalid limit"),
        ([("q", "{}"), ("minDuration", "soon")], "invalid minDuration"),
        ([("q", "{}"), ("start", "yesterday")], "invalid start"),
        ([("q", "{}"), ("tags", "a=b")], "cannot be used together"),
    ]:
        status, body = get(stella, "/api/search", params)
        assert (status, expected in body) == (400, True), (params, status, body)


def test_tag_discovery_lists_names_by_scope_and_typed_values(sent, tempo_pb2):
    stella, _ = sent
    status, body = get(stella, "/api/v2/search/tags")
    assert status == 200, body
    scopes = {scope["name"]: set(scope["tags"]) for scope in strict(tempo_pb2.SearchTagsV2Response, body)["scopes"]}
    assert {"service.name", "deployment.environment"} <= scopes["resource"], scopes
    assert {"db.system", "http.method", "http.status_code"} <= scopes["span"], scopes
    assert {"name", "status", "duration", "kind", "rootServiceName"} <= scopes["intrinsic"], scopes
    status, body = get(stella, "/api/v2/search/tags", [("scope", "span")])
    assert [scope["name"] for scope in json.loads(body)["scopes"]] == ["span"]

    def values(tag, **params):
        status, body = get(stella, f"/api/v2/search/tag/{tag}/values", list(params.items()))
        assert status == 200, body
        return sorted((value["type"], value["value"]) for value in strict(tempo_pb2.SearchTagValuesV2Response, body).get("tagValues", []))

    assert values("span.db.system") == [("string", "postgres")]
    assert values("span.http.status_code") == [("int", "200"), ("int", "500")]
    assert values("resource.service.name") == [("string", "frontend"), ("string", "orders-db")]
    assert values("resource.service.name", q="{ status = error }") == [("string", "orders-db")]
    assert ("keyword", "error") in values("status")
    assert ("keyword", "client") in values("kind")
    assert ("string", "SELECT orders") in values("name")
    # The v1 forms: every scope's names; values as text.
    status, body = get(stella, "/api/search/tags")
    assert {"service.name", "db.system"} <= set(json.loads(body)["tagNames"]), body
    status, body = get(stella, "/api/search/tag/db.system/values")
    assert json.loads(body)["tagValues"] == ["postgres"], body


def test_grafana_s_version_and_connection_checks_answer(sent):
    stella, _ = sent
    status, body = get(stella, "/api/status/buildinfo")
    assert status == 200 and json.loads(body)["version"].startswith("2."), body
    status, body = get(stella, "/api/echo")
    assert (status, body.strip()) == (200, "echo")
