"""PromQL on the store against a real Prometheus (Debian `prometheus`, the oracle): one data set of gauges,
counters (one resets), a histogram and a series that goes stale, sent over OTLP to stella, kept in its store
and remote-written to Prometheus. Every query is asked of both, as a range query (GET and form POST, as
Grafana sends it) and as an instant query; answers must agree: result type, series, timestamps exactly,
values to a relative 1e-6 (NaN equal to NaN), error types and status codes."""
import json
import math
import random
import time
import urllib.request

import pytest

from test_prometheus import PROMETHEUS, api_get, stella_and_prometheus, store_and_remote_write_config

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed (scripts/test.sh installs it)")

STEP_SECONDS = 15
POINTS = 100

QUERIES = [
    # selectors, offset, @, staleness
    "demo_memory", 'demo_memory{type="free"}', 'demo_memory{type!="free", instance=~"a|b"}',
    "demo_memory offset 1m", "demo_memory offset -2m", "demo_memory @ {at}", "demo_flappy",
    'nonexistent_metric', 'demo_requests_total{code=~"5.."}',
    # aggregations
    "sum(demo_memory)", "avg by(type) (demo_memory)", "max without(instance) (demo_memory)",
    "min by() (demo_memory)", "count by(nonexistent) (demo_memory)", "stddev(demo_memory)", "stdvar by(instance) (demo_memory)",
    "group by(type) (demo_memory)", "topk(2, demo_memory)", "bottomk by(instance) (1, demo_memory)",
    "quantile(0.75, demo_memory)", "quantile(1.5, demo_memory)", 'count_values("v", round(demo_memory / 100))',
    "avg(max by(type) (demo_memory))",
    # operators and matching
    "1 * 2 + 4 / 6 - 10 % 2 ^ 2", "-1 ^ 2", "demo_memory * 2 - 1", "2 ^ demo_memory / 1e300", "demo_memory % 7",
    "demo_memory > 500", "demo_memory > bool 500", "500 < demo_memory", "500 >= bool demo_memory",
    "-demo_memory", "time() - demo_memory", "demo_memory == on(instance, type) demo_memory",
    "demo_memory / on(instance) group_left sum by(instance) (demo_memory)",
    "sum by(instance) (demo_memory) / on(instance) group_right demo_memory",
    "demo_memory and on(type) demo_memory{instance=\"a\"}", "demo_memory unless demo_memory{type=\"free\"}",
    "demo_memory{type=\"free\"} or demo_memory{type=\"used\"} or demo_flappy",
    "demo_memory + on(instance) demo_memory",
    "demo_memory atan2 100",
    # counters and ranges
    "rate(demo_requests_total[1m])", "rate(demo_requests_total[5m])", "increase(demo_requests_total[2m])",
    "delta(demo_memory[2m])", "irate(demo_requests_total[1m])", "idelta(demo_memory[1m])",
    "resets(demo_requests_total[10m])", "changes(demo_memory[5m])", "deriv(demo_memory[3m])",
    "predict_linear(demo_memory[5m], 600)", "holt_winters(demo_memory[5m], 0.5, 0.5)",
    "avg_over_time(demo_memory[1m])", "sum_over_time(demo_memory[2m])", "min_over_time(demo_memory[5m])",
    "max_over_time(demo_memory[15s])", "count_over_time(demo_flappy[2m])", "stddev_over_time(demo_memory[5m])",
    "stdvar_over_time(demo_memory[5m])", "last_over_time(demo_memory[1m])", "present_over_time(demo_flappy[1m])",
    "quantile_over_time(0.9, demo_memory[5m])", "absent_over_time(demo_flappy[1m])", "absent_over_time(nonexistent[1m])",
    # histograms
    "histogram_quantile(0.9, rate(demo_latency_seconds_bucket[2m]))",
    "histogram_quantile(0.5, sum by(le) (rate(demo_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.9, demo_memory)",
    "rate(demo_latency_seconds_sum[5m]) / rate(demo_latency_seconds_count[5m])",
    # functions
    "abs(-demo_memory)", "ceil(demo_memory / 3)", "floor(demo_memory / 3)", "sqrt(demo_memory)", "ln(demo_memory)",
    "exp(demo_memory / 1000)", "log2(demo_memory)", "log10(demo_memory)", "round(demo_memory, 5)", "sgn(demo_memory - 500)",
    "clamp(demo_memory, 300, 600)", "clamp_min(demo_memory, 500)", "clamp_max(demo_memory, 500)",
    "timestamp(demo_memory)", "timestamp(demo_memory * 1)", "timestamp(demo_flappy)",
    'label_replace(demo_memory, "host", "host-$1", "instance", "(.*)")',
    'label_replace(demo_memory, "type", "", "type", "free")',
    'label_join(demo_memory, "both", "/", "instance", "type")',
    "absent(demo_memory)", 'absent(nonexistent{job="x", code=~"5.."})', "vector(1)", "vector(time())",
    "scalar(sum(demo_memory))", "scalar(demo_memory)", "sort(demo_memory)", "sort_desc(demo_memory)",
    "hour()", "minute(demo_memory * 0 + 1700000000)", "day_of_week()", "days_in_month(vector(1709214300))",
    "year()", "month()", "day_of_year(vector(1709214300))", "time()", "pi()",
    # subqueries
    "max_over_time(rate(demo_requests_total[1m])[5m:30s])",
    "avg_over_time(demo_memory[3m:45s] offset 1m)",
    "min_over_time((max(demo_memory) > 520)[2m:10s])", "rate(demo_requests_total[2m:15s] @ end())",
    # refused by both
    "sum(", 'label_replace(demo_memory, "x", "$1", "type", "(.*")', 'label_replace(demo_memory, "type", "", "", "")',
    "demo_memory + on() demo_memory", "topk(NaN, demo_memory)",
]

