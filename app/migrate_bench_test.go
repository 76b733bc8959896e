package app

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkMigrateSync10k is #16's scale figure: an IBM-style primary holding
// 10,000 keys of 5,000 users (two each, the quota) and an empty Keystone
// secondary, each a reference server in a process of its own, and the real
// `credbridge migrate sync` then `verify` against them. It reports the wall
// time and peak RSS of each command (targets: sync < 60 s, verify < 30 s,
// RSS < 200 MiB). make migrate-bench runs it.
//
//	go test -run '^$' -bench MigrateSync10k -benchtime 1x ./app
func BenchmarkMigrateSync10k(b *testing.B) {
	const users, perUser = 5000, 2
	dir := b.TempDir()
	bin := buildBinary(b, dir)
	usersFile := filepath.Join(dir, "users.yaml")
	var u strings.Builder
	u.WriteString("users:\n- {id: u-svc, name: svc, domain_id: d, domain_name: d, project_id: p-demo, roles: [admin], tokens: [bench-admin-token]}\n")
	for i := 0; i < users; i++ {
		fmt.Fprintf(&u, "- {id: u-%05d, name: n%05d, domain_id: d, domain_name: d, project_id: p-demo, roles: [member]}\n", i, i)
	}
	write(b, usersFile, u.String())
	idn, old, nw := freeAddr(b), freeAddr(b), freeAddr(b)
	for _, args := range [][]string{{"identity", "--listen", idn}, {"ec2blob", "--flavor", "ibm", "--listen", old}, {"ec2blob", "--flavor", "keystone", "--listen", nw}} {
		cmd := exec.Command(bin, append([]string{"emulate", "--users", usersFile}, args...)...)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	for _, a := range []string{idn, old, nw} {
		waitUp(b, "http://"+a+"/")
	}
	seedIBM(b, "http://"+old, users, perUser)
	write(b, filepath.Join(dir, "token"), "bench-admin-token")
	write(b, filepath.Join(dir, "journal.key"), journalKey)
	cfg := filepath.Join(dir, "migrate.yaml")
	write(b, cfg, fmt.Sprintf(`identity: {url: http://%s}
upstream: {dialect: ec2blob, flavor: ibm, url: http://%s, auth: {mode: token, token_file: %[3]s/token}}
migration: {mode: shadow, default_project: p-demo, journal_key_file: %[3]s/journal.key, sync_journal: %[3]s/sync.db,
  secondary: {dialect: ec2blob, flavor: keystone, url: http://%[4]s, auth: {mode: token, token_file: %[3]s/token}}}
`, idn, old, dir, nw))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		secs, rss, out := runMeasured(b, bin, "migrate", "sync", "--config", cfg)
		if !strings.Contains(out, fmt.Sprintf("created %d", users*perUser)) && i == 0 {
			b.Fatalf("sync did not create every key:\n%s", out)
		}
		b.ReportMetric(secs, "sync-s")
		b.ReportMetric(rss, "sync-peak-MiB")
		secs, rss, out = runMeasured(b, bin, "migrate", "verify", "--config", cfg)
		if !strings.Contains(out, fmt.Sprintf("matched %d", users*perUser)) {
			b.Fatalf("verify did not match every key:\n%s", out)
		}
		b.ReportMetric(secs, "verify-s")
		b.ReportMetric(rss, "verify-peak-MiB")
	}
}

func write(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func waitUp(tb testing.TB, url string) {
	tb.Helper()
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("%s did not come up", url)
}

// seedIBM creates perUser keys for each user on the IBM reference server
// through its API, as the administrator, 32 at a time.
func seedIBM(tb testing.TB, base string, users, perUser int) {
	tb.Helper()
	var wg sync.WaitGroup
	jobs := make(chan int)
	errs := make(chan error, 1)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				body := fmt.Sprintf(`{"credential":{"user_id":"u-%05d","type":"ec2","blob":{"access":"AKBENCH%07d","secret":"bench-secret-%07d-0123456789abcdefghijkl","description":"seeded"}}}`, n/perUser, n, n)
				req, _ := http.NewRequest(http.MethodPost, base+"/credentials", bytes.NewReader([]byte(body)))
				req.Header.Set("X-Auth-Token", "bench-admin-token")
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						err = fmt.Errorf("seeding key %d: %d", n, resp.StatusCode)
					}
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for n := 0; n < users*perUser; n++ {
		jobs <- n
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		tb.Fatal(err)
	default:
	}
}

// runMeasured runs bin and returns its wall time in seconds, its peak RSS in
// MiB (the kernel's ru_maxrss), and its stdout with runs of spaces squeezed.
func runMeasured(tb testing.TB, bin string, args ...string) (float64, float64, string) {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	secs := time.Since(start).Seconds()
	if err != nil {
		tb.Fatalf("%v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	rss := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024 // KiB on Linux
	return secs, rss, strings.Join(strings.Fields(out.String()), " ")
}
