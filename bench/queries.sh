#!/usr/bin/env bash
# Query latency on a filled store: TraceQL search and LogQL through the Tempo and Loki APIs.
#
#   bench/queries.sh BINARY REQUESTS [ROUNDS]
#
# Starts BINARY with traces and logs straight into the store (no sampling), sends REQUESTS requests of
# 100 spans (20 services, 5 attributes per span, 1% error traces) and REQUESTS requests of 100 log
# records with `stella telemetry loadgen`, adds a few needle lines of a service of their own, then times
# each query ROUNDS times (default 3; the server is warm after the first) and prints one JSON line per
# query: the median and all wall times in ms, the answer's size and what it reports inspecting.
# A needle trace (service needle-svc, span needle-op with order.id=needle-order-1) is sent too. With
# WITHOUT_TERMS=1 the TraceQL searches are timed again after the chunks' term filters (*.terms) are
# set aside: the same binary reading every chunk, as before filters existed.
set -euo pipefail
binary=${1:?usage: bench/queries.sh BINARY REQUESTS [ROUNDS]}
requests=${2:?usage: bench/queries.sh BINARY REQUESTS [ROUNDS]}
rounds=${3:-3}
# KEEP_DIR=DIR keeps the server's directory there; a second run with the same DIR skips the loading.
if [ -n "${KEEP_DIR:-}" ]; then
  dir=$KEEP_DIR
  mkdir -p "$dir"
  trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
else
  dir=$(mktemp -d /tmp/stella-queries.XXXXXX)
  trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
fi
loaded=0
[ -d "$dir/data/store" ] && loaded=1
cat > "$dir/config.yaml" <<'EOF'
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:14317}
      http: {endpoint: 127.0.0.1:14318}
api: {endpoint: 127.0.0.1:14319}
exporters:
  store: {}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [], exporters: [store]}
    logs: {receivers: [otlp], processors: [], exporters: [store]}
    metrics: null
EOF
"$binary" telemetry serve --config "$dir/config.yaml" --data-dir "$dir/data" 2>"$dir/stella.log" &
pid=$!
until curl -fs http://127.0.0.1:14319/healthz >/dev/null; do sleep 0.2; done
if [ "$loaded" = 0 ]; then
  services=$(seq -f "svc-%02g" 0 19 | paste -sd,)
  "$binary" telemetry loadgen --endpoint http://127.0.0.1:14318 --signal traces --requests "$requests" \
    --workers 4 --spans-per-trace 10 --traces-per-request 10 --attributes 5 --error-percent 1 \
    --services "$services" >&2
  "$binary" telemetry loadgen --endpoint http://127.0.0.1:14318 --signal logs --requests "$requests" \
    --workers 4 --spans-per-trace 10 --traces-per-request 10 >&2
  now=$(date +%s%N)
  for index in 1 2 3; do
    curl -fs -H 'content-type: application/json' http://127.0.0.1:14318/v1/logs -d "{\"resourceLogs\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"needle-svc\"}}]},\"scopeLogs\":[{\"logRecords\":[{\"timeUnixNano\":\"$((now + index))\",\"severityNumber\":17,\"body\":{\"stringValue\":\"needle $index payment declined\"}}]}]}]}" >/dev/null
  done
  curl -fs -H 'content-type: application/json' http://127.0.0.1:14318/v1/traces -d "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"needle-svc\"}}]},\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5eed5eed5eed5eed5eed5eed5eed5eed\",\"spanId\":\"5eed5eed5eed5eed\",\"name\":\"needle-op\",\"startTimeUnixNano\":\"$now\",\"endTimeUnixNano\":\"$((now + 1000000))\",\"attributes\":[{\"key\":\"order.id\",\"value\":{\"stringValue\":\"needle-order-1\"}}]}]}]}]}" >/dev/null
