package translate

import (
	"encoding/json"
	"testing"
)

func TestRewriteLinks(t *testing.T) {
	const base = "https://bridge.example:8443"
	for _, tc := range []struct{ name, in, want string }{
		{"one credential",
			`{"credential":{"id":"x","links":{"self":"http://10.0.0.5:5000/v3/credentials/x"}}}`,
			`{"credential":{"id":"x","links":{"self":"https://bridge.example:8443/v3/credentials/x"}}}`},
		{"a list with paging",
			`{"links":{"self":"http://ks:5000/v3/credentials?type=ec2","previous":null,"next":"http://ks:5000/v3/credentials?marker=a"},"credentials":[{"links":{"self":"http://ks:5000/v3/credentials/a"}},{"id":"b"}]}`,
			`{"links":{"self":"https://bridge.example:8443/v3/credentials?type=ec2","previous":null,"next":"https://bridge.example:8443/v3/credentials?marker=a"},"credentials":[{"links":{"self":"https://bridge.example:8443/v3/credentials/a"}},{"id":"b"}]}`},
		{"a link without /v3/",
			`{"credential":{"links":{"self":"http://internal-host/"}}}`,
			`{"credential":{"links":{"self":"https://bridge.example:8443/v3/credentials"}}}`},
		{"nothing else touched",
			`{"credential":{"blob":"{\"description\":\"http://ks:5000/v3/x\"}","links":{"related":"http://ks:5000/v3/x"}}}`,
			`{"credential":{"blob":"{\"description\":\"http://ks:5000/v3/x\"}","links":{"related":"http://ks:5000/v3/x"}}}`},
		{"list links after the credentials",
			`{"credentials":[{"links":{"self":"http://ks/v3/credentials/a"}}],"links":{"self":"http://ks/v3/credentials"}}`,
			`{"credentials":[{"links":{"self":"https://bridge.example:8443/v3/credentials/a"}}],"links":{"self":"https://bridge.example:8443/v3/credentials"}}`},
		{"not JSON", `<html>`, `<html>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(RewriteLinks(nil, []byte(tc.in), base))
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if tc.in[0] == '{' && !json.Valid([]byte(got)) {
				t.Fatal("output is not JSON")
			}
		})
	}
}

func TestTraceContextChecks(t *testing.T) {
	good := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{good, true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true},
		{good + "-x", false}, // version 00 is exactly 55
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e473", false},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-" + string(make([]byte, 60000)), false},
	} {
		if got := ValidTraceparent(tc.v); got != tc.ok {
			t.Errorf("ValidTraceparent(%.70q) = %v", tc.v, got)
		}
	}
	long := "a=1"
	for i := 0; i < 32; i++ {
		long += ",k" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "=v"
	}
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", true},
		{"tenant@vendor=x, other=y", true},
		{"", false},
		{"UPPER=x", false},
		{"a=b=c", false},
		{"a=\x01", false},
		{long, false}, // 33 members
		{"a=" + string(make([]byte, 600)), false},
	} {
		if got := ValidTracestate(tc.v); got != tc.ok {
			t.Errorf("ValidTracestate(%.70q) = %v", tc.v, got)
		}
	}
}
