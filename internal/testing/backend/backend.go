// Package backend starts a reference server (emulator) of one dialect on
// loopback, its connections treated as emulator.Conns says, and counts the
// connections it accepted — for the tests of how the bridge's pool copes.
package backend

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/translate"
)

// Backend is a running reference server with the demo users.
type Backend struct {
	URL string
	// Requests counts the requests that reached the reference server.
	Requests func() int64
	Store    *emulator.Store
	conns    atomic.Int64
}

// Conns is how many connections it accepted.
func (b *Backend) Conns() int64 { return b.conns.Load() }

// Start serves side behind conns until t ends.
func Start(t testing.TB, side translate.Side, conns emulator.Conns) *Backend {
	t.Helper()
	dir := emulator.NewDirectory(emulator.DemoUsers())
	b := &Backend{}
	var h http.Handler
	if side == translate.SideOscred {
		o := emulator.NewOscred(dir)
		b.Requests, b.Store, h = o.Requests, o.Store, o.Handler()
	} else {
		e := emulator.NewEC2Blob(dir, side == translate.SideKeystone)
		b.Requests, b.Store, h = e.Requests, e.Store, e.Handler()
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	conns.Apply(srv.Config)
	srv.Start()
	t.Cleanup(srv.Close)
	b.URL = srv.URL
	return b
}
