// Package bench holds the scripts of make bench and make latency; this test
// holds ratios.awk to the figures it must print from a real run.sh output.
package bench

import "testing"

func TestRatios(t *testing.T) {
	tests := []struct {
		name, input string
		want        []string
	}{
		{"a full run", "testdata/run.txt", []string{
			"nginx-lua-B2A-again RESULT rps=26538", // the input passes through
			"credbridge-B2A / nginx-lua-B2A req/s: 0.57x (13878 vs 24369)",
			"p99: credbridge-B2A 7.8 ms, nginx-lua-B2A 3.2 ms",
			"CPU per request: credbridge-B2A 79.2 us, nginx-lua-B2A 21.9 us",
			"credbridge-A2A / go-httputil req/s: 1.87x (14357 vs 7694)",
			"credbridge peak RSS: 28.0 MiB",
		}},
		{"peers only", "testdata/peers.txt", []string{"# ratios: no credbridge run in this output"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { awkHas(t, "ratios.awk", tc.input, tc.want) })
	}
}
