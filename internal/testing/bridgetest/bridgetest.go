// Package bridgetest starts a bridge in front of the reference servers, all over
// real HTTP on loopback, for the tests of several packages.
package bridgetest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/proxy"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
)

// Tokens of the demo users.
const (
	Admin = "demo-admin-token" // secu_admin
	Alice = "demo-alice-token" // u-alice, member
	Bob   = "demo-bob-token"   // u-bob, member
	TE    = "demo-te-token"    // te_admin: not a key admin
)

// Env is one bridge with its identity service and upstream.
type Env struct {
	T        testing.TB
	Dir      *emulator.Directory
	Identity *emulator.Identity
	// Upstream counts what reached the backend; Store is its state.
	Upstream interface{ Requests() int64 }
	// Received is every request the upstream got, as it got it.
	Received *Recorder
	Store    *emulator.Store
	UpSide   translate.Side
	Cfg      *config.Config
	Proxy    *proxy.Server
	URL      string
	IDURL    string
	UpURL    string
}

// Start builds an Env whose upstream speaks up. mutate may adjust the config
// (its URLs are already set); deps, when given, are the proxy's (the validator
// is always the reference identity service's client).
func Start(t testing.TB, up translate.Side, mutate func(*config.Config), deps ...proxy.Deps) *Env {
	t.Helper()
	e := &Env{T: t, Dir: emulator.NewDirectory(emulator.DemoUsers()), UpSide: up}
	e.Identity = emulator.NewIdentity(e.Dir)
	idSrv := httptest.NewServer(e.Identity.Handler())
	t.Cleanup(idSrv.Close)
	var upH http.Handler
	switch up {
	case translate.SideOscred:
		o := emulator.NewOscred(e.Dir)
		e.Upstream, e.Store, upH = o, o.Store, o.Handler()
	default:
		b := emulator.NewEC2Blob(e.Dir, up == translate.SideKeystone)
		e.Upstream, e.Store, upH = b, b.Store, b.Handler()
	}
	e.Received = &Recorder{}
	upSrv := httptest.NewServer(e.Received.Wrap(upH))
	t.Cleanup(upSrv.Close)
	e.IDURL, e.UpURL = idSrv.URL, upSrv.URL
	env := []string{"CREDBRIDGE_UPSTREAM_URL=" + upSrv.URL, "CREDBRIDGE_IDENTITY_URL=" + idSrv.URL}
	if up == translate.SideOscred {
		env = append(env, "CREDBRIDGE_UPSTREAM_DIALECT=oscred")
	} else {
		env = append(env, "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_FLAVOR="+map[bool]string{true: "keystone", false: "ibm"}[up == translate.SideKeystone])
	}
	cfg, err := config.Load("", env)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	e.Cfg = cfg
	var d proxy.Deps
	if len(deps) > 0 {
		d = deps[0]
	}
	d.Validator = policy.NewIdentityClient(cfg.Identity, "", nil)
	po, err := proxy.OptionsFrom(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.Proxy, err = proxy.New(po, d)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Proxy.Handler())
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	return e
}

// Seed puts a key for user straight into the backend, unseen by the bridge.
func (e *Env) Seed(user string) (ak, sk string) { return e.SeedIn(e.Dir, user) }

// SeedIn is Seed with the user's project looked up in dir.
func (e *Env) SeedIn(dir *emulator.Directory, user string) (ak, sk string) {
	ak, sk = translate.NewKeyPair()
	project := ""
	if u, ok := dir.User(user); ok {
		project = u.ProjectID
	}
	e.Store.Put(emulator.Key{AK: ak, SK: sk, UserID: user, ProjectID: project, Active: true, StatusSet: true, Created: time.Now()})
	return ak, sk
}

// Resp is a client's view of an answer.
type Resp struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic map (nil when it is not an object).
func (r *Resp) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// Cred is the "credential" object of the answer.
func (r *Resp) Cred() map[string]any {
	c, _ := r.JSON()["credential"].(map[string]any)
	return c
}

// Blob reads an ec2blob credential's blob in either form.
func Blob(c map[string]any) map[string]any {
	switch b := c["blob"].(type) {
	case map[string]any:
		return b
	case string:
		var m map[string]any
		_ = json.Unmarshal([]byte(b), &m)
		return m
	}
	return nil
}

// Do sends one request to the bridge. ctype "" sends none; hdr is name, value pairs.
func (e *Env) Do(method, path, token, ctype, body string, hdr ...string) *Resp {
	e.T.Helper()
	return Do(e.T, e.URL, method, path, token, ctype, body, hdr...)
}

