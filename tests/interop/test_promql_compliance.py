"""The PromQL compliance suite's 539 expanded queries (tests/interop/data/promql-compliance-queries.txt) on the
store against a real Prometheus, compared as the compliance tester compares them: each a range query (form
POST, 10 minutes at a 10 s step), same result type (`matrix`), same series, timestamps exactly, values within
1e-5 relative (NaN equal to NaN); a should_fail query fails on both.

The data imitates the PromLabs demo service the suite is written for (three instances of job `demo`: CPU
counters, memory gauges by type, a growing disk, a batch job's last success time, request-duration
histograms, a metric present only in even minutes), sent over OTLP with names that our translation turns
into the demo's Prometheus names; stella keeps it and remote-writes it to Prometheus."""
import math
import random
import time
from pathlib import Path

import pytest

from test_prometheus import PROMETHEUS, api_get, stella_and_prometheus, store_and_remote_write_config
from test_promql import post

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed (scripts/test.sh installs it)")

QUERIES = Path(__file__).parent / "data" / "promql-compliance-queries.txt"
SCRAPE_SECONDS = 5
MINUTES = 25
BOUNDS = [0.0001 * 3 ** k for k in range(8)]
ENDPOINTS = [("GET", "/api/foo", "200"), ("POST", "/api/bar", "200"), ("GET", "/api/bar", "500"), ("GET", "/api/nonexistent", "404")]


def suite():
    """(query, should_fail) of every line of the suite's file."""
    cases = []
    for line in QUERIES.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        should_fail = line.startswith("FAIL\t")
        cases.append((line.split("\t", 1)[1] if should_fail else line, should_fail))
    return cases


def attributes(**pairs):
    return [{"key": key, "value": {"stringValue": value}} for key, value in pairs.items()]