EMPTY_BY_DESIGN = ["nonexistent_metric", "absent(demo_memory)", "histogram_quantile(0.9, demo_memory)"]


def otlp_request(at_seconds, index, rng, state):
    """One OTLP/JSON metrics request for every series at `at_seconds`."""
    nanos = str(at_seconds * 1_000_000_000)
    resources = []
    for instance in ("a", "b"):
        metrics = []
        memory = []
        for kind in ("free", "used", "cached"):
            key = (instance, kind)
            state[key] = max(1.0, state.get(key, 500.0) + rng.uniform(-40, 40))
            memory.append({"timeUnixNano": nanos, "asDouble": round(state[key], 3),
                           "attributes": [{"key": "type", "value": {"stringValue": kind}}]})
        metrics.append({"name": "demo.memory", "description": "Memory by type", "gauge": {"dataPoints": memory}})
        requests = []
        for code in ("200", "500"):
            key = (instance, code, "total")
            start = state.setdefault((instance, code, "start"), state["t0"])
            if instance == "b" and code == "500" and index == 40:
                state[key] = 0.0
                start = state[(instance, code, "start")] = at_seconds - 1
            state[key] = state.get(key, 0.0) + rng.randint(0, 20)
            requests.append({"startTimeUnixNano": str(start * 1_000_000_000), "timeUnixNano": nanos,
                             "asDouble": state[key], "attributes": [{"key": "code", "value": {"stringValue": code}}]})
        metrics.append({"name": "demo.requests", "sum": {"aggregationTemporality": 2, "isMonotonic": True,
                                                           "dataPoints": requests}})
        buckets = state.setdefault((instance, "buckets"), [0, 0, 0, 0, 0])
        for _ in range(rng.randint(1, 10)):
            latency = rng.expovariate(4)
            slot = next((i for i, bound in enumerate((0.05, 0.1, 0.5, 1.0)) if latency <= bound), 4)
            buckets[slot] += 1
            state[(instance, "sum")] = state.get((instance, "sum"), 0.0) + latency
        metrics.append({"name": "demo.latency", "unit": "s", "histogram": {"aggregationTemporality": 2, "dataPoints": [{
            "startTimeUnixNano": str(state["t0"] * 1_000_000_000), "timeUnixNano": nanos, "count": str(sum(buckets)),
            "sum": state[(instance, "sum")], "bucketCounts": [str(count) for count in buckets],
            "explicitBounds": [0.05, 0.1, 0.5, 1.0]}]}})
        if instance == "a" and (index % 40 < 20 or index % 40 == 20):
            point = {"timeUnixNano": nanos, "asDouble": float(index)}
            if index % 40 == 20:
                point = {"timeUnixNano": nanos, "flags": 1}
            metrics.append({"name": "demo.flappy", "gauge": {"dataPoints": [point]}})
        resources.append({"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "demo"}},
            {"key": "service.instance.id", "value": {"stringValue": instance}}]},
            "scopeMetrics": [{"metrics": metrics}]})
    return {"resourceMetrics": resources}