// client keeps enough idle connections for the concurrent tests and the soak:
// http.DefaultClient keeps 2 per host, so 16 workers would open and close a
// connection per request and fill the port range with TIME_WAIT.
var client = &http.Client{Transport: &http.Transport{
	Proxy:               nil,
	MaxIdleConns:        256,
	MaxIdleConnsPerHost: 64,
	IdleConnTimeout:     30 * time.Second,
}}

// Do sends one request to base.
func Do(t testing.TB, base, method, path, token, ctype, body string, hdr ...string) *Resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &Resp{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// CheckDialect fails unless r is well-formed for a client of side: JSON content
// type, the dialect's headers, and for errors the bridge's error shape in that
// dialect (oscred: both the Keystone and the Huawei shape in one object).
func CheckDialect(t testing.TB, side translate.Side, r *Resp) {
	t.Helper()
	checkDialect(t, side, r, true)
}

// CheckPassedThrough is CheckDialect for answers an upstream of the client's own
// dialect gave: they are passed untouched, so an oscred error may carry either
// of its two shapes.
func CheckPassedThrough(t testing.TB, side translate.Side, r *Resp) {
	t.Helper()
	checkDialect(t, side, r, false)
}

var transID = regexp.MustCompile(`^tx[0-9a-f]{21}-[0-9a-f]{10}$`)

func checkDialect(t testing.TB, side translate.Side, r *Resp, bothShapes bool) {
	t.Helper()
	if r.Status != http.StatusNoContent {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("content type %q, body %s", ct, r.Body)
		}
		if !json.Valid(r.Body) {
			t.Fatalf("body is not JSON: %s", r.Body)
		}
	}
	if side.Dialect == translate.Oscred {
		if r.Header.Get("X-Request-Id") == "" {
			t.Fatal("oscred answer without X-Request-Id")
		}
	} else {
		// Swift's pair: "tx" + 21 hex + "-" + the unix time in 10 hex, and that
		// same second as a decimal with five places.
		tx, ts := r.Header.Get("X-Trans-Id"), r.Header.Get("X-Timestamp")
		if !transID.MatchString(tx) {
			t.Fatalf("ec2blob answer with X-Trans-Id %q", tx)
		}
		sec, err := strconv.ParseInt(tx[24:], 16, 64)
		dot := strings.IndexByte(ts, '.')
		if err != nil || dot < 0 || len(ts)-dot-1 != 5 || ts[:dot] != strconv.FormatInt(sec, 10) {
			t.Fatalf("ec2blob answer with X-Timestamp %q for X-Trans-Id %q", ts, tx)
		}
	}
	if r.Status < 400 {
		return
	}
	m := r.JSON()
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(float64)
	keystone := e != nil && e["message"] != nil && e["title"] != nil && int(code) == r.Status
	huawei := m["error_code"] != nil && m["error_msg"] != nil
	switch {
	case side.Dialect == translate.EC2Blob && !keystone:
		t.Fatalf("error not in Keystone shape: %s", r.Body)
	case side.Dialect == translate.Oscred && bothShapes && !(keystone && huawei):
		t.Fatalf("oscred error without both shapes: %s", r.Body)
	case side.Dialect == translate.Oscred && !keystone && !huawei:
		t.Fatalf("oscred error in neither shape: %s", r.Body)
	}
}

// Base is the collection path of a side.
func Base(s translate.Side) string { return upstream.BasePath(s) }

// KeyPath is the path naming ak for a client of side s.
func KeyPath(s translate.Side, ak string) string { return Base(s) + "/" + s.ID(ak) }

// CType is the content type each dialect's clients send.
func CType(s translate.Side) string {
	if s == translate.SideOscred {
		return "application/json;charset=utf8"
	}
	return "application/json"
}

// UpdateMethod is PUT for oscred, PATCH for ec2blob.
func UpdateMethod(s translate.Side) string {
	if s == translate.SideOscred {
		return http.MethodPut
	}
	return http.MethodPatch
}

// SyncBuffer collects output (a child's, a logger's) while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Seen is one request as a backend received it.
type Seen struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// Recorder keeps every request a backend receives.
type Recorder struct {
	mu   sync.Mutex
	seen []Seen
}

// Wrap records each request, then lets h answer it.
func (r *Recorder) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(strings.NewReader(string(body)))
		r.mu.Lock()
		r.seen = append(r.seen, Seen{Method: req.Method, Path: req.URL.Path, RawQuery: req.URL.RawQuery, Header: req.Header.Clone(), Body: body})
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	})
}

// All is what was received so far.
func (r *Recorder) All() []Seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Seen(nil), r.seen...)
}

// Writes counts the requests received that could change something (anything
// but GET and HEAD).
func (r *Recorder) Writes() int {
	n := 0
	for _, s := range r.All() {
		if s.Method != http.MethodGet && s.Method != http.MethodHead {
			n++
		}
	}
	return n
}
