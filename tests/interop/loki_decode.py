"""An independent decoder for what a Loki client sends to `POST /loki/api/v1/push`, for the interop tests.

No Loki server runs here, so the test decodes the exporter's requests with code that shares nothing with
it: the Loki push schema (tests/interop/loki/push.proto, copied from grafana/loki pkg/push/push.proto)
compiled by Debian's `protoc`, Google's Python `protobuf` runtime, and `cramjam` for snappy.

What Loki accepts, and so what `decode` checks:
  * protobuf: `Content-Type: application/x-protobuf` (Loki also takes a missing type as protobuf); the
    body is a `logproto.PushRequest` compressed with snappy's *block* (raw) format, not the framed/stream
    format. `Content-Encoding` is optional: Loki treats "" and "snappy" the same (the body is always
    snappy-decoded); "gzip"/"deflate" would wrap the snappy block again.
  * JSON: `Content-Type: application/json`, body
    `{"streams":[{"stream":{"k":"v"},"values":[["<unix ns as a string>","line",{"meta":"v"}]]}]}`, the third
    element (structured metadata) optional; may be gzip'ed with `Content-Encoding: gzip`.

Run `python tests/interop/loki_decode.py` for a self-test of the receiver and the decoder.
"""
import gzip
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import cramjam

PUSH_PATH = "/loki/api/v1/push"
SCHEMA = Path(__file__).resolve().parent / "loki" / "push.proto"
# Debian's protobuf-compiler does not ship the well-known types: google/protobuf/timestamp.proto comes
# with libprotobuf-dev (a Recommends of protobuf-compiler, so absent under --no-install-recommends).
WELL_KNOWN_INCLUDES = ["/usr/include", "/usr/local/include"]

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
SNAPPY_FRAMED_MAGIC = b"\xff\x06\x00\x00sNaPpY"

_compiled = None


# ---------------------------------------------------------------------------------------------------------
# schema

