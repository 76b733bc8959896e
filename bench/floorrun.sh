# Sourced by bench/floor.sh and docs/experiments/floor-abc.sh: the fixtures and
# the floor binary in a scratch folder W, and how one target is driven and
# measured (wrk -t1 -c32 for DUR, the B2A PATCH; CPU from /proc). Needs HERE
# (bench/) and DUR; P is the target running now, killed on exit.
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
