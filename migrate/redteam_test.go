package migrate

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/translate"
)

// Red-team probes of plan and sync (issue #16), below the command line.

// httpBackend is a Keystone-style secondary over real HTTP (net/http) with
// the reference server's admin-capable service token.
type httpBackend struct{ url string }

func (h httpBackend) Side() translate.Side { return translate.SideKeystone }
func (h httpBackend) URL() string          { return h.url }
func (h httpBackend) Call(ctx context.Context, c Call) (int, []byte, error) {
	u := h.url + c.Path
	if c.Query != "" {
		u += "?" + c.Query
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, u, bytes.NewReader(c.Body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Auth-Token", "demo-service-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// redteamMirror is a sync mirror over a fresh journal toward b.
func redteamMirror(t *testing.T, b Backend) (*Mirror, *FileJournal) {
	t.Helper()
	j, err := OpenFile(filepath.Join(t.TempDir(), "sync.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Mode: ModeMirror, DefaultProject: "p-demo"}
	cfg.Defaults()
	m, err := New(Options{Config: cfg, Backend: b, Journal: j, Key: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m, j
}

// TestRedteamSyncAgainstAlways429Ends: a secondary that answers every create
// 429 forever. Sync ends — each write tried its attempts, each Limited call
// its own — with every write still journaled (Pending), none failed or lost,
// and in bounded time.
func TestRedteamSyncAgainstAlways429Ends(t *testing.T) {
	dir := emulator.NewDirectory(emulator.DemoUsers())
	ref := emulator.NewEC2Blob(dir, true)
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		ref.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	l := NewLimited(httpBackend{srv.URL}, 2)
	l.Backoff, l.MaxBackoff, l.Attempts = time.Millisecond, 4*time.Millisecond, 3
	m, j := redteamMirror(t, l)
	inv := &Inventory{Users: []UserKeys{{User: "u-alice", Mapped: "u-alice", Primary: []translate.Cred{
		cred("AKTHROTTLED01", "secret-one-xxxxxxxxxxxxxxxx", "u-alice", translate.StatusActive, "a"),
		cred("AKTHROTTLED02", "secret-two-xxxxxxxxxxxxxxxx", "u-alice", translate.StatusInactive, "b"),
	}}}}
	p := inv.Plan(m.fp, nil, Endpoint{}, EndpointOf(l))
	start := time.Now()
	r, err := m.Sync(context.Background(), p, SyncOptions{Attempts: 2})
	if err != nil || r.Pending != 2 || r.Created != 0 || len(r.Failed) != 0 {
		t.Fatalf("sync against a 429 forever: %+v, %v; want both writes pending", r, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("sync took %s against a 429 forever", took)
	}
	if got := posts.Load(); got != 2*2*3 {
		t.Fatalf("%d creates sent; want 2 keys x 2 attempts x 3 Limited tries", got)
	}
	if n, _, _ := j.Stats(context.Background()); n != 2 {
		t.Fatalf("%d entries journaled; want the 2 writes kept for the next run", n)
	}
}

// TestRedteamSyncRefusesWhatIsNotReplicable: a primary key whose access key
// is not an id (a path on the secondary), or whose owner the user map does
// not list, is failed by sync without a call to the secondary.
func TestRedteamSyncRefusesWhatIsNotReplicable(t *testing.T) {
	users, err := LoadUserMap(file(t, "- {primary: u-1, secondary: s-1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, j := redteamMirror(t, refusing{t})
	m.o.Users = users
	inv := &Inventory{Users: []UserKeys{{User: "u-1", Mapped: "s-1", Primary: []translate.Cred{
		cred("../../v3/users", "s-xxxxxxxxxxxxxxxxxxxxxxx", "u-1", translate.StatusActive, ""),
		cred("AK?user_id=u-admin", "s-xxxxxxxxxxxxxxxxxxxxxxx", "u-1", translate.StatusActive, ""),
		cred("AK%2F..%2Fx", "s-xxxxxxxxxxxxxxxxxxxxxxx", "u-1", translate.StatusActive, ""),
	}}}}
	p := inv.Plan(m.fp, users, Endpoint{}, Endpoint{})
	r, err := m.Sync(context.Background(), p, SyncOptions{})
	if err != nil || len(r.Failed) != 3 || r.Created != 0 {
		t.Fatalf("sync of keys that are not ids: %+v, %v; want three failed", r, err)
	}
	if n, _, _ := j.Stats(context.Background()); n != 0 {
		t.Fatalf("%d entries journaled for keys that cannot be replicated", n)
	}
}

// TestRedteamResumeLeavesForeignEntries: the sync journal holds an entry
// journaled for another secondary (the operator swapped the sides before the
// next run). Resume must not apply it here: it stays, counted pending, and
// sync then leaves that key alone.
func TestRedteamResumeLeavesForeignEntries(t *testing.T) {
	m, j := redteamMirror(t, refusing{t})
	e, ok := m.entry(context.Background(), Write{Op: translate.OpCreate, Key: cred("AKFOREIGN01", "secret-xxxxxxxxxxxxxxxxxxxx", "u-1", translate.StatusActive, "")})
	if !ok {
		t.Fatal("entry refused")
	}
	e.Target = "ec2blob-ibm http://the-old-cloud"
	if _, err := j.Append(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := m.Resume(ctx, SyncOptions{})
	if err != nil || r.Pending != 1 || !r.Journaled[e.KeyID] {
		t.Fatalf("resume of a foreign entry: %+v, %v; want it left pending", r, err)
	}
	inv := &Inventory{Users: []UserKeys{{User: "u-1", Mapped: "u-1", Primary: []translate.Cred{cred("AKFOREIGN01", "secret-xxxxxxxxxxxxxxxxxxxx", "u-1", translate.StatusActive, "")}}}}
	s, err := m.Sync(ctx, inv.Plan(m.fp, nil, Endpoint{}, Endpoint{}), SyncOptions{Journaled: r.Journaled})
	if err != nil || s.Created != 0 || len(s.Failed) != 0 {
		t.Fatalf("sync of a key with a foreign entry waiting: %+v, %v", s, err)
	}
}

// TestRedteamPlanJudgesOwnersAcrossUsers: the plan's answer to keys whose
// owner differs between users' lists (pure: the inventory as read).
func TestRedteamPlanJudgesOwnersAcrossUsers(t *testing.T) {
	k := func(ak, user string) translate.Cred {
		return cred(ak, "secret-"+ak+"-xxxxxxxxxxxxxxxx", user, translate.StatusActive, "")
	}
	for _, tc := range []struct {
		name                       string
		users                      []UserKeys
		creates, prunes, conflicts int
		matched                    int
	}{
		{"moved between users on the secondary", []UserKeys{
			{User: "u-1", Mapped: "u-1", Primary: []translate.Cred{k("AKX", "u-1")}},
			{User: "u-2", Mapped: "u-2", Secondary: []translate.Cred{k("AKX", "u-2")}},
		}, 0, 0, 1, 0},
		{"listed under two users on the primary", []UserKeys{
			{User: "u-1", Mapped: "u-1", Primary: []translate.Cred{k("AKX", "u-1")}},
			{User: "u-2", Mapped: "u-2", Primary: []translate.Cred{k("AKX", "u-2")}},
		}, 0, 0, 1, 0},
		{"a list naming another user's key", []UserKeys{
			{User: "u-1", Mapped: "u-1", Primary: []translate.Cred{k("AKX", "u-2")}},
		}, 0, 0, 1, 0},
		{"an honest secondary-only key", []UserKeys{
			{User: "u-1", Mapped: "u-1", Primary: []translate.Cred{k("AKA", "u-1")}, Secondary: []translate.Cred{k("AKA", "u-1"), k("AKB", "u-1")}},
		}, 0, 1, 0, 1},
		{"an honest missing key", []UserKeys{
			{User: "u-1", Mapped: "u-1", Primary: []translate.Cred{k("AKA", "u-1")}},
			{User: "u-2", Mapped: "u-2", Secondary: []translate.Cred{k("AKB", "u-2")}},
		}, 1, 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := &Inventory{Users: tc.users}
			p := inv.Plan(NewFingerprinter([]byte("k")), nil, Endpoint{}, Endpoint{})
			if len(p.Creates) != tc.creates || len(p.SecondaryOnly) != tc.prunes || len(p.Conflicts) != tc.conflicts || p.Keys.Matched != tc.matched {
				t.Fatalf("plan = creates %v, secondary only %v, conflicts %v, matched %d", p.Creates, p.SecondaryOnly, p.Conflicts, p.Keys.Matched)
			}
			for _, c := range p.Conflicts {
				if c.Kind != KindOwner || strings.Contains(c.Primary+c.Secondary, "secret-") {
					t.Fatalf("conflict %+v: want an owner conflict, no secret", c)
				}
			}
			r := inv.Verify(NewFingerprinter([]byte("k")), nil, Endpoint{}, Endpoint{})
			if want := tc.creates + tc.prunes + tc.conflicts; len(r.Divergences) != want {
				t.Fatalf("verify: %+v; want %d divergences", r.Divergences, want)
			}
		})
	}
}
