"""Starts the real `stella` binary for the interop tests: free loopback ports, a temporary data dir,
an explicit config, SIGTERM at the end (the export is complete once the process has exited)."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STELLA = Path(os.environ.get("STELLA_BIN", ROOT / "target" / "debug" / "stella"))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stella:
    def __init__(self, body):
        if not STELLA.is_file():
            raise RuntimeError(f"{STELLA} does not exist; build it with `cargo build` or set STELLA_BIN")
        self.dir = Path(tempfile.mkdtemp(prefix="stella-interop-"))
        self.grpc, self.http, self.api = free_port(), free_port(), free_port()
        config = (
            "receivers:\n  otlp:\n    protocols:\n"
            f"      grpc: {{endpoint: 127.0.0.1:{self.grpc}}}\n"
            f"      http: {{endpoint: 127.0.0.1:{self.http}}}\n"
            f"api: {{endpoint: 127.0.0.1:{self.api}}}\n" + body
        )
        (self.dir / "stella.yaml").write_text(config)
        self.start()

    def start(self):
        """Starts (or, after `stop`, restarts) the server on the same ports, config and data dir."""
        self.log = open(self.dir / "stella.log", "ab")
        self.process = subprocess.Popen(
            [str(STELLA), "telemetry", "serve", "--config", str(self.dir / "stella.yaml"),
             "--data-dir", str(self.dir / "data"), "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"stella exited early: {self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.api), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"stella did not start: {self.log_text()}")

    def log_text(self):
        return (self.dir / "stella.log").read_text(errors="replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(timeout=60) == 0, self.log_text()

    def export_lines(self, signal_name):
        path = self.dir / "data" / "export" / f"{signal_name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


BATCH_TO_FILE = """processors:
  batch: {send_batch_size: 512, timeout: 100ms}
exporters:
  file: {path: "export/{signal}.jsonl"}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [file]}
    metrics: {receivers: [otlp], processors: [batch], exporters: [file]}
    logs: {receivers: [otlp], processors: [batch], exporters: [file]}
"""


@pytest.fixture
def stella():
    server = Stella(BATCH_TO_FILE)
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()