def post(stella, body):
    request = urllib.request.Request(f"http://127.0.0.1:{stella.http}/v1/metrics", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def close(a, b):
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y) or x == y:
        return x == y
    return abs(x - y) <= 1e-6 * max(abs(x), abs(y))


def same(ours, theirs):
    """Whether two answers agree (see the module's doc); a difference is described."""
    (status_a, a), (status_b, b) = ours, theirs
    if status_a != status_b or a.get("status") != b.get("status"):
        return f"status {status_a} {a.get('status')} vs {status_b} {b.get('status')}: {a.get('error')} / {b.get('error')}"
    if a["status"] != "success":
        return None if a.get("errorType") == b.get("errorType") else f"errorType {a.get('errorType')} vs {b.get('errorType')}"
    kind_a, kind_b = a["data"]["resultType"], b["data"]["resultType"]
    if kind_a != kind_b:
        return f"resultType {kind_a} vs {kind_b}"
    result_a, result_b = a["data"]["result"], b["data"]["result"]
    if kind_a in ("scalar", "string"):
        ok = result_a[0] == result_b[0] and (result_a[1] == result_b[1] or close(result_a[1], result_b[1]))
        return None if ok else f"{result_a} vs {result_b}"
    key = lambda item: json.dumps(item["metric"], sort_keys=True)
    by_a, by_b = {key(item): item for item in result_a}, {key(item): item for item in result_b}
    if by_a.keys() != by_b.keys():
        return f"series {sorted(by_a)} vs {sorted(by_b)}"
    for metric, item in by_a.items():
        points_a = item.get("values") or [item["value"]]
        points_b = by_b[metric].get("values") or [by_b[metric]["value"]]
        if [p[0] for p in points_a] != [p[0] for p in points_b]:
            return f"{metric}: times {[p[0] for p in points_a]} vs {[p[0] for p in points_b]}"
        for (at, x), (_, y) in zip(points_a, points_b):
            if not close(x, y):
                return f"{metric} at {at}: {x} vs {y}"
    return None


