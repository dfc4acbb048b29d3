#!/usr/bin/env bash
# Writes the CycloneDX SBOM (JSON, spec 1.5) of the `stella` binary to FILE: every crate compiled into it
# for this target (no dev- or build-only dependencies) with its version, licence expression, crates.io
# SHA-256 and dependency edges, as `cargo cyclonedx` reads them from Cargo.lock and the crates' manifests.
# Honours SOURCE_DATE_EPOCH (the BOM's timestamp); the checkout's path is written as /build/stella, so the
# SBOM of one commit has the same bytes wherever it is built.
#   scripts/sbom.sh FILE
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/sbom.sh FILE}
target=$(rustc -vV | sed -n 's/^host: //p')
name=stella-release-sbom
trap 'rm -f crates/*/"$name".json' EXIT
cargo cyclonedx --manifest-path crates/stella/Cargo.toml --format json --spec-version 1.5 \
  --no-build-deps --target "$target" --override-filename "$name" -q
sed -e "s|file://$PWD/|file:///build/stella/|g" "crates/stella/$name.json" >"$out"
