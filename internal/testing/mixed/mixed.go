// Package mixed drives a bridge with mixed key operations from all three
// client dialects — creates, gets, lists, deletes and, a third of the time,
// updates (each a GET then a PATCH or PUT upstream) — and counts what failed.
// The same driver runs against the reference servers and a real Keystone.
package mixed

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/translate"
)

// Caller is one worker's identity: its token, user and project.
type Caller struct{ Token, UserID, ProjectID string }

// Result counts the operations sent and what went wrong.
type Result struct {
	Ops, Updates, Failures int
	// ByStatus counts the answers, "create 201" and so on.
	ByStatus map[string]int
	// Failed lists the first failures, what was sent and answered.
	Failed []string
	Took   time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%d operations (%d updates) in %s, %d failures %v", r.Ops, r.Updates, r.Took.Round(time.Millisecond), r.Failures, r.ByStatus)
}

// cycle is one key's life: a third of its operations are updates.
var cycle = []string{"create", "update", "get", "update", "list", "delete"}

var client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// Run sends n operations to the bridge at base, one worker per caller, each
// holding one key at a time; up is the dialect the bridge's upstream speaks.
func Run(base string, up translate.Side, callers []Caller, n int) Result {
	res := Result{ByStatus: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w, c := range callers {
		share := n / len(callers)
		if w < n%len(callers) {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk := &worker{base: base, up: up, c: c, rng: rand.New(rand.NewPCG(uint64(w), 13))}
			for i := 0; i < share; i++ {
				op, st, ok, detail := wk.step(cycle[i%len(cycle)])
				mu.Lock()
				res.Ops++
				res.ByStatus[fmt.Sprintf("%s %d", op, st)]++
				if op == "update" {
					res.Updates++
				}
				if !ok {
					res.Failures++
					if len(res.Failed) < 10 {
						res.Failed = append(res.Failed, detail)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Took = time.Since(start)
	return res
}

type worker struct {
	base     string
	up       translate.Side
	c        Caller
	rng      *rand.Rand
	ak, sk   string // the key held, "" none
	status   string // its status as last set: active | inactive
	versions int
}

var sides = []translate.Side{translate.SideOscred, translate.SideIBM, translate.SideKeystone}

// step runs op from a random client dialect; ok is false on any answer but
// the one the operation must get (a create when no key is held, a get that
// does not show the last update's status).
func (w *worker) step(op string) (string, int, bool, string) {
	side := sides[w.rng.IntN(len(sides))]
	if w.ak == "" {
		op = "create" // the previous create failed: try again
	}
	var method, path, body string
	want := http.StatusOK
	switch op {
	case "create":
		method, path, body, want = http.MethodPost, bt.Base(side), CreateBody(side, w.up, w.c.UserID, w.c.ProjectID, "v0"), http.StatusCreated
	case "update":
		w.versions++
		w.status = []string{"active", "inactive"}[w.rng.IntN(2)]
		method, path, body = bt.UpdateMethod(side), bt.KeyPath(side, w.ak), UpdateBody(side, w.ak, w.sk, w.c.UserID, w.status, fmt.Sprintf("v%d", w.versions))
	case "get":
		method, path = http.MethodGet, bt.KeyPath(side, w.ak)
	case "list":
		method, path = http.MethodGet, bt.Base(side)
	case "delete":
		method, path, want = http.MethodDelete, bt.KeyPath(side, w.ak), http.StatusNoContent
	}
	st, answer, err := w.send(method, path, bt.CType(side), body)
	detail := fmt.Sprintf("%s %s %s -> %d %v %.300s", op, side, method, st, err, answer)
	ok := err == nil && st == want
	switch {
	case !ok:
	case op == "create":
		w.ak, w.sk, w.status = KeyOf(side, answer)
		ok = w.ak != ""
	case op == "get":
		_, _, status := KeyOf(side, answer)
		ok = status == w.status
		detail += " (want status " + w.status + ")"
	case op == "delete":
		w.ak = ""
	}
	return op, st, ok, detail
}

func (w *worker) send(method, path, ctype, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Auth-Token", w.c.Token)
	if body != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// CreateBody is what a client of side sends to create a key for user in
// project, toward an upstream of up: Keystone's clients bring their pair
// and project, except toward oscred, which refuses a pair.
func CreateBody(side, up translate.Side, user, project, desc string) string {
	switch side {
	case translate.SideOscred:
		return `{"credential":{"user_id":"` + user + `","description":"` + desc + `"}}`
	case translate.SideIBM:
		return `{"credential":{"user_id":"` + user + `","type":"ec2","blob":{"description":"` + desc + `"}}}`
	}
	if up == translate.SideOscred {
		return `{"credential":{"user_id":"` + user + `","type":"ec2","blob":"{\"description\":\"` + desc + `\"}"}}`
	}
	ak, sk := translate.NewKeyPair()
	return `{"credential":{"user_id":"` + user + `","project_id":"` + project + `","type":"ec2","blob":"{\"access\":\"` + ak +
		`\",\"secret\":\"` + sk + `\",\"description\":\"` + desc + `\"}"}}`
}

// UpdateBody sets a key's status (active | inactive) and description as a
// client of side does; a Keystone client sends the blob alone, as Keystone's
// PATCH requires.
func UpdateBody(side translate.Side, ak, sk, user, status, desc string) string {
	ec2 := map[string]string{"active": "Active", "inactive": "Inactive"}[status]
	switch side {
	case translate.SideOscred:
		return `{"credential":{"status":"` + status + `","description":"` + desc + `"}}`
	case translate.SideIBM:
		return `{"credential":{"blob":{"access":"` + ak + `","secret":"` + sk + `","status":"` + ec2 + `","description":"` + desc + `"},"type":"ec2","user_id":"` + user + `"}}`
	}
	return `{"credential":{"blob":"{\"access\":\"` + ak + `\",\"secret\":\"` + sk + `\",\"status\":\"` + ec2 + `\",\"description\":\"` + desc + `\"}"}}`
}

// KeyOf reads access, secret and status (lower case) from a one-key answer
// to a client of side.
func KeyOf(side translate.Side, answer []byte) (ak, sk, status string) {
	r := &bt.Resp{Body: answer}
	m := r.Cred()
	if side != translate.SideOscred {
		m = bt.Blob(m)
	}
	ak, _ = m["access"].(string)
	sk, _ = m["secret"].(string)
	status, _ = m["status"].(string)
	if status == "" && ak != "" {
		status = "active" // a Keystone blob without status means active
	}
	return ak, sk, strings.ToLower(status)
}
