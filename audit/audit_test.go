package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

var sample = Event{
	Time: time.Date(2026, 12, 1, 21, 40, 0, 123456000, time.UTC), Action: ActionUpdate, Status: 403, Code: "forbidden",
	UserID: "u-bob", ProjectID: "p-1", ClientAddr: "127.0.0.1:50412", AccessKey: "AK1", Owner: "u-alice",
	ClientDialect: "ec2blob-ibm", Upstream: "oscred", RequestID: "r-1", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
}

func TestEventShape(t *testing.T) {
	got := string(sample.AppendJSON(nil))
	want := `{"time":"2026-12-01T21:40:00.123456Z","action":"update","outcome":"denied","reason_status":403,"reason_code":"forbidden",` +
		`"initiator_user_id":"u-bob","initiator_project_id":"p-1","initiator_address":"127.0.0.1:50412",` +
		`"target_access_key":"AK1","target_owner":"u-alice","client_dialect":"ec2blob-ibm","upstream":"oscred",` +
		`"request_id":"r-1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}` + "\n"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// Empty fields are left out; the outcome follows the status.
	e := Event{Time: sample.Time, Action: ActionList, Status: 200}
	if got := string(e.AppendJSON(nil)); got != `{"time":"2026-12-01T21:40:00.123456Z","action":"list","outcome":"success","reason_status":200}`+"\n" {
		t.Fatal(got)
	}
}

func TestOutcome(t *testing.T) {
	for status, want := range map[int]string{200: "success", 201: "success", 204: "success", 401: "denied", 403: "denied",
		400: "failure", 404: "failure", 409: "failure", 500: "failure", 503: "failure", 0: "failure"} {
		if got := Outcome(status); got != want {
			t.Errorf("%d: %s, want %s", status, got, want)
		}
	}
}

// hostile are strings a client can put in a user id, an access key or a
// request id.
var hostile = []string{
	`a"b`, `a\b`, "line1\nline2", "cr\rlf", "tab\t", "nul\x00", "bell\x07", "del\x7f",
	"\xff\xfe", "ok\xc3", "\xe2\x80", "ls\u2028ps\u2029", "é日本🙂", `"},"outcome":"success`,
	"\xed\xa0\x80", // an encoded surrogate: invalid UTF-8
	strings.Repeat("x", 70<<10),
}

func TestHostileStringsStayOneValidLine(t *testing.T) {
	for i, s := range hostile {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			e := sample
			e.UserID, e.AccessKey, e.RequestID = s, s, s
			line := e.AppendJSON(nil)
			checkLine(t, line)
			var got map[string]any
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatal(err)
			}
			if got["outcome"] != "denied" {
				t.Fatalf("outcome %v: a value broke out of its string", got["outcome"])
			}
			if utf8.ValidString(s) && got["initiator_user_id"] != s {
				t.Fatalf("valid UTF-8 %q came back as %q", s, got["initiator_user_id"])
			}
		})
	}
}

// checkLine: one line, valid UTF-8, valid JSON, no raw U+2028/U+2029.
func checkLine(t *testing.T, line []byte) {
	t.Helper()
	if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	if !utf8.Valid(line) || !json.Valid(line) {
		t.Fatalf("invalid: %q", line)
	}
	if bytes.ContainsRune(line, '\u2028') || bytes.ContainsRune(line, '\u2029') {
		t.Fatalf("raw line separator: %q", line)
	}
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%v: %q", err, sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

func TestFileWrittenAndReadBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(`{"earlier":"line"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := Open(Config{File: path})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{ActionCreate, ActionList, ActionGet, ActionUpdate, ActionDelete, ActionTemporaryKeys} {
		e := sample
		e.Action = a
		w.Log(e)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Log(sample) // after Close: dropped, no panic
	lines := readLines(t, path)
	if len(lines) != 7 || lines[0]["earlier"] != "line" {
		t.Fatalf("appended? %v", lines)
	}
	for i, a := range []string{"create", "list", "get", "update", "delete", "temporary_keys"} {
		if l := lines[i+1]; l["action"] != a || l["initiator_user_id"] != "u-bob" || l["reason_status"] != 403.0 {
			t.Fatalf("line %d: %v", i+1, l)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func TestNewFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.log")
	w, err := Open(Config{File: path})
	if err != nil {
		t.Fatal(err)
	}
	w.Log(sample)
	_ = w.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%v %v", fi.Mode(), err)
	}
}

// TestFlushedWithinASecond: with no Close and no more events, the line still
// reaches the file, by the flusher's tick.
func TestFlushedWithinASecond(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(Config{File: path})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Log(sample)
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Fatal("written at once: the test would not show the flusher works")
	}
	deadline := time.Now().Add(FlushInterval + 2*time.Second) // slack for a loaded machine
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); len(b) > 0 {
			checkLine(t, b)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("not flushed without Close")
}

func TestConcurrentLogWritesWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(Config{File: path})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 16, 500
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				e := sample
				e.RequestID = fmt.Sprintf("g%d-%d", g, i)
				e.UserID = strings.Repeat("u", (g*each+i)%300) // lines of many lengths cross buffer ends
				w.Log(e)
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	seen := map[any]bool{}
	for _, l := range lines {
		seen[l["request_id"]] = true
	}
	if len(lines) != goroutines*each || len(seen) != goroutines*each {
		t.Fatalf("%d lines, %d distinct, want %d", len(lines), len(seen), goroutines*each)
	}
}

func TestNilWriterIsOff(t *testing.T) {
	w, err := Open(Config{})
	if w != nil || err != nil {
		t.Fatalf("%v %v", w, err)
	}
	w.Log(sample)
	if w.Flush() != nil || w.Close() != nil {
		t.Fatal("nil writer")
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteErrorReported(t *testing.T) {
	w := NewWriter(failing{}, time.Hour)
	w.Log(sample)
	if err := w.Close(); err == nil {
		t.Fatal("a failed write went unreported")
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		file string
		ok   bool
	}{
		{"", true}, {"-", true}, {filepath.Join(dir, "a.log"), true},
		{filepath.Join(dir, "missing", "a.log"), false}, {dir, false},
	} {
		err := Config{File: c.file}.Validate()
		if (err == nil) != c.ok || (err != nil && !strings.Contains(err.Error(), "audit.file")) {
			t.Errorf("%q: %v", c.file, err)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, s := range hostile[:len(hostile)-1] {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, user, key string) {
		e := sample
		e.UserID, e.AccessKey = user, key
		line := e.AppendJSON(nil)
		checkLine(t, line)
		var got map[string]any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(user) && user != "" && got["initiator_user_id"] != user {
			t.Fatalf("%q came back as %q", user, got["initiator_user_id"])
		}
		if got["outcome"] != "denied" || got["action"] != "update" {
			t.Fatalf("fields changed: %v", got)
		}
	})
}

// TestLogDoesNotAllocate: an event costs the request no allocation (the
// encoding reuses the writer's scratch buffer).
func TestLogDoesNotAllocate(t *testing.T) {
	w := NewWriter(discard{}, time.Hour)
	defer w.Close()
	if n := testing.AllocsPerRun(500, func() { w.Log(sample) }); n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
}

func BenchmarkLog(b *testing.B) {
	w := NewWriter(discard{}, FlushInterval)
	defer w.Close()
	b.ReportAllocs()
	for b.Loop() {
		w.Log(sample)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
