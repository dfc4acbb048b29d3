"""Grafana's Loki data source on the embedded store: logs sent by the OpenTelemetry Python SDK and as
OTLP/JSON are read back with LogQL through Loki's query API. The same `stella` also pushes them with its
`loki` exporter to a stand-in Loki whose requests are decoded independently (loki_decode.py): every stream
the exporter pushed is found by our API under exactly the same labels, lines, times and metadata, so a
query written for a Loki fed by `stella` works on `stella` unchanged."""
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import Stella
from loki_decode import LokiReceiver, compile_schema
from test_loki import post_logs, sdk_logs, wait_entries, wait_until

SECOND = 1_000_000_000


def get(stella, path, params=(), headers=None):
    url = f"http://127.0.0.1:{stella.api}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    push_pb2 = compile_schema(tmp_path_factory.mktemp("loki-schema"))
    receiver = LokiReceiver()
    stella = Stella(f"""exporters:
  store: {{}}
  loki: {{endpoint: {receiver.url}}}
service:
  pipelines:
    logs: {{receivers: [otlp], processors: [], exporters: [store, loki]}}
    traces: null
    metrics: null
""")
    base = (time.time_ns() // SECOND - 600) * SECOND
    trace_id = sdk_logs(stella)
    cart = [{"timeUnixNano": str(base + index * SECOND), "severityNumber": 17 if index % 3 == 0 else 9,
             "body": {"stringValue": f"status={500 if index % 3 == 0 else 200} took={index}00ms path=/checkout"},
             "attributes": [{"key": "http.route", "value": {"stringValue": "/checkout"}}]}
            for index in range(1, 11)]
    post_logs(stella, cart, resource=[{"key": "service.name", "value": {"stringValue": "cart"}},
                                      {"key": "deployment.environment", "value": {"stringValue": "interop"}}])
    db = [{"timeUnixNano": str(base + index * SECOND), "severityNumber": 9,
           "body": {"stringValue": json.dumps({"query": "select", "rows": index, "user": {"name": "ann"}})}}
          for index in range(1, 6)]
    post_logs(stella, db, resource=[{"key": "service.name", "value": {"stringValue": "db"}}])
    pushed = wait_entries(receiver, push_pb2, 2 + 10 + 5)
    wait_until(lambda: len(lines(stella, '{service_name=~".+"}', limit=100)) == 17, "all 17 lines in the store")
    yield stella, pushed, base, trace_id
    stella.stop()
    receiver.close()


def query_range(stella, query, headers=None, **params):
    params.setdefault("start", str(time.time_ns() - 3600 * SECOND))
    params.setdefault("end", str(time.time_ns()))
    status, body = get(stella, "/loki/api/v1/query_range", [("query", query), *params.items()], headers)
    assert status == 200, f"{query}: {status} {body}"
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]


def lines(stella, query, **params):
    data = query_range(stella, query, **params)
    assert data["resultType"] == "streams", data
    found = [(int(value[0]), value[1]) for stream in data["result"] for value in stream["values"]]
    # Streams come one after the other, each in the query's direction.
    return sorted(found, reverse=params.get("direction") != "forward")


def test_every_stream_the_loki_exporter_pushed_is_found_under_the_same_labels(sent):
    stella, pushed, _, _ = sent
    for stream in pushed:
        selector = "{" + ", ".join(f'{name}="{value}"' for name, value in stream["label_map"].items()) + "}"
        categorized = query_range(stella, selector, {"X-Loki-Response-Encoding-Flags": "categorize-labels"},
                                  direction="forward", limit=1000)
        assert categorized["encodingFlags"] == ["categorize-labels"], categorized
        [found] = categorized["result"]
        assert found["stream"] == stream["label_map"], (found["stream"], stream["labels"])
        got = [(int(at), line, extra.get("structuredMetadata", {})) for at, line, extra in found["values"]]
        want = [(entry["ts_ns"], entry["line"], entry["metadata"]) for entry in stream["entries"]]
        assert got == want, selector
        # Without the flag, metadata is folded into the stream labels, one stream per full label set.
        plain = query_range(stella, selector, direction="forward", limit=1000)
        assert "encodingFlags" not in plain
        for found in plain["result"]:
            assert all(len(value) == 2 for value in found["values"]), found
            assert {k: v for k, v in found["stream"].items() if k in stream["label_map"]} == stream["label_map"]


