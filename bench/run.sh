#!/usr/bin/env bash
# run.sh BINARY [CONFIG]: a fresh data directory per run, then the collector (the default profile
# without CONFIG).
bin=$(readlink -f "$1"); config=${2:+$(readlink -f "$2")}
dir=$(mktemp -d /tmp/stella-bench.XXXXXX)
cd "$dir" || exit 1
if [ -n "$config" ]; then
  exec "$bin" telemetry serve --config "$config" --data-dir "$dir"
fi
exec "$bin" telemetry serve --data-dir "$dir"
