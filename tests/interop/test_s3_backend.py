"""`storage.backend: s3` against a real S3-compatible server on loopback: moto in server mode (PyPI
`moto[server]`, pinned in requirements.txt), checked with boto3 only. Sealed chunks and their manifests
land in the bucket named by their digests, local chunk files are evicted, a trace by id is read back
through S3 (a corrupted object is refused by its digest), and retention deletes the objects too."""
import datetime
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import STELLA, Stella, free_port

BUCKET = "stella-chunks"
PREFIX = "interop"
KEY_ID, SECRET = "stella-interop-key", "stella-interop-secret-value"
NANOS_PER_DAY = 86_400 * 1_000_000_000


def moto_server():
    """The `moto_server` of the interpreter running the tests (the project's venv), else from PATH."""
    beside = Path(sys.executable).parent / "moto_server"
    found = str(beside) if beside.is_file() else shutil.which("moto_server")
    if found is None:
        pytest.fail("moto_server is not installed: install the interop requirements (moto[server]) with "
                    "`pip install -r tests/interop/requirements.txt`; ./scripts/test.sh does it", pytrace=False)
    return found


@pytest.fixture
def s3(tmp_path):
    try:
        import boto3
    except ImportError:
        pytest.fail("boto3 is not installed: install the interop requirements (moto[server] brings it) with "
                    "`pip install -r tests/interop/requirements.txt`", pytrace=False)
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")
    process = subprocess.Popen([moto_server(), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                pytest.fail(f"moto_server did not start: {(tmp_path / 'moto.log').read_text()}", pytrace=False)
            time.sleep(0.1)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    process.terminate()
    process.wait(timeout=10)


def config(endpoint, retention):
    return f"""exporters:
  store:
    max_chunk_records: 1
    retention: {{default: {retention}}}
    sweep_interval: 1s
storage:
  backend:
    type: s3
    endpoint: {endpoint}
    bucket: {BUCKET}
    prefix: {PREFIX}
    access_key_id_env: STELLA_TEST_S3_KEY_ID
    secret_access_key_env: STELLA_TEST_S3_SECRET
    allow_http: true
    local_cache_bytes: 0
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [redaction], exporters: [store]}}
    metrics: null
    logs: null
"""


@pytest.fixture
def stella(s3, monkeypatch):
    monkeypatch.setenv("STELLA_TEST_S3_KEY_ID", KEY_ID)
    monkeypatch.setenv("STELLA_TEST_S3_SECRET", SECRET)
    server = Stella(config(s3[0], "30d"))
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def send_span(stella, trace_id, at):
    """One span of `trace_id` (hex) at `at` (unix nanos), as OTLP/HTTP JSON."""
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "s3-interop"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": "0102030405060708", "name": f"op-{trace_id[:4]}", "kind": 1,
            "startTimeUnixNano": str(at), "endTimeUnixNano": str(at + 1_000_000)}]}]}]}
    request = urllib.request.Request(f"http://127.0.0.1:{stella.http}/v1/traces", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def get(stella, path):
    """(status, JSON body) of a GET on the API."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{stella.api}{path}", timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def keys(client):
    """The keys under the prefix."""
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("Contents", []))


def objects(client):
    """Every object under the prefix: key -> bytes (while nothing deletes them)."""
    return {key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys(client)}


def local_chunks(stella):
    return sorted((stella.dir / "data" / "store").rglob("*.chunk"))


def wait_for(condition, what, stella, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; stella log:\n{stella.log_text()[-4000:]}")


def metric(stella, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{stella.api}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return None


def test_chunks_go_to_s3_are_evicted_read_back_by_digest_and_expire_there_too(stella, s3):
    _, client = s3
    # Three days old: kept by a 30-day retention, expired once it is cut to one day.
    at = time.time_ns() - 3 * NANOS_PER_DAY
    traces = [f"{n:02x}" * 16 for n in range(1, 7)]
    for n, trace in enumerate(traces):
        send_span(stella, trace, at + n * 1_000_000_000)

    # Each span seals a chunk (max_chunk_records: 1): six chunks and six manifests, local copies evicted.
    wait_for(lambda: len(keys(client)) == 12 and not local_chunks(stella), "uploads and evictions", stella)
    store = stella.dir / "data" / "store"
    stored = objects(client)
    for key, body in stored.items():
        relative = key.removeprefix(f"{PREFIX}/")
        assert relative.startswith("default/traces/"), key
        name = Path(relative).name
        if name.endswith(".chunk"):
            assert name == hashlib.sha256(body).hexdigest() + ".chunk", f"{key} is named by its digest"
        else:
            assert (store / relative).read_bytes() == body, f"{key}: the manifest, byte for byte as on disk"
            assert json.loads(body)["sha256"] + ".json" == name
    assert metric(stella, "telemetry_store_uploaded_chunks_total") == 6
    assert metric(stella, "telemetry_store_evicted_chunks_total") == 6

    # Read back through S3: the span of each trace, by id.
    for trace in traces:
        status, body = get(stella, f"/api/traces/{trace}")
        assert status == 200, body
        names = [span["name"] for batch in body["batches"] for scope in batch["scopeSpans"] for span in scope["spans"]]
        assert names == [f"op-{trace[:4]}"], body

    # Offline readers see the evicted chunks through the server's config: `store check` verifies them in
    # the bucket, `capture --data-dir` bundles them. Without the config they are reported unchecked.
    data, settings = stella.dir / "data", stella.dir / "stella.yaml"
    offline = [STELLA, "telemetry", "store", "check", "--data-dir", data, "--json"]
    report = json.loads(subprocess.run(offline + ["--config", settings], capture_output=True, check=True).stdout)
    assert (report["chunks_ok"], report["remote_ok"], report["remote_unchecked"]) == (6, 6, []), report
    blind = subprocess.run(offline, capture_output=True)
    assert blind.returncode == 0 and len(json.loads(blind.stdout)["remote_unchecked"]) == 6, blind
    bundle = stella.dir / "offline.tar.gz"
    instant = lambda nanos: datetime.datetime.fromtimestamp(nanos // 1_000_000_000, datetime.timezone.utc).isoformat()
    window = f"{instant(at - 1_000_000_000)}..{instant(at + 10_000_000_000)}"
    capture = [STELLA, "telemetry", "capture", "--window", window, "--out", bundle, "--data-dir", data,
               "--config", settings]
    subprocess.run(capture, capture_output=True, check=True)
    public_key = data / "keys" / "signing-key.pub.pem"
    verify = [STELLA, "telemetry", "verify", bundle, "--trusted-key", public_key, "--json"]
    shown = json.loads(subprocess.run(verify, capture_output=True, check=True).stdout)
    assert shown["manifest"]["totals"]["records"] == 6, shown

    # A corrupted object is refused by its digest, with a precise error; restored, it reads again.
    chunk_key = next(key for key in stored if key.endswith(".chunk"))
    client.put_object(Bucket=BUCKET, Key=chunk_key, Body=b"not the chunk")
    failures = [get(stella, f"/api/traces/{trace}") for trace in traces]
    assert any(status == 500 and body["code"] == "store.remote_damaged" for status, body in failures), failures
    client.put_object(Bucket=BUCKET, Key=chunk_key, Body=stored[chunk_key])
    assert all(get(stella, f"/api/traces/{trace}")[0] == 200 for trace in traces)

    # Retention cut to one day (a reload): the chunks expire, locally and in the bucket. Retention follows the
    # wall clock only up to a day past the newest record the store has (a stepped clock deletes nothing
    # newer), so a current span arrives first, and its chunk stays.
    fresh = "ff" * 16
    send_span(stella, fresh, time.time_ns())
    wait_for(lambda: len(keys(client)) == 14, "the current chunk in S3", stella)
    (stella.dir / "stella.yaml").write_text((stella.dir / "stella.yaml").read_text().replace("default: 30d", "default: 1d"))
    stella.process.send_signal(signal.SIGHUP)
    expired = lambda: len(keys(client)) == 2 and len(list(store.rglob("day.json"))) == 1
    wait_for(expired, "retention, locally and in S3", stella)
    assert get(stella, f"/api/traces/{fresh}")[0] == 200
    assert get(stella, f"/api/traces/{traces[0]}")[0] == 404
    stella.stop()
    log = stella.log_text()
    assert SECRET not in log, "the secret access key is never logged"
    assert '"event":"store.backend"' in log.replace(" ", ""), log[-2000:]


def test_sealed_egress_keeps_a_remote_bucket_inert_and_chunks_local(monkeypatch):
    monkeypatch.setenv("STELLA_TEST_S3_KEY_ID", KEY_ID)
    monkeypatch.setenv("STELLA_TEST_S3_SECRET", SECRET)
    body = config("https://s3.eu-west-1.amazonaws.com", "30d").replace("    allow_http: true\n", "")
    server = Stella("egress: {sealed: true}\n" + body)
    try:
        trace = "ab" * 16
        send_span(server, trace, time.time_ns())
        wait_for(lambda: local_chunks(server), "the chunk to be sealed", server)
        # The chunk file comes before its index and day manifest: wait for the trace to be findable.
        wait_for(lambda: get(server, f"/api/traces/{trace}")[0] == 200, "the trace to be queryable", server)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.api}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert 'telemetry_egress_blocked_total{component="storage.backend"} 1' in metrics, metrics
        server.stop()
        warnings = [json.loads(line) for line in server.log_text().splitlines() if "egress.sealed_blocked" in line]
        assert [(w["component"], w["reason"]) for w in warnings] == [("storage.backend", "sealed")], warnings
        assert local_chunks(server), "the chunk stays on local disk"
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
