#!/usr/bin/env bash
# The ceiling run: what Go's HTTP servers reach on this machine doing none of the
# bridge's work, next to the nginx+Lua peer and credbridge, in one run.
#   bench/floor.sh ./bin/credbridge [duration]
# Drives each target like ../shared/bench/run.sh (wrk -t1 -c32, the B2A PATCH):
#   nginx-lua-B2A            the peer (before and after the rest; the ratios use the mean)
#   floor-nethttp-timeouts   floor-nethttp with the bridge's slow-client timeouts set
#                            (app.SetClientTimeouts): what they cost apart from the
#                            bridge's work; shown, not judged
#   floor-nethttp / -fasthttp bench/cmd/credbridge-floor on net/http's server (echo's) or
#                            fasthttp's: one fixed oscred PUT per request, nothing else;
#                            floor-nethttp runs before and after credbridge (the ratios
#                            use the mean: the load of a shared box drifts within a run)
#   credbridge-B2A           the bridge with ../shared/bench/credbridge-bench.yaml
# each with Go's choice of procs and with GOMAXPROCS=1, then the ratios (bench/floor.awk):
# credbridge against floor-nethttp in req/s and CPU per request, and every Go target
# against the peer. Machines are shared and noisy: read ratios within one run only.
set -u
BIN=${1:?usage: bench/floor.sh ./bin/credbridge [duration]}
DUR=${2:-8s}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/fixtures.sh"
W=$(mktemp -d)
start_fixtures "$W" || exit 1
P=""
trap '[ -n "$P" ] && kill $P 2>/dev/null; stop_fixtures "$W"; sleep 0.3; rm -rf "$W"' EXIT
(cd "$HERE/.." && go build -o "$W/floor" ./bench/cmd/credbridge-floor) || exit 1
sleep 0.5
ticks() { # user+sys clock ticks of processes and their children
  local t=0 p
  for p in "$@" $(for q in "$@"; do pgrep -P "$q"; done); do
    [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat)))
  done
  echo $t
}
run() { # name url pid
  local b a out n
  b=$(ticks "$3")
  out=$(wrk -t1 -c32 -d"$DUR" -s "$SHARED/wrk/patch_b.lua" "$2" 2>&1 | grep RESULT)
  a=$(ticks "$3"); n=$(echo "$out" | sed 's/.*requests=\([0-9]*\).*/\1/')
  echo "$1 ${out:-RESULT failed} cpu_us_per_req=$(awk -v d=$((a - b)) -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" 'BEGIN{ if (n>0) printf "%.1f", d/hz*1e6/n }')"
}
start() { # name procs command...
  local name=$1 procs=$2; shift 2
  if [ "$procs" = go ]; then "$@" >"$W/$name.log" 2>&1 & else GOMAXPROCS=$procs "$@" >"$W/$name.log" 2>&1 & fi
  P=$!; sleep 1
  run "$name-P$procs" http://127.0.0.1:8080 $P
  kill $P; wait $P 2>/dev/null; P=""
}
{
  PEERS=$(cat "$W/peers.pid")
  run nginx-lua-B2A http://127.0.0.1:18091 "$PEERS"
  for procs in go 1; do
    start floor-nethttp "$procs" "$W/floor" -server nethttp
    start floor-fasthttp "$procs" "$W/floor" -server fasthttp
    start floor-nethttp-timeouts "$procs" "$W/floor" -server nethttp -timeouts
    start credbridge-B2A "$procs" "$BIN" serve --config "$SHARED/credbridge-bench.yaml"
    start floor-nethttp-again "$procs" "$W/floor" -server nethttp
  done
  run nginx-lua-B2A-again http://127.0.0.1:18091 "$PEERS"
} | tee "$W/out.txt"
awk -f "$HERE/floor.awk" "$W/out.txt"
