#!/usr/bin/env bash
# The experiment of docs/performance.md's "Issue 18, fourth pass": four rounds, at
# one P, of floor-nethttp and three credbridge builds interleaved (ABC CBA), then the
# mean CPU µs per request and req/s of each. Each target is driven and measured as
# bench/floor.sh does (bench/floorrun.sh). Not a make target: a record of how the
# figures were taken, to run again when the decision it informs comes up.
#   docs/experiments/floor-abc.sh A B C     (ROUNDS=4, DUR=6s by default)
# A, B, C: commands that run credbridge (a wrapper script may set the environment;
# it must exec, so the PID measured is the bridge's). For the experiment: A is
# ./bin/credbridge, B and C the build of fasthttp-engine.patch run with
# EXP_FASTHTTP=alias and EXP_FASTHTTP=copy.
set -u
A=${1:?usage: floor-abc.sh A B C} B=${2:?} C=${3:?}
DUR=${DUR:-6s}
HERE=$(cd "$(dirname "$0")/../../bench" && pwd)
. "$HERE/floorrun.sh"
CFG="$SHARED/credbridge-bench.yaml"
for _ in $(seq "${ROUNDS:-4}"); do
  start floor 1 "$W/floor" -server nethttp
  start bridge-nethttp 1 "$A" serve --config "$CFG"
  start bridge-fast-alias 1 "$B" serve --config "$CFG"
  start bridge-fast-copy 1 "$C" serve --config "$CFG"
  start floor 1 "$W/floor" -server nethttp
  start bridge-fast-copy 1 "$C" serve --config "$CFG"
  start bridge-fast-alias 1 "$B" serve --config "$CFG"
  start bridge-nethttp 1 "$A" serve --config "$CFG"
done | tee /dev/stderr | awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    if (v["cpu_us_per_req"] != "") { n[$1]++; rps[$1] += v["rps"]; cpu[$1] += v["cpu_us_per_req"] } delete v }
  END { for (k in n) printf "%-20s mean %.1f us/req, %.0f req/s over %d runs\n", k, cpu[k] / n[k], rps[k] / n[k], n[k] }'
