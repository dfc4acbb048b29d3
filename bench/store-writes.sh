#!/usr/bin/env bash
# store-writes.sh BINARY SECONDS: bench/store.yaml under loadgen (4 workers) with every write traced
# (strace -f -y); prints bytes written into the store by file kind, chunk bytes at rest, spans accepted.
set -u
bin=$(readlink -f "$1"); secs=$2
here=$(dirname "$(readlink -f "$0")")
dir=$(mktemp -d /tmp/stella-writes.XXXXXX)
cd "$dir" || exit 1
strace -f -y -qq -e trace=write,pwrite64,writev -o "$dir/trace" "$bin" telemetry serve --config "$here/store.yaml" --data-dir "$dir" > "$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 150); do curl -sf http://127.0.0.1:4319/readyz >/dev/null 2>&1 && break; sleep 0.2; done
"$bin" telemetry loadgen --duration "${secs}s" --workers 4 --json > "$dir/loadgen.json" 2>/dev/null
sleep 8
pkill -TERM -P $pid; kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
chunks=$(find "$dir/store" -name '*.chunk' -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s}')
python3 - "$dir/trace" "$chunks" "$(cat "$dir/loadgen.json")" <<'PY'
import re, sys, json, collections
written = collections.Counter()
pending = {}
whole = re.compile(r'^(\d+)\s+(?:write|pwrite64|writev)\((\d+)<([^>]*)>.*= (\d+)$')
start = re.compile(r'^(\d+)\s+(?:write|pwrite64|writev)\((\d+)<([^>]*)>.*<unfinished \.\.\.>$')
resumed = re.compile(r'^(\d+)\s+<\.\.\. (?:write|pwrite64|writev) resumed>.*= (\d+)$')
def kind(path):
    name = path.rsplit('/', 1)[-1]
    if name.startswith('run-'):
        # Files are written as `<name>.tmp` (the extension replaced), then renamed.
        stem = name.rsplit('.', 1)[0]
        if stem.endswith(('.index', '.traces')):
            return 'run trace indexes'
        if stem.endswith(('.services', '.streams', '.series')):
            return 'run index shards'
        return 'run manifests'
    if name.startswith('day.'):
        return 'day.json'
    if '/store/' in path:
        return 'chunks and chunk manifests'
    return None
for line in open(sys.argv[1], errors='replace'):
    line = line.rstrip()
    m = whole.match(line)
    if m:
        k = kind(m.group(3))
        if k: written[k] += int(m.group(4))
        continue
    m = start.match(line)
    if m:
        pending[m.group(1)] = m.group(3)
        continue
    m = resumed.match(line)
    if m and m.group(1) in pending:
        k = kind(pending.pop(m.group(1)))
        if k: written[k] += int(m.group(2))
chunks = int(sys.argv[2]); lg = json.loads(sys.argv[3])
total = sum(written.values())
print(json.dumps({"spans": lg["accepted_items"], "chunk_bytes_at_rest": chunks, "store_written": total,
                  "written_over_chunks": round(total / chunks, 3), "by_kind": dict(written)}))
PY
[ -n "${KEEP:-}" ] || rm -rf "$dir"