def test_logql_selects_filters_parses_and_orders_lines(sent):
    stella, _, base, trace_id = sent
    seconds = lambda found: [(at - base) // SECOND for at, _ in found]
    assert seconds(lines(stella, '{service_name="cart"}', limit=3)) == [10, 9, 8]
    assert seconds(lines(stella, '{service_name="cart"}', limit=3, direction="forward")) == [1, 2, 3]
    assert seconds(lines(stella, '{service_name="cart", severity="error"}', direction="forward")) == [3, 6, 9]
    assert seconds(lines(stella, '{service_name=~"cart|db"} |= "status=500"', direction="forward")) == [3, 6, 9]
    assert seconds(lines(stella, '{service_name="cart"} != "status=200" |~ "took=[0-9]+ms"', direction="forward")) == [3, 6, 9]
    assert seconds(lines(stella, '{service_name="cart"} | logfmt | took >= 800ms and status == 200', direction="forward")) == [8, 10]
    assert seconds(lines(stella, '{service_name="db"} | json | rows > 3 and user_name="ann"', direction="forward")) == [4, 5]
    assert seconds(lines(stella, '{service_name="cart"} | http_route="/checkout" | severity=~"err.*"', direction="forward")) == [3, 6, 9]
    formatted = lines(stella, '{service_name="cart"} | logfmt | status="500" | line_format "{{.status}} in {{ .took }}"', direction="forward")
    assert [line for _, line in formatted] == ["500 in 300ms", "500 in 600ms", "500 in 900ms"], formatted
    found = lines(stella, f'{{service_name="checkout"}} | trace_id="{trace_id}"')
    assert [line for _, line in found] == ["payment declined"]
    assert lines(stella, '{service_name="cart"}', start=str(base + 2 * SECOND), end=str(base + 4 * SECOND), direction="forward") == \
        [(base + 2 * SECOND, "status=200 took=200ms path=/checkout"), (base + 3 * SECOND, "status=500 took=300ms path=/checkout")], \
        "start inclusive, end exclusive"
    rfc3339 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((base + 9 * SECOND) // SECOND))
    assert seconds(lines(stella, '{service_name="cart"}', start=rfc3339, direction="forward")) == [9, 10]
    # Parsed labels are a category of their own.
    data = query_range(stella, '{service_name="db"} | json | rows="1"', {"X-Loki-Response-Encoding-Flags": "categorize-labels"})
    [[_, _, categories]] = data["result"][0]["values"]
    assert categories["parsed"] == {"query": "select", "rows": "1", "user_name": "ann"}, categories


def matrix(stella, query, **params):
    data = query_range(stella, query, **params)
    assert data["resultType"] == "matrix", data
    return {json.dumps(series["metric"], sort_keys=True): [(float(at), value) for at, value in series["values"]]
            for series in data["result"]}


def test_metric_queries_count_lines_per_step_and_aggregate(sent):
    stella, _, base, _ = sent
    at = lambda second: (base + second * SECOND) / SECOND
    window = {"start": str(base + 5 * SECOND), "end": str(base + 10 * SECOND), "step": "5000ms"}
    counted = matrix(stella, 'sum by (severity) (count_over_time({service_name="cart"}[5s]))', **window)
    assert counted == {'{"severity": "error"}': [(at(5), "1"), (at(10), "2")],
                       '{"severity": "info"}': [(at(5), "4"), (at(10), "3")]}, counted
    assert matrix(stella, 'sum(rate({service_name="cart"}[5s]))', **window) == {"{}": [(at(5), "1"), (at(10), "1")]}
    slowest = matrix(stella, 'max(max_over_time({service_name="cart"} | logfmt | unwrap duration(took) [10s]))', **window)
    assert slowest == {"{}": [(at(5), "0.5"), (at(10), "1")]}, slowest
    # At 10 s, cart has 10 lines in the window and db 5 (at 5 s they tie: either may be the top one).
    top = matrix(stella, 'topk(1, sum by (service_name) (count_over_time({service_name=~"cart|db"}[10s])))',
                 start=str(base + 10 * SECOND), end=str(base + 10 * SECOND), step="5000ms")
    assert list(top) == ['{"service_name": "cart"}'], top
    # Grafana's log volume query, as Explore sends it.
    volume = matrix(stella, 'sum by (level, detected_level) (count_over_time({service_name="cart"} | drop __error__[1s]))',
                    start=str(base), end=str(base + 10 * SECOND), step="1000ms")
    assert sum(int(value) for points in volume.values() for _, value in points) == 10, volume


def test_grafana_s_health_check_and_instant_queries(sent):
    stella, _, base, _ = sent
    status, body = get(stella, "/loki/api/v1/query", [("query", "vector(1)+vector(1)"), ("direction", "backward"), ("time", "4000000000")])
    assert status == 200, body
    # Ten digits or fewer are seconds, as Loki reads them; Grafana checks for one value, 2.
    assert json.loads(body) == {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [4000000000, "2"]}], "stats": {}}}
    status, body = get(stella, "/loki/api/v1/query", [("query", 'count_over_time({service_name="cart"}[1h])'), ("time", str(base + 20 * SECOND))])
    result = json.loads(body)["data"]["result"]
    assert sum(int(sample["value"][1]) for sample in result) == 10, body


