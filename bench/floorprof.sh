#!/usr/bin/env bash
# Where the difference to the floor goes: CPU profiles of floor-nethttp and of
# credbridge-B2A, one after the other under the same load as bench/floor.sh
# (wrk -t1 -c32, the B2A PATCH), and their split by package per request
# (bench/floorprof.awk). pprof sees the process only: the kernel's share shows
# as the system calls' time; `perf` (docs/performance.md) sees the rest.
#   bench/floorprof.sh ./bin/credbridge [seconds]      (PROCS=N: GOMAXPROCS, default 1)
# The profiles and listings stay in the folder it prints.
set -u
BIN=${1:?usage: bench/floorprof.sh ./bin/credbridge [seconds]}
S=${2:-10}
PROCS=${PROCS:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/fixtures.sh"
W=$(mktemp -d)
start_fixtures "$W" || exit 1
P=""
trap '[ -n "$P" ] && kill $P 2>/dev/null; stop_fixtures "$W"' EXIT
(cd "$HERE/.." && go build -o "$W/floor" ./bench/cmd/credbridge-floor) || exit 1
{ cat "$SHARED/credbridge-bench.yaml"; printf 'debug:\n  pprof: true\n'; } > "$W/bridge.yaml"
# profile NAME PPROF_URL COMMAND...: start it, warm up 1 s, profile S seconds under
# wrk, and print the requests served in that window (req/s times S).
profile() {
  local name=$1 url=$2 out rps; shift 2
  GOMAXPROCS=$PROCS "$@" >"$W/$name.log" 2>&1 &
  P=$!; sleep 1
  wrk -t1 -c32 -d1s -s "$SHARED/wrk/patch_b.lua" http://127.0.0.1:8080 >/dev/null
  wrk -t1 -c32 -d$((S + 2))s -s "$SHARED/wrk/patch_b.lua" http://127.0.0.1:8080 >"$W/$name.wrk" &
  sleep 1
  curl -sf -o "$W/$name.prof" "$url?seconds=$S" || { echo "$name: no profile" >&2; return 1; }
  wait $!
  kill $P; wait $P 2>/dev/null; P=""
  go tool pprof -top -nodecount=100000 -nodefraction=0 -edgefraction=0 "$W/$name.prof" 2>/dev/null >"$W/$name.top"
  rps=$(sed -n 's/.*RESULT rps=\([0-9]*\).*/\1/p' "$W/$name.wrk")
  echo "$name RESULT $(grep RESULT "$W/$name.wrk" | sed 's/^RESULT //')" >&2
  echo $((${rps:-0} * S))
}
fr=$(profile floor-nethttp http://127.0.0.1:9091/debug/pprof/profile "$W/floor" -server nethttp -pprof 127.0.0.1:9091) || exit 1
br=$(profile credbridge-B2A http://127.0.0.1:9090/debug/pprof/profile "$BIN" serve --config "$W/bridge.yaml") || exit 1
echo "# GOMAXPROCS=$PROCS, $S s each; profiles and listings in $W"
awk -v floor_reqs="$fr" -v bridge_reqs="$br" -f "$HERE/floorprof.awk" "$W/floor-nethttp.top" "$W/credbridge-B2A.top"
