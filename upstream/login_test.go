package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/credbridge/credbridge/emulator"
)

// A renewal login that lands on a kept-alive connection the identity service
// closed as it arrived (here: did the login, then closed without answering) is
// sent again on a new connection: a second login only issues a second token.
func TestKeystoneLoginResentOnLostAnswer(t *testing.T) {
	dir := emulator.NewDirectory(emulator.DemoUsers())
	dir.TokenTTL = 10 * time.Minute
	idn := emulator.NewIdentity(dir)
	srv := httptest.NewUnstartedServer(idn.Handler())
	emulator.Conns{LoseAnswer: func(_ *http.Request, nth int64) bool { return nth > 1 }}.Apply(srv.Config)
	srv.Start()
	defer srv.Close()
	k := NewKeystoneLogin(Account{URL: srv.URL, UserName: "credbridge", UserDomain: "demo"}, "svc-pass", 5*time.Second, nil)
	now := time.Now()
	k.now = func() time.Time { return now }
	first, err := k.UpstreamToken(context.Background(), "caller")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(9 * time.Minute) // past renewal: logs in again, on the kept connection
	second, err := k.UpstreamToken(context.Background(), "caller")
	if err != nil || second == first {
		t.Fatalf("renewal: %v (same token: %v)", err, second == first)
	}
	if got := idn.Requests(); got != 3 {
		t.Fatalf("identity service saw %d logins, want 3 (the lost one sent again)", got)
	}
	if tr := k.hc.Transport.(*http.Transport); tr.IdleConnTimeout != DefaultIdleTimeout {
		t.Fatalf("login transport keeps idle connections %s", tr.IdleConnTimeout)
	}
}
