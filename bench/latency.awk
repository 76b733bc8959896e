#!/usr/bin/awk -f
# Reads bench/latency.sh's RESULT lines, passes them through, and ends with what
# issue 18 judges make latency by: credbridge-B2A's p99 added over direct-A (the
# upstream with no proxy) at each rate, same run; targets < 1 ms at 2,500 req/s and
# < 2 ms at 5,000.
{ print }
/ RESULT / {
  for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  p99[$1, f["rate"]] = f["p99_us"]; rates[f["rate"]] = 1
}
END {
  print "# p99 added over direct-A, same run (target: < 1 ms at 2500 req/s, < 2 ms at 5000)"
  n = 0
  for (r in rates) list[++n] = r + 0
  for (i = 2; i <= n; i++) for (j = i; j > 1 && list[j] < list[j-1]; j--) { t = list[j]; list[j] = list[j-1]; list[j-1] = t }
  for (i = 1; i <= n; i++) {
    r = list[i]
    if (!((("credbridge-B2A", r) in p99) && (("direct-A", r) in p99))) continue
    d = (p99["credbridge-B2A", r] - p99["direct-A", r]) / 1000
    goal = r == 2500 ? 1 : r == 5000 ? 2 : 0
    printf "credbridge-B2A at %d req/s: p99 %+.1f ms over direct-A (%.1f vs %.1f ms)%s\n", r, d,
      p99["credbridge-B2A", r] / 1000, p99["direct-A", r] / 1000, goal ? (d < goal ? " met" : " NOT met") : ""
  }
}
