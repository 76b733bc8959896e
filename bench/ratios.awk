#!/usr/bin/awk -f
# Reads ../shared/bench/run.sh output, passes it through, and ends with the
# ratios the performance issue is judged by (docs/performance.md "Method"):
# B2A against the nginx+Lua peer (mean of its runs before and after credbridge),
# A2A against Go's httputil, p99 and CPU per request side by side, peak RSS.
#   ../shared/bench/run.sh ./bin/credbridge | awk -f bench/ratios.awk
{ print }
/ RESULT / {
  name = $1
  for (i = 2; i <= NF; i++) {
    split($i, kv, "=")
    if (kv[1] == "rps") rps[name] = kv[2]
    if (kv[1] == "p99_us") p99[name] = kv[2]
    if (kv[1] == "cpu_us_per_req") cpu[name] = kv[2]
  }
}
/^# credbridge peak RSS:/ { rss = $5 }
function peer(field,   a, b) {
  a = field["nginx-lua-B2A"]; b = field["nginx-lua-B2A-again"]
  return b == "" ? a : (a + b) / 2
}
END {
  if (!("credbridge-B2A" in rps)) { print "# ratios: no credbridge run in this output"; exit }
  print "# ratios (this run only: the machine is shared; the peer's figures are the mean of its runs before and after credbridge)"
  if (peer(rps) > 0)
    printf "credbridge-B2A / nginx-lua-B2A req/s: %.2fx (%d vs %d)\n", rps["credbridge-B2A"] / peer(rps), rps["credbridge-B2A"], peer(rps)
  printf "p99: credbridge-B2A %.1f ms, nginx-lua-B2A %.1f ms\n", p99["credbridge-B2A"] / 1000, peer(p99) / 1000
  if ("credbridge-B2A" in cpu)
    printf "CPU per request: credbridge-B2A %.1f us, nginx-lua-B2A %.1f us\n", cpu["credbridge-B2A"], peer(cpu)
  if (rps["go-httputil"] > 0)
    printf "credbridge-A2A / go-httputil req/s: %.2fx (%d vs %d)\n", rps["credbridge-A2A"] / rps["go-httputil"], rps["credbridge-A2A"], rps["go-httputil"]
  if (rss != "") printf "credbridge peak RSS: %.1f MiB\n", rss / 1024
}
