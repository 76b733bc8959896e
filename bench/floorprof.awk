#!/usr/bin/awk -f
# Reads two `go tool pprof -top -nodecount=100000 -nodefraction=0 -edgefraction=0`
# listings, the floor's and the bridge's (bench/floorprof.sh), and prints CPU µs per
# request by package, flat: the floor, the bridge, the difference, largest first.
#   awk -v floor_reqs=N -v bridge_reqs=M -f bench/floorprof.awk floor.top bridge.top
# The kernel's work for system calls lands on Syscall6 and is shown apart.
function secs(v,   u) {
  u = v; sub(/^[0-9.]+/, "", u); sub(/[a-zµ]+$/, "", v)
  if (u == "ms") return v / 1e3
  if (u == "us" || u == "µs") return v / 1e6
  if (u == "ns") return v / 1e9
  return v + 0
}
# group is the package a function belongs to: up to the first dot after the last
# slash; the runtime's assembly bodies and sync go with the runtime.
function group(f,   p, i, rest) {
  if (f ~ /Syscall6$/) return "system calls (their kernel time)"
  sub(/\[.*\]/, "", f)
  p = f; i = 0
  if (match(p, /.*\//)) i = RLENGTH
  rest = substr(p, i + 1)
  if (match(rest, /\./)) p = substr(p, 1, i + RSTART - 1)
  if (p !~ /\./ && p !~ /\// && f !~ /\./) p = "runtime"
  if (p ~ /^(runtime|sync|internal\/runtime\/|internal\/sync)/ || p == "internal/runtime") p = "Go runtime, sync"
  sub(/^github.com\/credbridge\/credbridge\//, "credbridge/", p)
  return p
}
FNR == 1 { file++ }
$1 ~ /^[0-9.]+[a-zµ]*s$|^0$/ && $2 ~ /%$/ && NF >= 6 {
  f = $6; for (i = 7; i <= NF; i++) f = f " " $i
  g = group(f); v = secs($1)
  if (file == 1) a[g] += v; else b[g] += v
  seen[g] = 1
}
END {
  if (floor_reqs <= 0 || bridge_reqs <= 0) { print "floorprof.awk: floor_reqs and bridge_reqs must be set"; exit 1 }
  n = 0
  for (g in seen) { fa[g] = a[g] / floor_reqs * 1e6; fb[g] = b[g] / bridge_reqs * 1e6; ta += fa[g]; tb += fb[g]; keys[++n] = g }
  for (i = 2; i <= n; i++) for (j = i; j > 1 && fb[keys[j]] - fa[keys[j]] > fb[keys[j-1]] - fa[keys[j-1]]; j--) { t = keys[j]; keys[j] = keys[j-1]; keys[j-1] = t }
  printf "# CPU us per request by package (pprof, flat): floor-nethttp, credbridge-B2A, difference\n"
  for (i = 1; i <= n; i++) {
    g = keys[i]; d = fb[g] - fa[g]
    if (d > 0.1 || d < -0.1 || fa[g] >= 1 || fb[g] >= 1) printf "%-44s %7.2f %7.2f %+7.2f\n", g, fa[g], fb[g], d
  }
  printf "%-44s %7.2f %7.2f %+7.2f\n", "total", ta, tb, tb - ta
}
