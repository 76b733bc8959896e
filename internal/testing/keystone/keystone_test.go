package keystone

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// The harness's Keystone validates a user's token with that token, and serves
// HTTP the way the issue met it: the answer carries no Connection: close, and
// the connection is closed after it anyway.
func TestHarness(t *testing.T) {
	k := Shared(t)
	t.Logf("Keystone up in %s at %s (%s)", k.Started.Round(time.Millisecond), k.URL, strings.Join(k.Phases, ", "))
	for _, u := range []User{k.Alice, k.Bob} {
		req, _ := http.NewRequest("GET", k.URL+"/v3/auth/tokens?nocatalog=1", nil)
		req.Header.Set("X-Auth-Token", u.Token)
		req.Header.Set("X-Subject-Token", u.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"`+u.ProjectID+`"`) || !strings.Contains(string(body), `"member"`) {
			t.Fatalf("%s validating its own token: %d %s", u.Name, resp.StatusCode, body)
		}
	}
	if k.Alice.ID == k.Bob.ID || k.Alice.ProjectID == k.Bob.ProjectID {
		t.Fatal("Alice and Bob share a user or a project")
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(k.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /v3 HTTP/1.1\r\nHost: keystone\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body) // ends only because the server closes
	if err != nil || resp.StatusCode != 200 || len(rest) == 0 {
		t.Fatalf("GET /v3: %d, %d bytes, %v", resp.StatusCode, len(rest), err)
	}
	if resp.Header.Get("Connection") != "" {
		t.Fatalf("the server announced its close (Connection %q): not the uwsgi the issue met", resp.Header.Get("Connection"))
	}
}