def demo_request(at, index, instance, rng, state):
    """One scrape of one demo instance at unix second `at`, as an OTLP/JSON resource."""
    nanos = str(at * 1_000_000_000)
    start = str(state["start"] * 1_000_000_000)
    metrics = [{"name": "demo.num.cpus", "gauge": {"dataPoints": [{"timeUnixNano": nanos, "asDouble": 4}]}}]
    cpu = []
    for mode, rate in (("user", 1.2), ("system", 0.8), ("idle", 2.0)):
        key = (instance, "cpu", mode)
        state[key] = state.get(key, 0.0) + rate * SCRAPE_SECONDS * rng.uniform(0.8, 1.2)
        cpu.append({"startTimeUnixNano": start, "timeUnixNano": nanos, "asDouble": state[key], "attributes": attributes(mode=mode)})
    metrics.append({"name": "demo.cpu.usage", "unit": "s", "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": cpu}})
    memory = []
    for kind, base in (("used", 1.2e9), ("cached", 2.5e9), ("buffers", 1.65e8)):
        key = (instance, "memory", kind)
        state[key] = max(0.0, state.get(key, base) + rng.uniform(-2e7, 2e7))
        memory.append({"timeUnixNano": nanos, "asDouble": round(state[key]), "attributes": attributes(type=kind)})
    free = 8 * 2 ** 30 - sum(point["asDouble"] for point in memory)
    memory.append({"timeUnixNano": nanos, "asDouble": free, "attributes": attributes(type="free")})
    metrics.append({"name": "demo.memory.usage", "unit": "By", "gauge": {"dataPoints": memory}})
    disk = state.get((instance, "disk"), 1.0e11 + 1e10 * len(instance)) + 5e5 * SCRAPE_SECONDS
    if disk > 1.44e11:
        disk = 1.6e10
    state[(instance, "disk")] = disk
    metrics.append({"name": "demo.disk.usage", "unit": "By", "gauge": {"dataPoints": [{"timeUnixNano": nanos, "asDouble": disk}]}})
    if at % 60 == 0 and rng.random() > 0.25:
        state[(instance, "batch")] = float(at)
    last_success = state.setdefault((instance, "batch"), float(state["start"]))
    metrics.append({"name": "demo.batch.last.success.timestamp", "unit": "s",
                    "gauge": {"dataPoints": [{"timeUnixNano": nanos, "asDouble": last_success}]}})
    histograms = []
    for method, path, status in ENDPOINTS:
        key = (instance, method, path, status)
        counts, total = state.setdefault(key, ([0] * (len(BOUNDS) + 1), [0.0]))
        for _ in range(rng.randint(0, 12)):
            latency = rng.expovariate(1 / 0.05)
            counts[next((i for i, bound in enumerate(BOUNDS) if latency <= bound), len(BOUNDS))] += 1
            total[0] += latency
        histograms.append({"startTimeUnixNano": start, "timeUnixNano": nanos, "count": str(sum(counts)), "sum": total[0],
                           "bucketCounts": [str(count) for count in counts], "explicitBounds": BOUNDS,
                           "attributes": attributes(method=method, path=path, status=status)})
    metrics.append({"name": "demo.api.request.duration", "unit": "s", "histogram": {"aggregationTemporality": 2, "dataPoints": histograms}})
    even_minute = (at // 60) % 2 == 0
    if even_minute or state.get((instance, "intermittent")):
        point = {"timeUnixNano": nanos, "asDouble": 1} if even_minute else {"timeUnixNano": nanos, "flags": 1}
        metrics.append({"name": "demo.intermittent.metric", "gauge": {"dataPoints": [point]}})
    state[(instance, "intermittent")] = even_minute
    return {"resource": {"attributes": attributes(**{"service.name": "demo", "service.instance.id": instance})},
            "scopeMetrics": [{"metrics": metrics}]}


def close(ours, theirs):
    """The compliance tester's value comparison: relative 1e-5, NaN equal, infinities exact."""
    x, y = float(ours), float(theirs)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if x == y:
        return True
    if math.isinf(x) or math.isinf(y):
        return False
    return abs(x - y) <= 1e-5 * min(abs(x), abs(y))


def difference(ours, theirs):
    (status_a, a), (status_b, b) = ours, theirs
    if a.get("status") != "success" or b.get("status") != "success":
        if a.get("status") == b.get("status"):
            return None
        return f"stella {status_a} {a.get('error')!r}, prometheus {status_b} {b.get('error')!r}"
    if a["data"]["resultType"] != "matrix":
        return f"resultType {a['data']['resultType']}"
    key = lambda item: tuple(sorted(item["metric"].items()))
    series_a = {key(item): item["values"] for item in a["data"]["result"]}
    series_b = {key(item): item["values"] for item in b["data"]["result"]}
    if series_a.keys() != series_b.keys():
        return f"series differ: only stella {sorted(series_a.keys() - series_b.keys())[:3]}, only prometheus {sorted(series_b.keys() - series_a.keys())[:3]}"
    for metric, values in series_a.items():
        other = series_b[metric]
        if [point[0] for point in values] != [point[0] for point in other]:
            return f"{dict(metric)}: {len(values)} points vs {len(other)}"
        for (at, x), (_, y) in zip(values, other):
            if not close(x, y):
                return f"{dict(metric)} at {at}: {x} vs {y}"
    return None


def test_the_compliance_suite_queries_answer_as_prometheus_does():
    cases = suite()
    assert len(cases) == 539 and sum(fail for _, fail in cases) == 5
    with stella_and_prometheus(store_and_remote_write_config) as (stella, prometheus):
        rng = random.Random(539)
        last = (int(time.time()) // 60) * 60 - 60
        first = last - MINUTES * 60
        state = {"start": first - 3600}
        instances = [f"demo.promlabs.com:1000{n}" for n in range(3)]
        for index, at in enumerate(range(first, last + 1, SCRAPE_SECONDS)):
            post(stella, {"resourceMetrics": [demo_request(at, index, instance, rng, state) for instance in instances]})
        probe = [("query", "count(demo_num_cpus)"), ("time", str(last))]
        deadline = time.time() + 90
        while not all(answer.get("data", {}).get("result") and answer["data"]["result"][0]["value"][1] == "3"
                      for answer in (api_get(port, "/api/v1/query", probe)[1] for port in (stella.api, prometheus.port))):
            assert time.time() < deadline, f"the last scrape did not arrive in both\n{stella.log_text()[-3000:]}"
            time.sleep(0.5)
        end = last - 2 * 60 - 0.123
        window = [("start", str(end - 600)), ("end", str(end)), ("step", "10")]
        failures, passed = [], 0
        for query, should_fail in cases:
            ours = api_get(stella.api, "/api/v1/query_range", [("query", query)] + window, "POST")
            theirs = api_get(prometheus.port, "/api/v1/query_range", [("query", query)] + window, "POST")
            assert (theirs[1]["status"] != "success") == should_fail, f"the reference disagrees with the suite: {query}: {theirs}"
            problem = difference(ours, theirs)
            if problem is None and (ours[1]["status"] != "success") != should_fail:
                problem = "should have failed" if should_fail else f"failed: {ours[1].get('error')}"
            if problem:
                failures.append(f"{query}: {problem}")
            else:
                passed += 1
        print(f"PromQL compliance: {passed} of {len(cases)} queries give Prometheus's answer")
        assert not failures, f"{len(failures)} of {len(cases)} differ:\n" + "\n".join(failures[:50])
        stella.stop()
