package policy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/policy"
)

// A validation (a GET) that lands on a kept-alive connection the identity
// service closed as it arrived is sent again on a new one, and succeeds.
func TestValidateResentOnLostAnswer(t *testing.T) {
	idn := emulator.NewIdentity(emulator.NewDirectory(emulator.DemoUsers()))
	srv := httptest.NewUnstartedServer(idn.Handler())
	emulator.Conns{LoseAnswer: func(_ *http.Request, nth int64) bool { return nth > 1 }}.Apply(srv.Config)
	srv.Start()
	defer srv.Close()
	c := policy.NewIdentityClient(policy.IdentityConfig{URL: srv.URL, Timeout: 5 * time.Second}, "", nil)
	for i := 0; i < 3; i++ {
		if id, err := c.Validate(context.Background(), "demo-alice-token"); err != nil || id.UserID != "u-alice" {
			t.Fatalf("validation %d: %+v %v", i, id, err)
		}
	}
	if got := idn.Requests(); got != 5 {
		t.Fatalf("identity service saw %d validations, want 5 (two lost ones sent again)", got)
	}
}
