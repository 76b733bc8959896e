//go:build soak

package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/internal/testing/redistest"
)

// TestSoakMigration is make soak's migration phase: mixed writes from many
// users through a mirroring bridge while the secondary, Redis (the token
// cache) and the bridge itself (restarted on its journal) fail in turn. At the
// end every primary key is on the secondary with its secret, status and
// description, and nothing else is; the count checked is printed.
func TestSoakMigration(t *testing.T) {
	dur := 40 * time.Second
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d/3 > dur {
			dur = d / 3
		}
	}
	const nUsers = 24
	users := []emulator.User{{ID: "u-svc", Name: "svc", ProjectID: "p", Roles: []string{"admin"}, Tokens: []string{"demo-service-token"}}} // migrationEnv's secondary token
	for i := 0; i < nUsers; i++ {
		users = append(users, emulator.User{ID: fmt.Sprintf("u-%d", i), Name: fmt.Sprintf("n%d", i), ProjectID: "p", Tokens: []string{fmt.Sprintf("tok-%d", i)}})
	}
	dir := emulator.NewDirectory(users)
	idSrv := httptest.NewServer(emulator.NewIdentity(dir).Handler())
	t.Cleanup(idSrv.Close)
	primary := emulator.NewOscred(dir)
	upSrv := httptest.NewServer(primary.Handler())
	t.Cleanup(upSrv.Close)
	sec := newSecondaryCloud(t, dir, true)
	rdb := redistest.Start(t)
	env := append(migrationEnv(t, sec, "mirror", "file:"+filepath.Join(t.TempDir(), "journal.db")),
		"CREDBRIDGE_LISTEN="+freeAddr(t), "CREDBRIDGE_ADMIN_LISTEN="+freeAddr(t), "CREDBRIDGE_UPSTREAM_URL="+upSrv.URL,
		"CREDBRIDGE_IDENTITY_URL="+idSrv.URL, "CREDBRIDGE_MIGRATION_MAX_LAG=30s")
	env = append(env, redisEnv(t, rdb)...)
	cfg, err := config.Load("", env)
	if err != nil {
		t.Fatal(err)
	}
	b := &soakBridge{t: t, cfg: cfg}
	b.start()
	t.Cleanup(b.stop)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var acked atomic.Int64
	for i := 0; i < nUsers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			soakMigrationWorker(t, "http://"+cfg.Listen, i, stop, &acked)
		}(i)
	}
	faults(t, dur, sec, rdb, b)
	close(stop)
	wg.Wait()
	sec.up()
	drained := time.Now().Add(cfg.Migration.MaxLag)
	for migrationStatus(t, b.current()).Journal.Pending != 0 {
		if time.Now().After(drained) {
			t.Fatalf("the backlog did not drain within max_lag: %s", migrationStatus(t, b.current()).Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	checked := compareStores(t, primary.Store, sec.store)
	if st := migrationStatus(t, b.current()); len(st.Divergences) != 0 {
		t.Errorf("divergences after a clean run: %s", st.Raw)
	}
	fmt.Printf("migration soak: %d acknowledged writes, %d primary keys checked on the secondary (secret, status, description)\n", acked.Load(), checked)
	if checked == 0 || acked.Load() < int64(nUsers) {
		t.Fatalf("too little traffic to judge: %d writes, %d keys", acked.Load(), checked)
	}
}

// faults takes the secondary down, Redis down and the bridge through a restart,
// one after another, with healthy gaps between.
func faults(t *testing.T, dur time.Duration, sec *secondaryCloud, rdb *redistest.Server, b *soakBridge) {
	step := dur / 8
	time.Sleep(step)
	sec.down()
	time.Sleep(step)
	sec.up()
	time.Sleep(step)
	rdb.Stop()
	time.Sleep(step)
	rdb.Restart()
	time.Sleep(step)
	b.stop()
	b.start()
	time.Sleep(step)
	sec.down()
	b.stop()
	b.start()
	time.Sleep(step)
	sec.up()
	time.Sleep(step)
}

// soakBridge restarts one bridge on fixed addresses and one journal file.
type soakBridge struct {
	t   *testing.T
	cfg *config.Config
	mu  sync.Mutex
	rt  *Runtime
}

func (b *soakBridge) start() {
	var rt *Runtime
	var err error
	for i := 0; i < 100; i++ { // the old listeners may take a moment to go
		if rt, err = Start(b.cfg, Options{Log: slog.New(slog.DiscardHandler)}); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	b.rt = rt
	b.mu.Unlock()
}

func (b *soakBridge) stop() {
	b.mu.Lock()
	rt := b.rt
	b.rt = nil
	b.mu.Unlock()
	if rt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rt.Shutdown(ctx)
	}
}

func (b *soakBridge) current() *Runtime {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rt
}

// soakMigrationWorker is one user creating, updating and deleting their keys
// (at most the quota of two) until stop.
func soakMigrationWorker(t *testing.T, base string, i int, stop <-chan struct{}, acked *atomic.Int64) {
	tok := fmt.Sprintf("tok-%d", i)
	var keys []string
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		switch op := rand.IntN(10); {
		case len(keys) < 2 && (op < 4 || len(keys) == 0):
			r := soakDo(base, http.MethodPost, oscredPath, tok, `{"credential":{"description":"d0"}}`)
			if r != nil && r.Status == http.StatusCreated {
				keys = append(keys, r.Cred()["access"].(string))
				acked.Add(1)
			}
		case op < 8:
			ak := keys[rand.IntN(len(keys))]
			st := []string{"active", "inactive"}[rand.IntN(2)]
			r := soakDo(base, http.MethodPut, oscredPath+"/"+ak, tok, fmt.Sprintf(`{"credential":{"status":%q,"description":"d%d"}}`, st, n))
			if r != nil && r.Status == http.StatusOK {
				acked.Add(1)
			}
		default:
			k := rand.IntN(len(keys))
			r := soakDo(base, http.MethodDelete, oscredPath+"/"+keys[k], tok, "")
			if r != nil && (r.Status == http.StatusNoContent || r.Status == http.StatusNotFound) {
				keys = append(keys[:k], keys[k+1:]...)
				acked.Add(1)
			}
		}
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
	}
}

var soakClient = &http.Client{Timeout: 15 * time.Second}

// soakDo is one request; nil when no answer came (the bridge restarting).
func soakDo(base, method, path, token, body string) *bt.Resp {
	req, _ := http.NewRequest(method, base+path, nil)
	if body != "" {
		req, _ = http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", oscredJSON)
	}
	req.Header.Set("X-Auth-Token", token)
	resp, err := soakClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	r := &bt.Resp{Status: resp.StatusCode}
	r.Body, _ = io.ReadAll(resp.Body)
	return r
}

// compareStores fails unless both stores hold the same keys with the same
// secret, owner, status and description; it returns how many it checked.
func compareStores(t *testing.T, primary, secondary *emulator.Store) int {
	p := primary.Keys(nil)
	s := map[string]emulator.Key{}
	for _, k := range secondary.Keys(nil) {
		s[k.AK] = k
	}
	for _, k := range p {
		o, ok := s[k.AK]
		switch {
		case !ok:
			t.Errorf("%s (%s) is not on the secondary", k.AK, k.UserID)
		case o.SK != k.SK || o.UserID != k.UserID || o.Active != k.Active || o.Description != k.Description:
			t.Errorf("%s differs: primary %s/%v/%q, secondary %s/%v/%q, same secret %v", k.AK,
				k.UserID, k.Active, k.Description, o.UserID, o.Active, o.Description, o.SK == k.SK)
		}
		delete(s, k.AK)
	}
	for ak := range s {
		t.Errorf("%s is on the secondary only", ak)
	}
	return len(p)
}
