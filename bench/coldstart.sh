#!/usr/bin/env bash
# Cold start under an open-loop burst (issue 18): a fresh bridge with
# ../shared/bench/credbridge-bench.yaml (no Redis: the token is in no cache), and
# as soon as its listen socket accepts, 5,000 req/s of the B2A PATCH for 5 s from
# bench/cmd/credbridge-load (128 connections, latency from each request's
# scheduled start). Prints per run p50/p99/p99.9, peak RSS (VmHWM) and the
# verdict against the targets; RUNS runs in a row, each on a new process.
#   bench/coldstart.sh ./bin/credbridge [runs] [rate] [duration]
# Readiness is the listen socket, not /readyz: /readyz answers on the admin
# listener, which starts after the client one, and a sidecar's application (or a
# balancer without a readiness gate) sends as soon as the port takes connections.
# Anything later — a first request, a warm-up — would hide what is measured.
# CB_COLD_TRACE=1 also samples, every 100 ms, the bridge's connections toward the
# upstream (:18081) and the identity service (:18082) and the accept queue of
# :8080, reads the goroutines from admin /metrics 1 s in, and counts GC cycles
# (GODEBUG=gctrace=1); the sampling costs CPU, so verdict runs leave it off.
# CB_COLD_WINDOW (default 500ms) is the window of the per-window p99 line.
set -u
BIN=${1:?usage: bench/coldstart.sh ./bin/credbridge [runs] [rate] [duration]}
RUNS=${2:-3}; RATE=${3:-5000}; DUR=${4:-5s}
WINDOW=${CB_COLD_WINDOW:-500ms}
P99_MAX_US=25000; HWM_MAX_KIB=$((64 * 1024))
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/fixtures.sh"
W=$(mktemp -d)
start_fixtures "$W" || exit 1
CB=""; SAMPLER=""
trap '[ -n "$SAMPLER" ] && kill $SAMPLER 2>/dev/null; [ -n "$CB" ] && kill $CB 2>/dev/null; stop_fixtures "$W"; sleep 0.3; rm -rf "$W"' EXIT
(cd "$HERE/.." && go build -o "$W/load" ./bench/cmd/credbridge-load) || exit 1
sleep 0.5
PATCH='{"credential":{"blob":{"access":"LOSZM4YRVLKOY9ABCDEF","secret":"secretKey","status":"Inactive"},"project_id":"731fc6f265cd486d900f16e84c5cb594","type":"ec2","user_id":"07609fb9358010e21f7bc00375"}}'

# sample FILE: one line per 100 ms — the bridge's connections toward the upstream
# and the identity service, and the accept queue of :8080 (one ss each); at 1 s
# into the burst the goroutines (admin /metrics) into FILE.gor.
sample() {
  local n=0
  while :; do
    n=$((n + 1)); [ $n = 10 ] && curl -s --max-time 1 http://127.0.0.1:9090/metrics | awk '$1=="go_goroutines"{print $2}' >"$1.gor"
    ss -Htan | awk '$1=="ESTAB" && $5=="127.0.0.1:18081"{u++} $1=="ESTAB" && $5=="127.0.0.1:18082"{i++}
      $1=="LISTEN" && $4=="127.0.0.1:8080"{q=$2} END{print u+0, i+0, q+0}' >>"$1"
    sleep 0.1
  done
}

overflows() { nstat -az TcpExtListenOverflows 2>/dev/null | awk '$1=="TcpExtListenOverflows"{print $2}'; }

fails=0
for run in $(seq 1 "$RUNS"); do
  env_gc=""; [ "${CB_COLD_TRACE:-}" = 1 ] && env_gc="gctrace=1"
  ov0=$(overflows)
  GODEBUG=$env_gc "$BIN" serve --config "$SHARED/credbridge-bench.yaml" >"$W/cb.log" 2>"$W/cb.err" & CB=$!
  [ "${CB_COLD_TRACE:-}" = 1 ] && { : >"$W/samples"; rm -f "$W/samples.gor"; sample "$W/samples" & SAMPLER=$!; }
  out=$("$W/load" --await 10s --name "cold-$run" --method PATCH --url http://127.0.0.1:8080/credentials/LOSZM4YRVLKOY9ABCDEF \
    --header "X-Auth-Token: tok-admin-0123456789" --header "Content-Type: application/json" \
    --body "$PATCH" --rates "$RATE" --duration "$DUR" --window "$WINDOW")
  hwm=$(awk '$1=="VmHWM:"{print $2}' /proc/$CB/status 2>/dev/null)
  [ -n "$SAMPLER" ] && { kill $SAMPLER; wait $SAMPLER 2>/dev/null; SAMPLER=""; }
  kill $CB; wait $CB 2>/dev/null; CB=""
  wins=$(echo "$out" | grep ' WINDOW '); out=$(echo "$out" | grep ' RESULT ')
  p99=$(echo "$out" | sed -n 's/.* p99_us=\([0-9]*\).*/\1/p'); errs=$(echo "$out" | sed -n 's/.* errors=\([0-9]*\).*/\1/p')
  verdict=PASS
  [ "${p99:-999999999}" -lt $P99_MAX_US ] && [ "${hwm:-999999999}" -lt $HWM_MAX_KIB ] && [ "${errs:-1}" = 0 ] || { verdict=FAIL; fails=$((fails + 1)); }
  echo "${out:-cold-$run RESULT failed} vmhwm_kib=${hwm:-?} listen_overflows=$(( $(overflows || echo 0) - ${ov0:-0} )) load1=$(cut -d' ' -f1 /proc/loadavg) verdict=$verdict"
  echo "$wins" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^p99_us=/) { split($i, kv, "="); w = w " " int(kv[2] / 100) / 10 } }
    END { if (w != "") print "  p99 ms per '"$WINDOW"' window:" w }'
  if [ "${CB_COLD_TRACE:-}" = 1 ]; then
    awk -v g="$(cat "$W/samples.gor" 2>/dev/null)" 'NF==3{ if ($1>u) u=$1; if ($2>i) i=$2; if ($3>q) q=$3 }
      END { printf "  trace: peak upstream conns=%d identity conns=%d accept queue=%d; goroutines at 1 s=%s\n", u, i, q, g }' "$W/samples"
    echo "  trace: gc cycles=$(grep -c '^gc ' "$W/cb.err") last: $(grep '^gc ' "$W/cb.err" | tail -1)"
  fi
  sleep 1
done
echo "# cold start: p99 over the first $DUR < $((P99_MAX_US / 1000)) ms, VmHWM < $((HWM_MAX_KIB / 1024)) MiB, no errors; $((RUNS - fails)) of $RUNS runs pass"
[ "$fails" = 0 ]
