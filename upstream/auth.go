package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
)

// TokenSource gives the token the bridge sends upstream for a caller.
type TokenSource interface {
	UpstreamToken(ctx context.Context, callerToken string) (string, error)
}

// Passthrough sends the caller's own token: the upstream applies its own policy too.
type Passthrough struct{}

func (Passthrough) UpstreamToken(_ context.Context, caller string) (string, error) {
	return caller, nil
}

// StaticToken sends one configured token for everyone.
type StaticToken string

func (t StaticToken) UpstreamToken(context.Context, string) (string, error) { return string(t), nil }

// KeystoneLogin logs in as a service user with POST /v3/auth/tokens, keeps the
// token, and renews it before it expires. One login runs at a time; callers during
// a renewal wait for it rather than stampeding the identity service.
type KeystoneLogin struct {
	cfg      Account
	password string
	hc       *http.Client
	now      func() time.Time

	mu  sync.Mutex // one login at a time
	cur atomic.Pointer[serviceToken]
}

type serviceToken struct {
	token            string
	expires, renewAt time.Time
}

// Account is the service user a KeystoneLogin logs in as
// (upstream.auth.keystone, migration.secondary.auth.keystone).
type Account struct {
	// URL of the identity service; /v3/auth/tokens is appended.
	URL                  string
	UserName, UserDomain string
	// ProjectID scopes the token ("" unscoped).
	ProjectID string
}

// NewKeystoneLogin builds the source; password is the content of password_file.
// rt carries the login (nil: a transport of its own); app passes the identity
// service's transport, so identity.tls (and its idle timeout) applies to the
// login too.
func NewKeystoneLogin(cfg Account, password string, timeout time.Duration, rt http.RoundTripper) *KeystoneLogin {
	if rt == nil {
		// Idle connections dropped before the service's keep-alive timeout
		// (net/http's default transport keeps them 90 s).
		rt = &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: DefaultIdleTimeout, Proxy: http.ProxyFromEnvironment}
	}
	return &KeystoneLogin{cfg: cfg, password: password, hc: &http.Client{Transport: rt, Timeout: timeout}, now: time.Now}
}

// UpstreamToken returns the service token, logging in when it is missing or due.
func (k *KeystoneLogin) UpstreamToken(ctx context.Context, _ string) (string, error) {
	if t := k.cur.Load(); t != nil && k.now().Before(t.renewAt) {
		return t.token, nil // the hot path: no lock
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	cur := k.cur.Load()
	if cur != nil && now.Before(cur.renewAt) {
		return cur.token, nil // renewed while we waited
	}
	tok, exp, err := k.login(ctx)
	if err != nil {
		if cur != nil && now.Before(cur.expires) {
			// Renewal failed but the old token still works: use it, and try
			// again in a few seconds rather than on every request.
			retry := now.Add(5 * time.Second)
			if retry.After(cur.expires) {
				retry = cur.expires
			}
			k.cur.Store(&serviceToken{token: cur.token, expires: cur.expires, renewAt: retry})
			return cur.token, nil
		}
		return "", err
	}
	// Renew when 80% of the life has passed, and at least a minute before expiry.
	life := exp.Sub(now)
	renew := now.Add(life * 8 / 10)
	if latest := exp.Add(-time.Minute); renew.After(latest) {
		renew = latest
	}
	k.cur.Store(&serviceToken{token: tok, expires: exp, renewAt: renew})
	return tok, nil
}

func (k *KeystoneLogin) login(ctx context.Context) (string, time.Time, error) {
	// encoding/json here: a login is off the request path and rare.
	auth := map[string]any{"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
		"user": map[string]any{"name": k.cfg.UserName, "domain": map[string]any{"name": k.cfg.UserDomain}, "password": k.password}}}}
	if k.cfg.ProjectID != "" {
		auth["scope"] = map[string]any{"project": map[string]any{"id": k.cfg.ProjectID}}
	}
	raw, _ := json.Marshal(map[string]any{"auth": auth})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(k.cfg.URL, "/")+"/v3/auth/tokens", bytes.NewReader(raw))
	if err != nil {
		return "", time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	// A login may be resent (net/http does so on a reused connection the
	// server closed only for requests marked idempotent): a second login just
	// issues a second token, and the first is never used. The empty key
	// marks it without sending the header.
	req.Header["Idempotency-Key"] = nil
	resp, err := k.hc.Do(req)
	if err != nil {
		return "", time.Time{}, errors.New("service login: identity service unreachable")
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", time.Time{}, fmt.Errorf("service login: identity service answered %d", resp.StatusCode)
	}
	tok := resp.Header.Get("X-Subject-Token")
	exp, err := time.Parse(time.RFC3339Nano, gjson.GetBytes(body, "token.expires_at").String())
	if tok == "" || err != nil || !exp.After(k.now()) {
		return "", time.Time{}, errors.New("service login: answer without a usable token")
	}
	return tok, exp, nil
}
