package migrate_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbridge/credbridge/app"
	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/migrate"
	"github.com/credbridge/credbridge/translate"
)

// benchMirror is a mirror with a file journal toward a Keystone reference
// server over loopback HTTP, with n users (the reference quota is 2 keys each).
func benchMirror(b *testing.B, n int) (*migrate.Mirror, *emulator.Store) {
	users := []emulator.User{{ID: "u-svc", Name: "svc", ProjectID: "p", Roles: []string{"admin"}, Tokens: []string{"svc-token"}}}
	for i := 0; i < n; i++ {
		users = append(users, emulator.User{ID: fmt.Sprintf("u-%d", i), Name: fmt.Sprintf("n%d", i), ProjectID: "p"})
	}
	sec := emulator.NewEC2Blob(emulator.NewDirectory(users), true)
	srv := httptest.NewServer(sec.Handler())
	b.Cleanup(srv.Close)
	dir := b.TempDir()
	tok := filepath.Join(dir, "tok")
	_ = os.WriteFile(tok, []byte("svc-token"), 0o600)
	cfg := migrate.Config{Mode: migrate.ModeMirror, Journal: "file:" + filepath.Join(dir, "j.db")}
	cfg.Secondary.Dialect, cfg.Secondary.Flavor, cfg.Secondary.URL = "ec2blob", "keystone", srv.URL
	cfg.Secondary.Auth.TokenFile = tok
	cfg.Defaults()
	back, err := app.NewSecondary(cfg)
	if err != nil {
		b.Fatal(err)
	}
	j, err := migrate.OpenFile(cfg.JournalPath())
	if err != nil {
		b.Fatal(err)
	}
	m, err := migrate.New(migrate.Options{Config: cfg, Backend: back, Journal: j, Key: []byte(strings.Repeat("k", 32))})
	if err != nil {
		b.Fatal(err)
	}
	m.Start()
	b.Cleanup(func() { _ = m.Close(context.Background()) })
	return m, sec.Store
}

func create(i int) migrate.Write {
	ak, sk := translate.NewKeyPair()
	return migrate.Write{Op: translate.OpCreate, Key: translate.Cred{Access: ak, Secret: sk, UserID: fmt.Sprintf("u-%d", i),
		Status: translate.StatusActive}, Caller: migrate.Caller{UserID: "u-svc", ProjectID: "p"}}
}

// BenchmarkJournalAppendApply: writes journaled (fsynced, from 16 clients at
// once) and applied to the secondary over HTTP; writes/s counts both ends.
func BenchmarkJournalAppendApply(b *testing.B) {
	m, store := benchMirror(b, b.N)
	var next atomic.Int64
	start := time.Now()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := m.Wrote(context.Background(), create(int(next.Add(1)-1))); err != nil {
				b.Error(err)
			}
		}
	})
	for len(store.Keys(nil)) < b.N {
		time.Sleep(20 * time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
}

// BenchmarkMirrorCreateOverhead is what mirror adds to a client's create: the
// journal append (fsync included) at a fixed 200 writes/s while the worker
// applies; it reports the append's p50 and p99.
func BenchmarkMirrorCreateOverhead(b *testing.B) {
	m, _ := benchMirror(b, b.N)
	lat := make([]time.Duration, 0, b.N)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		t0 := time.Now()
		if err := m.Wrote(context.Background(), create(i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
