package bench

import (
	"os/exec"
	"strings"
	"testing"
)

// awkHas runs an awk script of this folder over input and fails unless every
// line of want is in its output.
func awkHas(t *testing.T, script, input string, want []string) {
	t.Helper()
	awkArgsHave(t, []string{"-f", script, input}, want)
}

// awkArgsHave runs awk with args and fails unless every line of want is in its
// output.
func awkArgsHave(t *testing.T, args, want []string) {
	t.Helper()
	out, err := exec.Command("awk", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("awk: %v\n%s", err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("missing %q in\n%s", w, out)
		}
	}
}

// floor.awk prints the ratios issue 18 judges make floor by, from the run's own
// lines; the first input is a real floor.sh run (2026-12-01, before any change of it).
func TestFloorRatios(t *testing.T) {
	tests := []struct {
		name, input string
		want        []string
	}{
		{"a full run", "testdata/floor.txt", []string{
			"credbridge-B2A-Pgo / floor-nethttp-Pgo: req/s 0.82x (21533 vs 26389), CPU/req 1.29x (50.0 vs 38.8 us) NOT met",
			"credbridge-B2A-P1 / floor-nethttp-P1: req/s 0.63x (22806 vs 35961), CPU/req 1.80x (48.5 vs 27.0 us) NOT met",
			"credbridge-B2A-Pgo / nginx-lua-B2A: 0.66x",
			"floor-fasthttp-P1 / nginx-lua-B2A: 1.16x",
		}},
		{"a run that meets it", "testdata/floor-met.txt", []string{
			"credbridge-B2A-Pgo / floor-nethttp-Pgo: req/s 0.90x (27000 vs 30000), CPU/req 1.10x (33.0 vs 30.0 us) met",
			"credbridge-B2A-P1 / floor-nethttp-P1: req/s 0.85x (25500 vs 30000), CPU/req 1.25x (37.5 vs 30.0 us) NOT met",
		}},
		{"the floor before and after credbridge", "testdata/floor-again.txt", []string{
			"credbridge-B2A-Pgo / floor-nethttp-Pgo: req/s 0.86x (18000 vs 21000), CPU/req 1.31x (55.0 vs 42.0 us) NOT met",
			"credbridge-B2A-P1 / floor-nethttp-P1: req/s 0.87x (26000 vs 30000), CPU/req 1.13x (34.0 vs 30.0 us) met",
			"floor-nethttp-Pgo / nginx-lua-B2A: 1.05x",
		}},
		{"the floor with the bridge's timeouts, shown apart", "testdata/floor-timeouts.txt", []string{
			"credbridge-B2A-P1 / floor-nethttp-P1: req/s 0.80x (24000 vs 30000), CPU/req 1.33x (40.0 vs 30.0 us) NOT met",
			"floor-nethttp-timeouts-Pgo / floor-nethttp-Pgo: req/s 0.93x, CPU/req 1.09x (35.0 vs 32.0 us): +3.0 of credbridge's +13.0 us per request",
			"floor-nethttp-timeouts-P1 / floor-nethttp-P1: req/s 0.95x, CPU/req 1.10x (33.0 vs 30.0 us): +3.0 of credbridge's +10.0 us per request",
		}},
		{"peers only", "testdata/peers.txt", []string{"credbridge-B2A-Pgo / floor-nethttp-Pgo: missing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { awkHas(t, "floor.awk", tc.input, tc.want) })
	}
}

// latency.awk ends make latency with credbridge's p99 over direct-A per rate;
// the input is a real run (2026-12-02 00:52, load 3.6).
func TestLatencyAdded(t *testing.T) {
	awkHas(t, "latency.awk", "testdata/latency.txt", []string{
		"direct-A RESULT rate=1000", // the input passes through
		"credbridge-B2A at 1000 req/s: p99 -0.9 ms over direct-A (4.8 vs 5.6 ms)\n",
		"credbridge-B2A at 2500 req/s: p99 +12.8 ms over direct-A (15.5 vs 2.6 ms) NOT met",
		"credbridge-B2A at 5000 req/s: p99 +38.4 ms over direct-A (83.8 vs 45.4 ms) NOT met",
	})
}

// floorprof.awk splits two pprof listings (a real floorprof.sh pair of
// 2026-12-02, lines with no flat time dropped) by package per request.
func TestFloorProfileSplit(t *testing.T) {
	top := []string{"testdata/floorprof-floor.top", "testdata/floorprof-bridge.top"}
	awkArgsHave(t, append([]string{"-v", "floor_reqs=229220", "-v", "bridge_reqs=183570", "-f", "floorprof.awk"}, top...), []string{
		"Go runtime, sync                               11.95   15.91   +3.95",
		"system calls (their kernel time)               17.76   20.21   +2.45",
		"credbridge/translate                            0.00    2.23   +2.23",
		"github.com/tidwall/gjson                        0.00    1.80   +1.80",
		"total                                          37.82   53.49  +15.67",
	})
	out, err := exec.Command("awk", append([]string{"-f", "floorprof.awk"}, top...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "floor_reqs and bridge_reqs must be set") {
		t.Fatalf("without request counts: err %v, output %s", err, out)
	}
}
