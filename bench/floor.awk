#!/usr/bin/awk -f
# Reads bench/floor.sh's RESULT lines and prints the ratios issue 18 judges it by:
# credbridge-B2A against floor-nethttp (the same server echo runs on, doing none of
# the bridge's work; the mean of its runs before and after credbridge when there are
# two) in req/s and CPU per request, with Go's procs and with one P,
# then every Go target against the nginx+Lua peer (mean of its two runs).
#   awk -f bench/floor.awk out.txt
/ RESULT / {
  for (i = 2; i <= NF; i++) {
    split($i, kv, "=")
    if (kv[1] == "rps") rps[$1] = kv[2]
    if (kv[1] == "cpu_us_per_req") cpu[$1] = kv[2]
  }
}
# mean folds a target's "-again" run (after credbridge) into its first one.
function mean(a, k,   b) {
  b = k; sub(/-P/, "-again-P", b)
  if (b in a) { a[k] = (a[k] + a[b]) / 2; delete a[b] }
}
END {
  for (p = 1; p <= 2; p++) { mean(rps, "floor-nethttp-" (p == 1 ? "Pgo" : "P1")); mean(cpu, "floor-nethttp-" (p == 1 ? "Pgo" : "P1")) }
  print "# credbridge-B2A against floor-nethttp, same run (target: req/s >= 0.85x, CPU/req <= 1.20x)"
  for (p = 1; p <= 2; p++) {
    P = p == 1 ? "Pgo" : "P1"
    cb = "credbridge-B2A-" P; fl = "floor-nethttp-" P
    if (!(rps[cb] > 0 && rps[fl] > 0)) { printf "%s / %s: missing\n", cb, fl; continue }
    r = rps[cb] / rps[fl]
    line = sprintf("%s / %s: req/s %.2fx (%d vs %d)", cb, fl, r, rps[cb], rps[fl])
    ok = r >= 0.85
    if (cpu[cb] > 0 && cpu[fl] > 0) {
      c = cpu[cb] / cpu[fl]; ok = ok && c <= 1.2
      line = line sprintf(", CPU/req %.2fx (%.1f vs %.1f us)", c, cpu[cb], cpu[fl])
    }
    print line (ok ? " met" : " NOT met")
  }
  # Shown, not judged: how much of the gap the slow-client timeouts alone make.
  hdr = 0
  for (p = 1; p <= 2; p++) {
    P = p == 1 ? "Pgo" : "P1"
    cb = "credbridge-B2A-" P; fl = "floor-nethttp-" P; ft = "floor-nethttp-timeouts-" P
    if (!(cpu[ft] > 0 && cpu[fl] > 0 && rps[fl] > 0)) continue
    if (!hdr++) print "# shown, not judged: floor-nethttp with the bridge's slow-client timeouts (app.SetClientTimeouts)"
    line = sprintf("%s / %s: req/s %.2fx, CPU/req %.2fx (%.1f vs %.1f us)", ft, fl, rps[ft] / rps[fl], cpu[ft] / cpu[fl], cpu[ft], cpu[fl])
    if (cpu[cb] > cpu[fl]) line = line sprintf(": %+.1f of credbridge's %+.1f us per request", cpu[ft] - cpu[fl], cpu[cb] - cpu[fl])
    print line
  }
  peer = (rps["nginx-lua-B2A"] + rps["nginx-lua-B2A-again"]) / 2
  if (peer <= 0) exit
  print "# req/s against the peer (mean of its two runs); P = Go's choice of procs or GOMAXPROCS=1"
  n = 0
  for (k in rps) if (k !~ /^nginx-lua/) keys[++n] = k
  for (i = 2; i <= n; i++) for (j = i; j > 1 && keys[j] < keys[j-1]; j--) { t = keys[j]; keys[j] = keys[j-1]; keys[j-1] = t }
  for (i = 1; i <= n; i++) printf "%s / nginx-lua-B2A: %.2fx\n", keys[i], rps[keys[i]] / peer
}
