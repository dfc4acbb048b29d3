"""PromQL range queries on the embedded store against a real Prometheus holding the same data.

    STELLA_BIN=target/release/stella .venv/bin/python bench/promql.py [--series 10000] [--hours 1] [--rounds 3]

Starts `stella` (metrics into its store and, by remote-write, into Debian's Prometheus, as the interop
tests do), sends a cumulative counter `bench_requests_total` of SERIES series (100 jobs, `id` 0..) with a
point every 15 s over HOURS hours and 5 minutes before them, oldest first, waits until both hold the last
point, then asks both `sum by (job) (rate(bench_requests_total[5m]))` over the HOURS hours at a 15 s step,
ROUNDS times (neither server caches answers; the first round is the cold one). Prints one JSON line per
server: wall times in ms, the series and points answered, and the server's peak RSS (VmHWM, reset before
its queries). Answers must agree (values to 1e-6 relative).
"""
import argparse
import contextlib
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "interop"))

from conftest import Stella, free_port  # noqa: E402
from test_prometheus import PROMETHEUS, stella_and_prometheus, store_and_remote_write_config  # noqa: E402

STEP = 15
JOBS = 100


def request_at(at, series, totals):
    """One OTLP/JSON metrics request holding every series' point at `at` (unix seconds)."""
    nanos = str(at * 1_000_000_000)
    per_job = series // JOBS
    resources = []
    for job in range(JOBS):
        points = []
        for index in range(per_job):
            key = job * per_job + index
            totals[key] += (key % 7) + 1
            points.append({"startTimeUnixNano": "1000000000", "timeUnixNano": nanos, "asDouble": totals[key],
                           "attributes": [{"key": "id", "value": {"stringValue": str(index)}}]})
        resources.append({
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": f"job-{job}"}}]},
            "scopeMetrics": [{"metrics": [{"name": "bench.requests", "sum": {
                "aggregationTemporality": 2, "isMonotonic": True, "dataPoints": points}}]}]})
    return {"resourceMetrics": resources}


def post(port, body):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/metrics", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200, response.status


def ask(port, query, start, end):
    parameters = urllib.parse.urlencode([("query", query), ("start", start), ("end", end), ("step", STEP)])
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query_range?{parameters}", timeout=600) as response:
        answer = json.loads(response.read())
    return (time.monotonic() - started) * 1000, answer


def peak_rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def agree(a, b):
    by = lambda answer: {json.dumps(s["metric"], sort_keys=True): s["values"] for s in answer["data"]["result"]}
    left, right = by(a), by(b)
    if left.keys() != right.keys():
        return False
    for key, values in left.items():
        other = right[key]
        if [t for t, _ in values] != [t for t, _ in other]:
            return False
        for (_, x), (_, y) in zip(values, other):
            x, y = float(x), float(y)
            if not (x == y or abs(x - y) <= 1e-6 * max(abs(x), abs(y)) or (math.isnan(x) and math.isnan(y))):
                return False
    return True


class Backfilled:
    """A Prometheus serving TSDB blocks that promtool made from OpenMetrics text."""

    def __init__(self, directory, port):
        self.port = port
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
            stdout=subprocess.DEVNULL, stderr=open(directory / "prometheus.log", "ab"))
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                assert time.time() < deadline and self.process.poll() is None, "prometheus did not start"
                time.sleep(0.5)