def test_promql_on_the_store_answers_as_prometheus_does():
    with stella_and_prometheus(store_and_remote_write_config) as (stella, prometheus):
        rng = random.Random(20261207)
        t0 = (int(time.time()) // 60) * 60 - 30 * 60
        state = {"t0": t0 - 60}
        for index in range(POINTS):
            post(stella, otlp_request(t0 + index * STEP_SECONDS, index, rng, state))
        last = t0 + (POINTS - 1) * STEP_SECONDS
        probe = [("query", "count(demo_memory)"), ("time", str(last))]
        deadline = time.time() + 60
        while True:
            answers = [api_get(port, "/api/v1/query", probe)[1] for port in (stella.api, prometheus.port)]
            if all(answer["data"]["result"] and answer["data"]["result"][0]["value"][1] == "6" for answer in answers):
                break
            assert time.time() < deadline, f"the last point did not arrive in both: {answers}\n{stella.log_text()[-3000:]}"
            time.sleep(0.3)
        start, end = t0 + 10 * 60 + 7, last - 5
        differences, empty = [], []
        for template in QUERIES:
            query = template.replace("{at}", str(t0 + 12 * 60))
            asked = [
                ("GET", "/api/v1/query_range", [("query", query), ("start", str(start)), ("end", str(end)), ("step", "30")]),
                ("POST", "/api/v1/query_range", [("query", query), ("start", str(start)), ("end", str(end)), ("step", "45s")]),
                ("POST", "/api/v1/query", [("query", query), ("time", f"{t0 + 17 * 60 + 0.5}")]),
                ("GET", "/api/v1/query", [("query", query), ("time", str(last + 30))]),
            ]
            for method, path, parameters in asked:
                ours = api_get(stella.api, path, parameters, method)
                theirs = api_get(prometheus.port, path, parameters, method)
                difference = same(ours, theirs)
                if path.endswith("query_range") and method == "GET" and ours[1].get("status") == "success" \
                        and not ours[1]["data"]["result"]:
                    empty.append(query)
                if difference:
                    differences.append(f"{method} {path} {query!r}: {difference}")
        assert not differences, f"{len(differences)} answers differ:\n" + "\n".join(differences[:40])
        # Agreeing on nothing proves nothing: only these are empty by design.
        assert sorted(empty) == sorted(EMPTY_BY_DESIGN), empty
        refused = [query for query in QUERIES[-5:]
                   if api_get(stella.api, "/api/v1/query", [("query", query), ("time", str(last))])[1]["status"] == "error"]
        assert refused == QUERIES[-5:], refused
        # The answers Prometheus's own tools and Grafana depend on beyond the comparison.
        status, health = api_get(stella.api, "/api/v1/query", [("query", "1+1"), ("time", "4")], "POST")
        assert (status, health["data"]) == (200, {"resultType": "scalar", "result": [4, "2"]}), health
        status, matrix = api_get(stella.api, "/api/v1/query", [("query", "demo_memory{type=\"free\"}[1m]"), ("time", str(last))])
        assert status == 200 and matrix["data"]["resultType"] == "matrix" and len(matrix["data"]["result"]) == 2, matrix
        status, text = api_get(stella.api, "/api/v1/query", [("query", '"hello"'), ("time", "10")])
        assert (status, text["data"]) == (200, {"resultType": "string", "result": [10, "hello"]}), text
        for parameters, message in [
            ([("query", "demo_memory"), ("start", "10"), ("end", "5"), ("step", "1")], "end timestamp must not be before start time"),
            ([("query", "demo_memory"), ("start", "0"), ("end", "100000"), ("step", "1")], "exceeded maximum resolution"),
            ([("query", "demo_memory"), ("start", "0"), ("end", "1"), ("step", "0")], "zero or negative query resolution"),
            ([("query", "demo_memory[5m]"), ("start", "0"), ("end", "1"), ("step", "1")], "invalid expression type \"range vector\""),
        ]:
            status, answer = api_get(stella.api, "/api/v1/query_range", parameters)
            assert (status, answer["errorType"]) == (400, "bad_data") and message in answer["error"], answer
        # Metadata (Prometheus keeps none for remote-written series, so there is no oracle): the families as
        # the translation names them, with the type, help and unit they were sent with.
        status, metadata = api_get(stella.api, "/api/v1/metadata", [])
        assert status == 200, metadata
        assert metadata["data"]["demo_memory"] == [{"type": "gauge", "help": "Memory by type", "unit": ""}], metadata
        assert metadata["data"]["demo_requests_total"] == [{"type": "counter", "help": "", "unit": ""}], metadata
        assert metadata["data"]["demo_latency_seconds"] == [{"type": "histogram", "help": "", "unit": "seconds"}], metadata
        status, one = api_get(stella.api, "/api/v1/metadata", [("metric", "demo_memory"), ("limit", "5")])
        assert status == 200 and list(one["data"]) == ["demo_memory"], one
        assert api_get(stella.api, "/api/v1/metadata", [("limit", "x")])[0] == 400
        stella.stop()
