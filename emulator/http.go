package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync/atomic"
	"time"
)

// The reference servers use encoding/json: they are stand-ins for the clouds, off
// the bridge's request path, and an implementation independent of the bridge's
// gjson/sjson translation is what makes them a fair check of it.

const maxBody = 32 << 10

var errTooLarge = errors.New("body too large")

func readLimited(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > n {
		return nil, errTooLarge
	}
	return b, nil
}

// Counter counts the requests a server received, so tests can prove that a bad
// request never reached it.
type Counter struct{ n atomic.Int64 }

// Requests is the number of requests seen so far.
func (c *Counter) Requests() int64 { return c.n.Load() }

func (c *Counter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf8")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// keystoneError is the error shape of Keystone and of IBM's credential API.
func keystoneError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": status, "title": http.StatusText(status), "message": msg,
	}})
}

// huaweiError is the Huawei API gateway's error shape.
func huaweiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error_code": code, "error_msg": msg})
}

func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// decodeObject reads a bounded JSON object body.
func decodeObject(r *http.Request) (map[string]any, int, string) {
	if !isJSON(r) {
		return nil, http.StatusUnsupportedMediaType, "Content-Type must be application/json"
	}
	b, err := readLimited(r.Body, maxBody)
	if errors.Is(err, errTooLarge) {
		return nil, http.StatusRequestEntityTooLarge, "request body too large"
	}
	if err != nil {
		return nil, http.StatusBadRequest, "cannot read body"
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, http.StatusBadRequest, "body is not a JSON object"
	}
	return m, 0, ""
}

func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// timestamp is the oscred time format: UTC with microseconds.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// swiftHeaders sets IBM's X-Trans-Id and X-Timestamp.
func swiftHeaders(h http.Header) {
	now := time.Now()
	h.Set("X-Trans-Id", fmt.Sprintf("tx%s-%010x", newID(11)[:21], now.Unix()))
	// Truncated like Swift's normalized timestamp: its seconds are the trans id's.
	h.Set("X-Timestamp", fmt.Sprintf("%d.%05d", now.Unix(), now.Nanosecond()/10000))
}
