#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit, property and whole-binary tests) and the
# interop tests with real third-party clients and servers (the OpenTelemetry Python SDK, Prometheus,
# promtool).
# Installs what those need when it can: Debian's `prometheus` (the remote-write receiver, promtool, the
# PromQL oracle), `prometheus-alertmanager` (where rule alerts go),
# `strace` (to prove sealed mode makes no DNS lookup, and to inject a failing fdatasync), `faketime` (a clock
# stepped ahead, for retention), `shellcheck` and `systemd` (systemd-analyze) for the
# offline kit's bootstrap scripts, `protobuf-compiler` and `libprotobuf-dev` (protoc and timestamp.proto,
# to decode Loki pushes independently), `chromium` (renders the DORA report headless), `lintian`,
# `dpkg-dev`, `debootstrap` and `systemd-container` (the Debian package is built, checked, and run by
# systemd on a clean Debian booted with systemd-nspawn; scripts/release.sh installs cargo-deb and
# cargo-cyclonedx itself), and a Python venv in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/timestamp.proto ] || missing+=(libprotobuf-dev)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v lintian >/dev/null 2>&1 || missing+=(lintian)
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

venv=${STELLA_VENV:-.venv}
requirements=tests/interop/requirements.txt
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s "$requirements" "$venv/.requirements"; then
  echo "installing the Python test clients into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/.requirements"
fi

# `cargo test` builds the binary the whole-binary and interop tests run (target/debug/stella).
cargo test --workspace --locked
STELLA_BIN="$PWD/target/debug/stella" "$venv/bin/python" -m pytest tests/interop -q
# The release: the Debian package (installed into a throwaway root), the SBOM, the signed release, a
# reproducible crate.
"$venv/bin/python" -m pytest tests/package -q
