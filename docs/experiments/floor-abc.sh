#!/usr/bin/env bash
# The experiment of docs/performance.md's "Issue 18, fourth pass": four rounds, at
# one P, of floor-nethttp and three credbridge builds interleaved (ABC CBA), then the
# mean CPU µs per request and req/s of each. Not a make target: a record of how the
# figures were taken, to run again when the decision it informs comes up.
#   docs/experiments/floor-abc.sh A B C     (ROUNDS=4, DUR=6s by default)
# A, B, C: commands that run credbridge (a wrapper script may set the environment;
# it must exec, so the PID measured is the bridge's). For the experiment: A is
# ./bin/credbridge, B and C the build of fasthttp-engine.patch run with
# EXP_FASTHTTP=alias and EXP_FASTHTTP=copy.
set -u
A=${1:?usage: floor-abc.sh A B C} B=${2:?} C=${3:?}
HERE=$(cd "$(dirname "$0")/../../bench" && pwd)
DUR=${DUR:-6s}
. "$HERE/fixtures.sh"
W=$(mktemp -d)
start_fixtures "$W" || exit 1
P=""
trap '[ -n "$P" ] && kill $P 2>/dev/null; stop_fixtures "$W"; sleep 0.3; rm -rf "$W"' EXIT
(cd "$HERE/.." && go build -o "$W/floor" ./bench/cmd/credbridge-floor) || exit 1
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
run() {
  local b a out n
  b=$(ticks "$3")
  out=$(wrk -t1 -c32 -d"$DUR" -s "$SHARED/wrk/patch_b.lua" "$2" 2>&1 | grep RESULT)
  a=$(ticks "$3"); n=$(echo "$out" | sed 's/.*requests=\([0-9]*\).*/\1/')
  echo "$1 rps=$(echo "$out" | sed 's/.*rps=\([0-9]*\).*/\1/') cpu_us_per_req=$(awk -v d=$((a - b)) -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" 'BEGIN{ if (n>0) printf "%.1f", d/hz*1e6/n }')"
}
start() { local name=$1; shift; GOMAXPROCS=1 "$@" >"$W/$name.log" 2>&1 & P=$!; sleep 1; run "$name" http://127.0.0.1:8080 $P; kill $P; wait $P 2>/dev/null; P=""; }
CFG="$SHARED/credbridge-bench.yaml"
for _ in $(seq "${ROUNDS:-4}"); do
  start floor "$W/floor" -server nethttp
  start bridge-nethttp "$A" serve --config "$CFG"
  start bridge-fast-alias "$B" serve --config "$CFG"
  start bridge-fast-copy "$C" serve --config "$CFG"
  start floor "$W/floor" -server nethttp
  start bridge-fast-copy "$C" serve --config "$CFG"
  start bridge-fast-alias "$B" serve --config "$CFG"
  start bridge-nethttp "$A" serve --config "$CFG"
done | tee /dev/stderr | awk '/cpu_us/ { split($2, r, "="); split($3, c, "="); n[$1]++; rps[$1] += r[2]; cpu[$1] += c[2] }
  END { for (k in n) printf "%-18s mean %.1f us/req, %.0f req/s over %d runs\n", k, cpu[k] / n[k], rps[k] / n[k], n[k] }'
