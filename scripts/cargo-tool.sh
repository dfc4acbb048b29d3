#!/usr/bin/env bash
# Installs the cargo subcommands named (cargo-deb, cargo-cyclonedx, cargo-deny) with `cargo install
# --locked` when they are missing. They are built without LTO and with opt-level 1: they run for seconds,
# and a fresh CI machine builds them in about half the time their own release profiles take.
#   scripts/cargo-tool.sh cargo-deb cargo-cyclonedx
set -euo pipefail
for tool in "$@"; do
  if ! cargo "${tool#cargo-}" --version >/dev/null 2>&1; then
    echo "installing $tool (cargo install --locked $tool)"
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
      cargo install --locked --quiet "$tool"
  fi
done
