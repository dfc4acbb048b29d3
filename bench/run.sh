#!/usr/bin/env bash
# run.sh BINARY [CONFIG]: a fresh data directory per run, then the collector (the default profile
# without CONFIG).
dir=$(mktemp -d /tmp/stella-bench.XXXXXX)
cd "$dir" || exit 1
if [ -n "${2:-}" ]; then
  exec "$1" telemetry serve --config "$2" --data-dir "$dir"
fi
exec "$1" telemetry serve --data-dir "$dir"