def compile_schema(tmpdir):
    """Compiles push.proto with `protoc --python_out` into tmpdir and imports the generated `push_pb2`.

    The module is compiled once per process: the generated code registers `push.proto` in protobuf's
    default descriptor pool, so later calls return the first module."""
    global _compiled
    if _compiled is not None:
        return _compiled
    protoc = shutil.which("protoc")
    if protoc is None:
        raise RuntimeError("protoc not found: install Debian's protobuf-compiler and libprotobuf-dev")
    include = next((d for d in WELL_KNOWN_INCLUDES
                    if os.path.isfile(os.path.join(d, "google", "protobuf", "timestamp.proto"))), None)
    if include is None:
        raise RuntimeError("google/protobuf/timestamp.proto not found under "
                           f"{WELL_KNOWN_INCLUDES}: install Debian's libprotobuf-dev")
    out = Path(tmpdir)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [protoc, f"-I{SCHEMA.parent}", f"-I{include}", f"--python_out={out}", SCHEMA.name]
    result = subprocess.run(cmd, cwd=SCHEMA.parent, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr}")
    spec = importlib.util.spec_from_file_location("push_pb2", out / "push_pb2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _compiled = module
    return module


# ---------------------------------------------------------------------------------------------------------
# label strings

_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\", '"': '"'}


def _unquote(s, i):
    """Reads a Go string literal (what Loki's LogQL lexer accepts) starting at s[i]; returns (value, end)."""
    quote = s[i]
    if quote == "`":
        end = s.find("`", i + 1)
        if end < 0:
            raise ValueError(f"unterminated raw string at {i} in {s!r}")
        return s[i + 1:end], end + 1
    if quote != '"':
        raise ValueError(f"expected a quoted label value at {i} in {s!r}")
    out = bytearray()
    j = i + 1
    while True:
        if j >= len(s):
            raise ValueError(f"unterminated string at {i} in {s!r}")
        c = s[j]
        if c == '"':
            try:
                return out.decode("utf-8"), j + 1
            except UnicodeDecodeError as e:
                raise ValueError(f"label value is not UTF-8 in {s!r}: {e}") from None
        if c == "\n":
            raise ValueError(f"raw newline inside a quoted label value in {s!r}")
        if c != "\\":
            out += c.encode("utf-8")
            j += 1
            continue
        e = s[j + 1:j + 2]
        if e in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[e].encode()
            j += 2
        elif e == "x":
            out.append(int(s[j + 2:j + 4], 16))
            j += 4
        elif e in "01234567" and e:
            out.append(int(s[j + 1:j + 4], 8))
            j += 4
        elif e in ("u", "U"):
            n = 4 if e == "u" else 8
            out += chr(int(s[j + 2:j + 2 + n], 16)).encode("utf-8")
            j += 2 + n
        else:
            raise ValueError(f"invalid escape \\{e} in {s!r}")


def parse_labels(s):
    """Parses a stream label string the way Loki requires it: `{name="value", ...}`, names matching
    [a-zA-Z_][a-zA-Z0-9_]*, values Go string literals, only `=`, no duplicate names. Returns a dict."""
    s_strip = s.strip()
    if not (s_strip.startswith("{") and s_strip.endswith("}")):
        raise ValueError(f"labels must be enclosed in braces: {s!r}")
    body, i, result = s_strip[1:-1], 0, {}
    while True:
        while i < len(body) and body[i].isspace():
            i += 1
        if i == len(body):
            break
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(body, i)
        if not m:
            raise ValueError(f"invalid label name at {i} in {s!r}")
        name, i = m.group(0), m.end()
        while i < len(body) and body[i].isspace():
            i += 1
        if body[i:i + 1] != "=" or body[i + 1:i + 2] in ("=", "~"):
            raise ValueError(f"expected `=` after {name!r} in {s!r}")
        i += 1
        while i < len(body) and body[i].isspace():
            i += 1
        value, i = _unquote(body, i)
        if name in result:
            raise ValueError(f"duplicate label name {name!r} in {s!r}")
        result[name] = value
        while i < len(body) and body[i].isspace():
            i += 1
        if i == len(body):
            break
        if body[i] != ",":
            raise ValueError(f"expected `,` at {i} in {s!r}")
        i += 1
    return result


def _go_quote(value):
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_labels(mapping):
    """The canonical form (names sorted, Go-quoted values), as Prometheus/Loki print a label set."""
    return "{" + ", ".join(f"{k}={_go_quote(v)}" for k, v in sorted(mapping.items())) + "}"


# ---------------------------------------------------------------------------------------------------------
# decoding

def _header(headers, name):
    if hasattr(headers, "get_all"):  # http.client.HTTPMessage / email.message.Message
        values = headers.get_all(name) or []
    else:
        values = [v for k, v in dict(headers).items() if k.lower() == name.lower()]
    if len(values) > 1:
        raise ValueError(f"header {name} sent {len(values)} times: {values}")
    return values[0] if values else None


def _content_decode(encoding, body):
    if encoding in (None, "", "snappy", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise ValueError(f"Content-Encoding {encoding!r} is not accepted by Loki")


def snappy_block_decompress(body):
    if body.startswith(SNAPPY_FRAMED_MAGIC):
        raise ValueError("body uses snappy's framed (stream) format; Loki expects the raw block format")
    return bytes(cramjam.snappy.decompress_raw(body))


def _entry(ts_ns, line, pairs):
    metadata = {}
    for name, value in pairs:
        if name in metadata:
            raise ValueError(f"structured metadata name {name!r} sent twice in one entry")
        metadata[name] = value
    return {"ts_ns": ts_ns, "line": line, "metadata": metadata, "metadata_pairs": list(pairs)}


def decode(headers, body, push_pb2):
    """Decodes one push request. Returns a list of streams, each
    {"labels": <label string as sent (JSON: canonical form)>, "label_map": {k: v},
     "entries": [{"ts_ns": int, "line": str, "metadata": {k: v}, "metadata_pairs": [(k, v), ...]}]}.
    Raises ValueError for anything Loki would reject at the decoding stage."""
    ctype = (_header(headers, "Content-Type") or "").split(";")[0].strip().lower()
    data = _content_decode((_header(headers, "Content-Encoding") or "").strip().lower(), body)
    if ctype == "application/json":
        return _decode_json(data)
    if ctype != "application/x-protobuf":
        raise ValueError(f"unexpected Content-Type {ctype!r} (want application/x-protobuf or application/json)")
    request = push_pb2.PushRequest()
    request.ParseFromString(snappy_block_decompress(data))
    if request.format:
        raise ValueError(f"PushRequest.format is Loki-internal and must be empty, got {request.format!r}")
    streams = []
    for stream in request.streams:
        if stream.hash:
            raise ValueError("StreamAdapter.hash is Loki-internal and must be 0")
        entries = []
        for e in stream.entries:
            if not e.HasField("timestamp"):
                raise ValueError(f"entry without a timestamp in stream {stream.labels}")
            if not 0 <= e.timestamp.nanos < 1_000_000_000:
                raise ValueError(f"Timestamp.nanos out of range: {e.timestamp.nanos}")
            if len(e.parsed):
                raise ValueError("EntryAdapter.parsed is query-side only and must be empty on push")
            entries.append(_entry(e.timestamp.seconds * 1_000_000_000 + e.timestamp.nanos, e.line,
                                  [(p.name, p.value) for p in e.structuredMetadata]))
        streams.append({"labels": stream.labels, "label_map": parse_labels(stream.labels),
                        "entries": entries})
    return streams


def _decode_json(data):
    doc = json.loads(data.decode("utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("streams"), list):
        raise ValueError("JSON push body must be an object with a `streams` array")
    streams = []
    for s in doc["streams"]:
        labels = s.get("stream")
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ValueError(f"`stream` must be an object of strings: {labels!r}")
        for name in labels:
            if not LABEL_NAME.match(name):
                raise ValueError(f"invalid label name {name!r}")
        entries = []
        for value in s.get("values", []):
            if not isinstance(value, list) or len(value) not in (2, 3):
                raise ValueError(f"each value must be [ts, line] or [ts, line, metadata]: {value!r}")
            ts, line = value[0], value[1]
            if not isinstance(ts, str) or not ts.isdigit():
                raise ValueError(f"timestamp must be a string of decimal nanoseconds: {ts!r}")
            if not isinstance(line, str):
                raise ValueError(f"line must be a string: {line!r}")
            meta = value[2] if len(value) == 3 else {}
            if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
                raise ValueError(f"structured metadata must be an object of strings: {meta!r}")
            entries.append(_entry(int(ts), line, list(meta.items())))
        streams.append({"labels": format_labels(labels), "label_map": dict(labels), "entries": entries})
    return streams


# ---------------------------------------------------------------------------------------------------------
# receiver

class LokiReceiver:
    """A stand-in for Loki's distributor on 127.0.0.1: records every POST to /loki/api/v1/push as
    (headers, raw body) and answers 204, or the status set with `fail_next`."""

    def __init__(self):
        self.requests = []          # [(headers: dict with lower-case names, body: bytes)]
        self.responses = []         # status answered to each recorded request, same order
        self.other = []             # (method, path) of anything else
        self._failures = []         # [(status, body, headers)] to answer next, in order
        self._cond = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _read_body(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if body:
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_POST(self):
                body = self._read_body()
                if self.path.split("?")[0] != PUSH_PATH:
                    with receiver._cond:
                        receiver.other.append(("POST", self.path))
                    self._answer(404, b"404 page not found\n")
                    return
                with receiver._cond:
                    status, text, extra = (receiver._failures.pop(0) if receiver._failures
                                           else (204, b"", None))
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.responses.append(status)
                    receiver._cond.notify_all()
                self._answer(status, text, extra)

            def do_GET(self):
                with receiver._cond:
                    receiver.other.append(("GET", self.path))
                body = b"ready\n" if self.path == "/ready" else b"404 page not found\n"
                self._answer(200 if self.path == "/ready" else 404, body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.url = self.endpoint + PUSH_PATH
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(self, count, status=500, body=None, headers=None):
        """Answers `status` (e.g. 500, 503, 429, 400) to the next `count` push requests, then 204 again.
        `headers` e.g. {"Retry-After": "1"}."""
        text = body if body is not None else f"injected failure {status}\n".encode()
        with self._cond:
            self._failures.extend([(status, text, headers)] * count)

    def wait_for(self, count, timeout=20.0):
        """Waits until at least `count` push requests were recorded; returns a copy of them."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} push requests after {timeout}s")
            return list(self.requests)

    def decoded(self, push_pb2, only_accepted=True):
        """All streams of all recorded requests (those answered 2xx unless only_accepted=False)."""
        with self._cond:
            pairs = list(zip(self.requests, self.responses))
        return [s for (h, b), status in pairs if not only_accepted or status < 300
                for s in decode(h, b, push_pb2)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------------------
# self-test

def _self_test():
    import tempfile
    import urllib.error
    import urllib.request

    push_pb2 = compile_schema(tempfile.mkdtemp(prefix="loki-pb2-"))
    req = push_pb2.PushRequest()
    s = req.streams.add()
    s.labels = '{deployment_environment="prod", service_name="checkout", severity="error"}'
    e = s.entries.add()
    e.timestamp.seconds, e.timestamp.nanos = 1_700_000_000, 123_456_789
    e.line = 'payment failed: "card declined" \u00e9\u4e2d'
    for k, v in (("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"), ("http_status_code", "502")):
        p = e.structuredMetadata.add()
        p.name, p.value = k, v
    e2 = s.entries.add()
    e2.timestamp.seconds, e2.timestamp.nanos = 1_700_000_001, 0
    e2.line = "second"
    s2 = req.streams.add()
    s2.labels = '{service_name="a\\"b\\\\c\\nd", severity="info"}'
    s2.entries.add(line="x").timestamp.FromNanoseconds(5)
    raw = req.SerializeToString()
    body = bytes(cramjam.snappy.compress_raw(raw))
    assert not body.startswith(SNAPPY_FRAMED_MAGIC)

    def post(url, data, ctype, encoding=None):
        headers = {"Content-Type": ctype, "X-Scope-OrgID": "tenant-1"}
        if encoding:
            headers["Content-Encoding"] = encoding
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as err:
            return err.code

    with LokiReceiver() as rx:
        # protobuf + snappy block
        assert post(rx.url, body, "application/x-protobuf") == 204
        # injected failures: 2 x 429 then back to 204
        rx.fail_next(2, 429, headers={"Retry-After": "1"})
        assert post(rx.url, body, "application/x-protobuf") == 429
        assert post(rx.url, body, "application/x-protobuf") == 429
        assert post(rx.url, body, "application/x-protobuf") == 204
        rx.fail_next(1, 500)
        assert post(rx.url, body, "application/x-protobuf") == 500
        # JSON, plain and gzip'ed
        doc = {"streams": [{"stream": {"service_name": "checkout", "severity": "error",
                                       "deployment_environment": "prod"},
                            "values": [["1700000000123456789", 'payment failed: "card declined" \u00e9\u4e2d',
                                        {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                                         "http_status_code": "502"}],
                                       ["1700000001000000000", "second"]]}]}
        jbody = json.dumps(doc).encode()
        assert post(rx.url, jbody, "application/json") == 204
        assert post(rx.url, gzip.compress(jbody), "application/json", "gzip") == 204
        # a path Loki does not serve
        assert post(rx.endpoint + "/api/prom/pushx", body, "application/x-protobuf") == 404
        got = rx.wait_for(7)
        assert rx.responses == [204, 429, 429, 204, 500, 204, 204], rx.responses
        assert rx.other == [("POST", "/api/prom/pushx")], rx.other

        headers, sent = got[0]
        assert sent == body and headers["content-type"] == "application/x-protobuf"
        assert headers["x-scope-orgid"] == "tenant-1"
        streams = decode(headers, sent, push_pb2)
        assert len(streams) == 2
        first = streams[0]
        assert first["labels"] == s.labels
        assert first["label_map"] == {"deployment_environment": "prod", "service_name": "checkout",
                                      "severity": "error"}
        assert first["entries"][0] == {
            "ts_ns": 1_700_000_000_123_456_789, "line": 'payment failed: "card declined" \u00e9\u4e2d',
            "metadata": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "http_status_code": "502"},
            "metadata_pairs": [("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"), ("http_status_code", "502")]}
        assert first["entries"][1]["ts_ns"] == 1_700_000_001_000_000_000
        assert first["entries"][1]["metadata"] == {}
        assert streams[1]["label_map"] == {"service_name": 'a"b\\c\nd', "severity": "info"}
        assert streams[1]["entries"][0]["ts_ns"] == 5

        for i in (5, 6):
            js = decode(*got[i], push_pb2)
            assert js[0]["label_map"] == first["label_map"]
            assert js[0]["labels"] == format_labels(first["label_map"]) == first["labels"]
            strip = lambda es: [{k: v for k, v in x.items() if k != "metadata_pairs"} for x in es]
            assert strip(js[0]["entries"]) == strip(first["entries"]), js
        assert len(rx.decoded(push_pb2)) == 2 + 2 + 1 + 1   # 204-answered requests only

    # negative checks: what Loki would refuse must not decode
    def rejects(fn, *args):
        try:
            fn(*args)
        except (ValueError, Exception) as err:  # cramjam raises its own DecompressionError
            return str(err) or type(err).__name__
        raise AssertionError(f"{fn.__name__}{args!r} was accepted")

    framed = bytes(cramjam.snappy.compress(raw))
    assert "framed" in rejects(decode, {"Content-Type": "application/x-protobuf"}, framed, push_pb2)
    rejects(decode, {"Content-Type": "application/x-protobuf"}, raw, push_pb2)   # not compressed
    rejects(decode, {"Content-Type": "text/plain"}, body, push_pb2)
    rejects(decode, {"Content-Type": "application/json"},
            b'{"streams":[{"stream":{"a":"b"},"values":[[1700000000,"x"]]}]}', push_pb2)
    for bad in ('{service.name="x"}', '{1a="x"}', '{a="x", a="y"}', '{a=~"x"}', "{a='x'}",
                'a="x"', '{a="x" b="y"}', '{a="\\q"}'):
        rejects(parse_labels, bad)
    assert parse_labels('{ b = `r\\aw` ,a="\\u00e9\\x41\\101"}') == {"b": "r\\aw", "a": "\u00e9AA"}
    assert parse_labels("{}") == {}
    assert format_labels({"b": "1", "a": 'q"\\\n\x01'}) == '{a="q\\"\\\\\\n\\x01", b="1"}'
    print("loki_decode self-test: 1 passed, 0 failed")


if __name__ == "__main__":
    sys.exit(_self_test())
