package migrate

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/credbridge/credbridge/translate"
)

// refusing is a secondary no call may reach: these writes must stop before it.
type refusing struct{ t *testing.T }

func (r refusing) Side() translate.Side { return translate.SideKeystone }
func (r refusing) URL() string          { return "http://127.0.0.1:1" }
func (r refusing) Call(context.Context, Call) (int, []byte, error) {
	r.t.Error("a call reached the secondary")
	return 0, nil, nil
}

// TestWroteRefusesWhatItCannotReplicate: an access key outside the id
// alphabet (it would become a path segment on the secondary), a user the map
// does not list, and a create without its secret are not journaled; each is a
// divergence instead.
func TestWroteRefusesWhatItCannotReplicate(t *testing.T) {
	j, err := OpenFile(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	users, err := LoadUserMap(file(t, "- {primary: u-1, secondary: s-1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Mode: ModeMirror}
	cfg.Defaults()
	m, err := New(Options{Config: cfg, Backend: refusing{t}, Journal: j, Users: users, Key: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	for _, tc := range []struct {
		w    Write
		kind string
	}{
		{Write{Op: translate.OpCreate, Key: translate.Cred{Access: "../../v3/users", Secret: "s", UserID: "u-1"}}, KindSecondaryError},
		{Write{Op: translate.OpDelete, Key: translate.Cred{Access: "AK?x=1"}}, KindSecondaryError},
		{Write{Op: translate.OpCreate, Key: translate.Cred{Access: "AK1", Secret: "s", UserID: "u-9"}}, KindUnmappedUser},
		{Write{Op: translate.OpCreate, Key: translate.Cred{Access: "AK2", UserID: "u-1"}}, KindNeedsRekey},
	} {
		before := len(m.divs.snapshot())
		if err := m.Wrote(context.Background(), tc.w); err != nil {
			t.Fatal(err)
		}
		d := m.divs.snapshot()
		if len(d) != before+1 || d[len(d)-1].Kind != tc.kind {
			t.Fatalf("%+v: divergences %+v, want one %s", tc.w.Key, d, tc.kind)
		}
	}
	if n, _, _ := j.Stats(context.Background()); n != 0 {
		t.Fatalf("%d entries journaled", n)
	}
	if err := m.Wrote(context.Background(), Write{Op: translate.OpCreate, Key: translate.Cred{Access: "AK3", Secret: "s", UserID: "u-1"}}); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := j.Stats(context.Background()); n != 1 {
		t.Fatalf("a mapped create was not journaled (%d)", n)
	}
}

// recorder is a secondary that records the paths it is asked for and has no key.
type recorder struct {
	mu    sync.Mutex
	paths []string
}

func (r *recorder) Side() translate.Side { return translate.SideIBM }
func (r *recorder) URL() string          { return "http://127.0.0.1:1" }
func (r *recorder) Call(_ context.Context, c Call) (int, []byte, error) {
	r.mu.Lock()
	r.paths = append(r.paths, c.Path+"?"+c.Query)
	r.mu.Unlock()
	return http.StatusNotFound, []byte(`{"error":{"code":404}}`), nil
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string{}, r.paths...)
}

// pooled returns s as a string over a buffer of its own, and the buffer: what
// the proxy hands the mirror (the upstream's answer, read into a pooled buffer
// the next request overwrites).
func pooled(s string) (string, []byte) {
	b := []byte(s)
	return unsafe.String(&b[0], len(b)), b
}

func scribble(bufs ...[]byte) {
	for _, b := range bufs {
		for i := range b {
			b[i] = 'X'
		}
	}
}

// TestMirrorKeepsItsOwnCopies: what the mirror keeps past the call — a queued
// shadow read, a divergence in /migration — stays what it was told after the
// caller's buffers are overwritten. (The shadow once asked the secondary for
// `:"AKTE","`, the next answer's bytes where a queued read's access key was.)
func TestMirrorKeepsItsOwnCopies(t *testing.T) {
	users, err := LoadUserMap(file(t, "- {primary: u-1, secondary: s-1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := OpenFile(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	sec := &recorder{}
	cfg := Config{Mode: ModeMirror}
	cfg.Defaults()
	m, err := New(Options{Config: cfg, Backend: sec, Journal: j, Users: users, Key: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())

	// Queued before the comparers run: the caller's buffers are overwritten first.
	access, b1 := pooled("AKREAD")
	keyAccess, b2 := pooled("AKREAD")
	owner, b3 := pooled("u-1")
	user, b4 := pooled("u-1")
	m.Read(context.Background(), Read{Op: translate.OpGet, Access: access,
		Keys: []translate.Cred{{Access: keyAccess, UserID: owner}}, Caller: Caller{UserID: user}})
	unmappedAK, b5 := pooled("AKUNMAPPED")
	unmappedUser, b6 := pooled("u-9")
	if err := m.Wrote(context.Background(), Write{Op: translate.OpCreate,
		Key: translate.Cred{Access: unmappedAK, Secret: "s", UserID: unmappedUser}}); err != nil {
		t.Fatal(err)
	}
	scribble(b1, b2, b3, b4, b5, b6)
	m.Start()

	deadline := time.Now().Add(10 * time.Second)
	for len(m.divs.snapshot()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("divergences %+v, want two", m.divs.snapshot())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, want := sec.seen(), []string{"/credentials/AKREAD?"}; !slices.Equal(got, want) {
		t.Fatalf("the secondary was asked for %q, want %q", got, want)
	}
	want := map[string]Divergence{
		KindUnmappedUser:       {Kind: KindUnmappedUser, Access: "AKUNMAPPED", Owner: "u-9", Op: "create"},
		KindMissingOnSecondary: {Kind: KindMissingOnSecondary, Access: "AKREAD", Owner: "s-1", Op: "get"},
	}
	for _, d := range m.divs.snapshot() {
		d.At = ""
		if d != want[d.Kind] {
			t.Errorf("divergence %+v, want %+v", d, want[d.Kind])
		}
	}
}
