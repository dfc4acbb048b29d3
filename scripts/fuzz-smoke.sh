#!/usr/bin/env bash
# A short fuzz run of every target (stable toolchain, no sanitizer, unoptimised), as CI's smoke check: any crash fails
# the run and leaves the input under fuzz/artifacts/<target>/. Longer runs:
#   cd fuzz && cargo fuzz run -s none TARGET -- -max_total_time=600
# FUZZ_SECONDS sets the time per target (default 10: the corpora are replayed by `cargo test` too).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz --version 0.13.2
fi
seconds=${FUZZ_SECONDS:-10}
for target in $(cargo fuzz list); do
  echo "fuzzing $target for ${seconds}s"
  # Fuzz a copy of the committed corpus, so new inputs the run finds do not dirty the checkout.
  work=$(mktemp -d)
  cp -r "corpus/$target/." "$work/" 2>/dev/null || true
  log=$(mktemp)
  status=0
  # --dev: an unoptimised build, minutes faster to compile; for a smoke run of seconds that is the better trade.
  cargo fuzz run -s none --dev "$target" "$work" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$log" || true
  rm -rf "$work"
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed (exit $status); the crashing input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  rm -f "$log"
done
