package proxy

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/credbridge/credbridge/logging"
	"github.com/credbridge/credbridge/translate"
)

// accessLog writes one line per request: never a token, a body or a secret.
// The error field is the one place an error's cause is logged.
func (s *Server) accessLog(k *call, status int, end time.Time, d time.Duration) {
	if !s.log.Enabled(k.ctx, slog.LevelInfo) {
		return
	}
	r := k.c.Request()
	if s.accessOut != nil {
		s.writeAccessLine(k, r, status, end, d)
		return
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs, slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("client_dialect", k.client.String()), slog.String("upstream_dialect", s.side.String()),
		slog.String("op", k.rt.opLabel()), slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("request_id", k.reqID))
	if k.who != nil {
		attrs = append(attrs, slog.String("user_id", k.who.UserID))
	}
	if tid := s.traceID(k, r); tid != "" {
		attrs = append(attrs, slog.String("trace_id", tid))
	}
	if k.err != nil {
		attrs = append(attrs, slog.String("error", k.err.Detail()))
	}
	s.log.LogAttrs(k.ctx, slog.LevelInfo, "request", attrs...)
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeAccessLine appends the access line by hand: the same fields and shape
// as the slog path above, one Write.
func (s *Server) writeAccessLine(k *call, r *http.Request, status int, end time.Time, d time.Duration) {
	bp := linePool.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = logging.AppendTime(b, end)
	b = append(b, `","level":"INFO","msg":"request","method":`...)
	b = translate.AppendString(b, r.Method)
	b = append(b, `,"path":`...)
	b = translate.AppendString(b, r.URL.Path)
	b = append(b, `,"client_dialect":"`...)
	b = append(b, k.client.String()...)
	b = append(b, `","upstream_dialect":"`...)
	b = append(b, s.side.String()...)
	b = append(b, `","op":"`...)
	b = append(b, k.rt.opLabel()...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"request_id":`...)
	b = translate.AppendString(b, k.reqID)
	if k.who != nil {
		b = append(b, `,"user_id":`...)
		b = translate.AppendString(b, k.who.UserID)
	}
	if tid := s.traceID(k, r); tid != "" {
		b = append(b, `,"trace_id":"`...)
		b = append(b, tid...)
		b = append(b, '"')
	}
	if k.err != nil {
		b = append(b, `,"error":`...)
		b = translate.AppendString(b, k.err.Detail())
	}
	b = append(b, "}\n"...)
	_, _ = s.accessOut.Write(b)
	*bp = b
	linePool.Put(bp)
}
