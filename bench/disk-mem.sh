#!/usr/bin/env bash
# disk-mem.sh BINARY SECONDS OUT: the default profile under loadgen (4 workers) for SECONDS; samples RSS
# every 10 s; at the end prints accepted spans, bytes written to disk (write_bytes), peak RSS, store bytes.
set -u
bin=$(readlink -f "$1"); secs=$2; out=$(readlink -f "$3")
[ -n "${CONFIG:-}" ] && CONFIG=$(readlink -f "$CONFIG")
dir=$(mktemp -d /tmp/stella-disk.XXXXXX)
cd "$dir" || exit 1
if [ -n "${CONFIG:-}" ]; then
  "$bin" telemetry serve --config "$CONFIG" --data-dir "$dir" > "$dir/serve.log" 2>&1 &
else
  "$bin" telemetry serve --data-dir "$dir" > "$dir/serve.log" 2>&1 &
fi
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:13133/readyz >/dev/null 2>&1 && break; curl -sf http://127.0.0.1:4319/readyz >/dev/null 2>&1 && break; sleep 0.2; done
sleep 2
"$bin" telemetry loadgen --duration "${secs}s" --workers 4 --json > "$dir/loadgen.json" 2>"$dir/loadgen.err" &
lg=$!
: > "$out.rss"
while kill -0 $lg 2>/dev/null; do
  echo "$(date +%s) $(awk '/VmRSS/{print $2}' /proc/$pid/status)" >> "$out.rss"
  sleep 10
done
sleep 5
req=$(curl -s http://127.0.0.1:4319/metrics | awk '/^collector_receiver_request_size_bytes_sum/{s+=$2} END {printf "%.0f", s}')
wb=$(awk '/^write_bytes/{print $2}' /proc/$pid/io)
hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
cpu=$(awk '{print ($14+$15)/100}' /proc/$pid/stat)
kill -TERM $pid; wait $pid
store=$(du -sb "$dir/store" | cut -f1)
chunks=$(find "$dir/store" -name '*.chunk' -printf '%s\n' | awk '{s+=$1} END {print s}')
meta=$(find "$dir/store" -type f ! -name '*.chunk' -printf '%s\n' | awk '{s+=$1} END {print s}')
log=$(du -sb "$dir/log" 2>/dev/null | cut -f1)
echo "{\"bin\":\"$bin\",\"secs\":$secs,\"config\":\"${CONFIG:-default}\",\"request_bytes\":${req:-0},\"write_bytes\":$wb,\"peak_rss_kib\":$hwm,\"cpu_s\":$cpu,\"store_bytes\":$store,\"chunk_bytes\":$chunks,\"store_meta_bytes\":$meta,\"log_bytes\":${log:-0},\"loadgen\":$(cat "$dir/loadgen.json")}" | tee -a "$out"
rm -rf "$dir"
