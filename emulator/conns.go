package emulator

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Conns says how a reference server treats connections, so tests meet the
// servers real deployments run rather than net/http's patient defaults.
type Conns struct {
	// CloseAfterAnswer closes the connection after each answer without saying
	// so (no Connection: close), as uwsgi's --http-socket does.
	CloseAfterAnswer bool
	// IdleTimeout closes a keep-alive connection idle this long (0: net/http's,
	// which is ReadTimeout or none). Apache's default is 5 s.
	IdleTimeout time.Duration
	// LoseAnswer, when set, picks requests that are carried out and then
	// answered by closing the connection — the server that closed a
	// keep-alive just as a request arrived, at its worst (it did the work).
	// nth is the request's place on its connection, from 1. Tests count what
	// a client sent again.
	LoseAnswer func(r *http.Request, nth int64) bool
}

// Apply sets srv up as c says; call it before srv serves.
func (c Conns) Apply(srv *http.Server) {
	if c.IdleTimeout > 0 {
		srv.IdleTimeout = c.IdleTimeout
	}
	if !c.CloseAfterAnswer && c.LoseAnswer == nil {
		return
	}
	prev := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, nc net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, nc)
		}
		return context.WithValue(ctx, served{}, new(atomic.Int64))
	}
	srv.Handler = c.wrap(srv.Handler)
}

// served is the context key of a connection's count of requests.
type served struct{}

func (c Conns) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := r.Context().Value(served{}).(*atomic.Int64)
		nth := int64(1)
		if n != nil {
			nth = n.Add(1)
		}
		rec := &recorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		lose := c.LoseAnswer != nil && c.LoseAnswer(r, nth)
		if !lose && !c.CloseAfterAnswer {
			rec.copyTo(w)
			return
		}
		nc, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "cannot take the connection over", http.StatusInternalServerError)
			return
		}
		defer nc.Close()
		if !lose {
			rec.writeTo(bw)
			_ = bw.Flush()
		}
	})
}

// recorder keeps an answer so it can be written by hand on a hijacked connection.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

// copyTo answers through net/http, the connection kept.
func (r *recorder) copyTo(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	r.WriteHeader(http.StatusOK)
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body.Bytes())
}

// writeTo writes the answer as HTTP/1.1 with a Content-Length and no
// Connection header: the client learns of the close only by reading EOF.
func (r *recorder) writeTo(bw *bufio.ReadWriter) {
	r.WriteHeader(http.StatusOK)
	if r.status != http.StatusNoContent && r.status != http.StatusNotModified {
		r.header.Set("Content-Length", strconv.Itoa(r.body.Len()))
	}
	r.header.Del("Connection")
	_, _ = fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", r.status, http.StatusText(r.status))
	_ = r.header.Write(bw)
	_, _ = bw.WriteString("\r\n")
	_, _ = bw.Write(r.body.Bytes())
}
