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
. "$HERE/floorrun.sh"
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