fi
sleep 2
du -sh "$dir/data/store" >&2
# END_AT=<unix seconds> queries the hour before that time instead of the last hour (a kept store).
now=${END_AT:-$(date +%s)}
start=$(( now - 3600 )); end=$(( now + 60 ))
time_query() {
  local name=$1 url=$2 times=() size status
  for _ in $(seq "$rounds"); do
    local t0 t1
    t0=$(date +%s%N)
    read -r status size < <(curl -s -o "$dir/answer" -w '%{http_code} %{size_download}\n' "$url")
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  local sorted median inspected
  sorted=$(printf '%s\n' "${times[@]}" | sort -n | paste -sd' ')
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p")
  inspected=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); m=d.get("metrics") or {}; print(json.dumps({k: m[k] for k in ("inspectedTraces","inspectedBytes") if k in m}))' "$dir/answer" 2>/dev/null || echo '{}')
  printf '{"query":"%s","status":%s,"median_ms":%s,"ms":"%s","bytes":%s,"inspected":%s}\n' "$name" "$status" "$median" "$sorted" "$size" "$inspected"
}
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
api=http://127.0.0.1:14319
traceql() {
  local suffix=$1
  time_query "traceql attribute value (1 trace)$suffix" "$api/api/search?start=$start&end=$end&q=$(enc '{ span.order.id = "needle-order-1" }')"
  time_query "traceql span name (1 trace)$suffix" "$api/api/search?start=$start&end=$end&q=$(enc '{ name = "needle-op" }')"
  time_query "traceql attribute needle (none)$suffix" "$api/api/search?start=$start&end=$end&q=$(enc '{ span.url.path = "nope" }')"
  time_query "traceql service+error$suffix" "$api/api/search?start=$start&end=$end&q=$(enc '{ resource.service.name = "svc-07" && status = error }')"
}
traceql ""
time_query "traceql error (all services)" "$api/api/search?start=$start&end=$end&q=$(enc '{ status = error }')"
time_query "traceql service+structural" "$api/api/search?start=$start&end=$end&q=$(enc '{ resource.service.name = "svc-07" } >> { status = error }')"
time_query "tag values span.http.route" "$api/api/v2/search/tag/span.http.route/values?start=$start&end=$end"
time_query "logql needle service" "$api/loki/api/v1/query_range?start=${start}000000000&end=${end}000000000&limit=100&query=$(enc '{service_name="needle-svc"}')"
time_query "logql newest 100 lines" "$api/loki/api/v1/query_range?start=${start}000000000&end=${end}000000000&limit=100&query=$(enc '{service_name="loadgen"}')"
time_query "logql rare word (all lines)" "$api/loki/api/v1/query_range?start=${start}000000000&end=${end}000000000&limit=100&query=$(enc '{service_name=~".+"} |= "needle"')"
time_query "logql 1h count_over_time by service" "$api/loki/api/v1/query_range?start=${start}000000000&end=${end}000000000&step=60s&query=$(enc 'sum by (service_name) (count_over_time({service_name=~".+"}[1m]))')"
time_query "logql grafana log volume (1 service)" "$api/loki/api/v1/query_range?start=${start}000000000&end=${end}000000000&step=60s&query=$(enc 'sum by (level, detected_level) (count_over_time({service_name="loadgen"} | drop __error__[1m]))')"
time_query "logql labels" "$api/loki/api/v1/labels?start=${start}000000000&end=${end}000000000"
time_query "logql label values service_name" "$api/loki/api/v1/label/service_name/values?start=${start}000000000&end=${end}000000000"
time_query "logql index stats" "$api/loki/api/v1/index/stats?start=${start}000000000&end=${end}000000000&query=$(enc '{service_name=~".+"}')"
if [ "${WITHOUT_TERMS:-0}" = 1 ]; then
  find "$dir/data/store" -name '*.terms' -exec mv {} {}.off \;
  traceql " (no term filters)"
  find "$dir/data/store" -name '*.terms.off' -exec sh -c 'mv "$1" "${1%.off}"' _ {} \;
fi