def test_label_discovery_series_and_stats(sent):
    stella, _, base, _ = sent
    status, body = get(stella, "/loki/api/v1/labels")
    assert json.loads(body)["data"] == ["deployment_environment", "service_name", "severity"], body
    status, body = get(stella, "/loki/api/v1/label/service_name/values")
    assert json.loads(body)["data"] == ["cart", "checkout", "db"], body
    status, body = get(stella, "/loki/api/v1/label/severity/values", [("query", '{service_name="cart"}')])
    assert json.loads(body)["data"] == ["error", "info"], body
    status, body = get(stella, "/loki/api/v1/series", [("match[]", '{service_name="cart"}')])
    assert {json.dumps(series, sort_keys=True) for series in json.loads(body)["data"]} == {
        json.dumps({"deployment_environment": "interop", "service_name": "cart", "severity": severity}, sort_keys=True)
        for severity in ("error", "info")}, body
    status, body = get(stella, "/loki/api/v1/index/stats", [("query", '{service_name="cart"}')])
    stats = json.loads(body)
    assert (stats["streams"], stats["entries"]) == (2, 10), stats
    assert stats["bytes"] == sum(len(f"status={500 if i % 3 == 0 else 200} took={i}00ms path=/checkout") for i in range(1, 11))
    status, body = get(stella, "/loki/api/v1/status/buildinfo")
    assert json.loads(body)["version"].startswith("3."), body


@pytest.mark.parametrize("path,params,expected", [
    ("/loki/api/v1/query_range", [("query", '{service_name="cart"'), ], "parse error at line 1, col 21"),
    ("/loki/api/v1/query_range", [("query", '{service_name=~".*"}')], "at least one regexp or equality matcher"),
    ("/loki/api/v1/query_range", [("query", '{service_name="cart"} | label_format x=y')], "is not supported; supported:"),
    ("/loki/api/v1/query_range", [("query", '{service_name="cart"} | line_format "{{ .x | upper }}"')], "only {{.label}} substitutions"),
    ("/loki/api/v1/query_range", [("query", 'count_over_time({service_name="cart"} | json [1h])')], "pipeline error: 'JSONParserErr'"),
    ("/loki/api/v1/query_range", [("query", '{service_name="cart"}'), ("limit", "5001")], "max entries limit per query exceeded"),
    ("/loki/api/v1/query_range", [("query", '{service_name="cart"}'), ("start", "yesterday")], "invalid start"),
    ("/loki/api/v1/query", [("query", '{service_name="cart"}')], "log queries are not supported as an instant query"),
])
def test_bad_queries_are_refused_in_plain_text_with_what_to_fix(sent, path, params, expected):
    stella, _, _, _ = sent
    status, body = get(stella, path, params)
    assert status == 400, body
    assert expected in body, body