@contextlib.contextmanager
def backfilled(series, first, end):
    """A stella keeping metrics in its store only, and a Prometheus backfilled with the counter's samples
    from `first` to `end` (the values `request_at` sends: the k-th point of series `key` is
    (k + 1) * (key % 7 + 1))."""
    directory = Path(tempfile.mkdtemp(prefix="promql-bench-"))
    (directory / "prometheus.yml").write_text("global: {scrape_interval: 1h}\n")
    per_job = series // JOBS
    with open(directory / "samples.om", "w") as text:
        text.write("# TYPE bench_requests counter\n")
        for key in range(series):
            job, index = divmod(key, per_job)
            labels = f'{{id="{index}",job="job-{job}"}}'
            for step, at in enumerate(range(first, end + 1, STEP)):
                text.write(f"bench_requests_total{labels} {float((step + 1) * (key % 7 + 1))} {at}\n")
        text.write("# EOF\n")
    started = time.monotonic()
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(directory / "samples.om"),
                    str(directory / "data")], check=True)
    print(json.dumps({"backfill_s": round(time.monotonic() - started, 1)}), file=sys.stderr)
    stella = Stella("exporters:\n  store: {}\nservice:\n  pipelines:\n"
                    "    metrics: {receivers: [otlp], processors: [], exporters: [store]}\n"
                    "    traces: null\n    logs: null\n")
    prometheus = Backfilled(directory, free_port())
    try:
        yield stella, prometheus
    finally:
        for process in (stella.process, prometheus.process):
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--perf", help="record stella's queries with `perf record --call-graph dwarf` into this file")
    parser.add_argument("--backfill", action="store_true",
                        help="give Prometheus the data by `promtool tsdb create-blocks-from openmetrics` instead of "
                             "remote-write (which refuses samples older than its head allows: use it past ~1 h)")
    arguments = parser.parse_args()
    end = (int(time.time()) // STEP) * STEP
    start = end - int(arguments.hours * 3600)
    first = start - 5 * 60
    servers = backfilled(arguments.series, first, end) if arguments.backfill else stella_and_prometheus(
        store_and_remote_write_config)
    with servers as (stella, prometheus):
        totals = [0.0] * arguments.series
        loading = time.monotonic()
        for at in range(first, end + 1, STEP):
            post(stella.http, request_at(at, arguments.series, totals))
        print(json.dumps({"loaded_points": arguments.series * ((end - first) // STEP + 1),
                          "load_s": round(time.monotonic() - loading, 1)}), file=sys.stderr)
        # Every series' last point is in: the series whose latest sample is at `end`.
        last = f"count(timestamp(bench_requests_total) >= {end})"
        probe = urllib.parse.urlencode([("query", last), ("time", end)])
        deadline = time.time() + 1800
        while True:
            counts = []
            for port in (stella.api, prometheus.port):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?{probe}", timeout=600) as response:
                    result = json.loads(response.read())["data"]["result"]
                counts.append(result[0]["value"][1] if result else "0")
            if counts == [str(arguments.series)] * 2:
                break
            assert time.time() < deadline, f"the last point did not arrive in both: {counts}"
            time.sleep(2)
        query = "sum by (job) (rate(bench_requests_total[5m]))"
        answers = {}
        for name, port, process in (("stella", stella.api, stella.process), ("prometheus", prometheus.port,
                                                                                prometheus.process)):
            times, answer = [], None
            # Peak RSS from here on: the queries', not the loading's.
            Path(f"/proc/{process.pid}/clear_refs").write_text("5")
            recorder = None
            if arguments.perf and name == "stella":
                recorder = subprocess.Popen(["perf", "record", "-F", "299", "--call-graph", "dwarf", "-o", arguments.perf, "-p",
                                             str(process.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
            for _ in range(arguments.rounds):
                took, answer = ask(port, query, start, end)
                times.append(round(took))
            if recorder is not None:
                recorder.send_signal(signal.SIGINT)
                recorder.wait()
            answers[name] = answer
            result = answer["data"]["result"]
            print(json.dumps({"server": name, "series": arguments.series, "hours": arguments.hours, "ms": times,
                              "answered_series": len(result),
                              "answered_points": sum(len(series["values"]) for series in result),
                              "peak_rss_mib": peak_rss_mib(process.pid)}))
        print(json.dumps({"answers_agree": agree(answers["stella"], answers["prometheus"])}))


if __name__ == "__main__":
    main()
