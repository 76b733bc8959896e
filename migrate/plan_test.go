package migrate

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbridge/credbridge/translate"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func cred(ak, sk, user string, st translate.Status, desc string) translate.Cred {
	return translate.Cred{Access: ak, Secret: sk, UserID: user, Status: st, Description: desc, HasDescription: desc != ""}
}

// inventory has one key of each kind of difference.
func inventory() *Inventory {
	return &Inventory{
		Users: []UserKeys{
			{User: "u-1", Mapped: "u-1",
				Primary: []translate.Cred{
					cred("AKSAME", "s1", "u-1", translate.StatusActive, "same"),
					cred("AKSTATUS", "s2", "u-1", translate.StatusInactive, "x"),
				},
				Secondary: []translate.Cred{
					cred("AKSAME", "s1", "u-1", translate.StatusActive, "same"),
					cred("AKSTATUS", "s2", "u-1", translate.StatusActive, "x"),
				}},
			{User: "u-2", Mapped: "u-2",
				Primary: []translate.Cred{
					cred("AKMISSING", "s3", "u-2", translate.StatusActive, ""),
					cred("AKNOSECRET", "", "u-2", translate.StatusActive, ""),
					cred("AKSECRET", "primary-secret", "u-2", translate.StatusActive, ""),
				},
				Secondary: []translate.Cred{
					cred("AKSECRET", "secondary-secret", "u-2", translate.StatusActive, ""),
					cred("AKEXTRA", "s5", "u-2", translate.StatusActive, ""),
				}},
		},
		Unmapped: []string{"u-9"},
	}
}

func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := "testdata/" + name
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(got)+"\n" {
		t.Fatalf("%s differs (go test -update rewrites it):\n%s", path, got)
	}
}

// The report and plan are golden: a CI gate parses them, so their shape and
// order must not drift; no secret appears, only fingerprints.
func TestVerifyAndPlanGolden(t *testing.T) {
	fp := NewFingerprinter([]byte("a fixed key for golden fingerprints, 32+"))
	p, s := Endpoint{Dialect: "ec2blob", Flavor: "ibm", URL: "http://primary"}, Endpoint{Dialect: "ec2blob", Flavor: "keystone", URL: "http://secondary"}
	r := inventory().Verify(fp, nil, p, s)
	golden(t, "verify.golden.json", r)
	plan := inventory().Plan(fp, nil, p, s)
	golden(t, "plan.golden.json", plan)
	raw, _ := json.Marshal([]any{r, plan})
	for _, secret := range []string{"s1", "s2", "s3", "s5", "primary-secret", "secondary-secret"} {
		if strings.Contains(string(raw), `"`+secret+`"`) {
			t.Fatalf("secret %q in the output", secret)
		}
	}
	if plan.Converged() || plan.Actions(false) != 2 || plan.Actions(true) != 3 {
		t.Fatalf("plan: converged %v, actions %d/%d; want 2 (create AKMISSING, update AKSTATUS), 3 with prune", plan.Converged(), plan.Actions(false), plan.Actions(true))
	}
	if len(plan.work) != 2 || len(plan.work[1].create) != 1 || plan.work[1].create[0].Secret != "s3" || plan.work[0].update[0].Secret != "" {
		t.Fatalf("work = %+v; a create carries the secret, an update never does", plan.work)
	}
}

// backendFunc is a Backend whose answers the test decides: the wrapper's own
// logic (slots, back-off) is under test, not HTTP.
type backendFunc func(r Call) (int, []byte, error)

func (f backendFunc) Side() translate.Side { return translate.SideIBM }
func (f backendFunc) URL() string          { return "http://x" }
func (f backendFunc) Call(_ context.Context, r Call) (int, []byte, error) {
	return f(r)
}

func TestLimitedBoundsAndBacksOff(t *testing.T) {
	var inFlight, most, calls atomic.Int64
	b := backendFunc(func(Call) (int, []byte, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		if calls.Add(1)%3 == 0 {
			return http.StatusTooManyRequests, nil, nil
		}
		return http.StatusOK, nil, nil
	})
	l := NewLimited(b, 3)
	l.Backoff = time.Millisecond
	var throttled atomic.Int64
	l.Throttled = func() { throttled.Add(1) }
	done := make(chan int, 30)
	for i := 0; i < 30; i++ {
		go func() {
			st, _, _ := l.Call(context.Background(), Call{})
			done <- st
		}()
	}
	for i := 0; i < 30; i++ {
		if st := <-done; st != http.StatusOK {
			t.Fatalf("a call ended %d: a 429 should be waited out", st)
		}
	}
	if most.Load() > 3 || throttled.Load() == 0 {
		t.Fatalf("%d in flight (bound 3), %d throttled", most.Load(), throttled.Load())
	}
	always := NewLimited(backendFunc(func(Call) (int, []byte, error) { return http.StatusTooManyRequests, nil, nil }), 1)
	always.Backoff, always.Attempts = time.Millisecond, 3
	if st, _, _ := always.Call(context.Background(), Call{}); st != http.StatusTooManyRequests {
		t.Fatalf("after its attempts a throttled call must end with the 429, got %d", st)
	}
}
