package migrate

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

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
