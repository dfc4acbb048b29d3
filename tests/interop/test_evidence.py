"""Our signed forensic bundles, checked with third-party tools only: Python's tarfile, hashlib and
json for the layout and digests, and securesystemslib's DSSE `Envelope.verify` for the signature
(tampered envelopes must fail). Spans come from the official OpenTelemetry SDK exporter."""
import hashlib
import io
import json
import subprocess
import tarfile
import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from conftest import STELLA, Stella

STORE_ONLY = """exporters:
  store: {max_chunk_records: 2}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [redaction], exporters: [store]}
    metrics: null
    logs: null
"""


@pytest.fixture
def server():
    stella = Stella(STORE_ONLY)
    yield stella
    if stella.process.poll() is None:
        stella.process.kill()
        stella.process.wait()


def send_spans(stella, requests):
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{stella.http}/v1/traces")
    for index in range(requests):
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "evidence"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        with provider.get_tracer("interop").start_as_current_span(f"request-{index}"):
            pass
        assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS


def capture(stella, out):
    result = subprocess.run(
        [str(STELLA), "telemetry", "capture", "--window", "1h", "--out", str(out),
         "--server", f"http://127.0.0.1:{stella.api}", "--json"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def members(path):
    with tarfile.open(path, "r:gz") as archive:
        return {member.name: archive.extractfile(member).read() for member in archive.getmembers()}


def test_bundles_verify_with_securesystemslib_and_tampering_fails(server, tmp_path):
    send_spans(server, 6)
    time.sleep(0.5)
    answer = capture(server, tmp_path / "bundle.tar.gz")
    files = members(tmp_path / "bundle.tar.gz")
    assert sorted(files) == ["manifest.dsse.json", "manifest.json", "otlp/traces.pb"]

    # The envelope, with securesystemslib and the server's public key.
    public_pem = (server.dir / "data" / "keys" / "signing-key.pub.pem").read_bytes()
    public = load_pem_public_key(public_pem)
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    keyid = hashlib.sha256(raw).hexdigest()
    assert keyid == answer["signer"], "keyid = hex sha256 of the raw public key"
    key = SSlibKey.from_crypto(public, keyid=keyid, scheme="ed25519")
    envelope = Envelope.from_dict(json.loads(files["manifest.dsse.json"]))
    assert envelope.payload_type == "application/vnd.stellaops.telemetry.bundle.manifest+json"
    assert keyid in envelope.verify([key], 1)
    assert envelope.payload == files["manifest.json"], "the signed payload is manifest.json byte for byte"

    # The manifest's digests, with hashlib.
    manifest = json.loads(files["manifest.json"])
    assert manifest["signals"] == ["traces"] and manifest["tenant"] == "default"
    (entry,) = manifest["files"]
    assert entry["path"] == "otlp/traces.pb" and entry["records"] == 6 and entry["items"] == 6
    assert hashlib.sha256(files["otlp/traces.pb"]).hexdigest() == entry["sha256"]
    assert len(files["otlp/traces.pb"]) == entry["size"]
    assert json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode() == files["manifest.json"], \
        "manifest.json is canonical (RFC 8785; plain ASCII here)"

    # Tampering: a changed payload or a changed signature no longer verifies.
    forged = Envelope.from_dict(json.loads(files["manifest.dsse.json"]))
    forged.payload = forged.payload.replace(b'"tenant":"default"', b'"tenant":"mallory"')
    with pytest.raises(VerificationError):
        forged.verify([key], 1)
    resigned = json.loads(files["manifest.dsse.json"])
    signature = bytearray(resigned["signatures"][0]["sig"].encode())
    signature[5] = ord("A") if signature[5] != ord("A") else ord("B")
    resigned["signatures"][0]["sig"] = signature.decode()
    with pytest.raises(VerificationError):
        Envelope.from_dict(resigned).verify([key], 1)


def test_a_tampered_bundle_fails_our_verifier_with_the_digest_code(server, tmp_path):
    send_spans(server, 4)
    time.sleep(0.5)
    capture(server, tmp_path / "bundle.tar.gz")
    files = members(tmp_path / "bundle.tar.gz")
    payload = bytearray(files["otlp/traces.pb"])
    payload[-1] ^= 0x01
    files["otlp/traces.pb"] = bytes(payload)
    with tarfile.open(tmp_path / "tampered.tar.gz", "w:gz") as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            archive.addfile(info, io.BytesIO(files[name]))
    key = server.dir / "data" / "keys" / "signing-key.pub.pem"
    result = subprocess.run(
        [str(STELLA), "telemetry", "verify", str(tmp_path / "tampered.tar.gz"), "--trusted-key", str(key), "--json"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 10, result.stderr
    answer = json.loads(result.stdout)
    assert answer["code"] == "bundle.digest_mismatch" and "otlp/traces.pb" in answer["message"]
