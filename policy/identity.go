package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/credbridge/credbridge/internal/tlsconf"
	"github.com/tidwall/gjson"
)

// IdentityConfig points at a Keystone-compatible identity service.
type IdentityConfig struct {
	// URL of the service; GET {URL}/v3/auth/tokens validates a token. Default
	// http://127.0.0.1:9002. Risk: plain http beyond loopback exposes tokens.
	URL string `yaml:"url"`
	// ServiceTokenFile holds the X-Auth-Token the bridge validates with. Default
	// empty: each caller's token validates itself (Keystone allows this).
	ServiceTokenFile string `yaml:"service_token_file"`
	// Timeout for one validation. Default 3s. Past it the caller gets 503.
	Timeout time.Duration `yaml:"timeout"`
	// Lookups: forward (default) | off. python-openstackclient resolves the
	// user and project of `openstack credential ...` with GET /v3/users and
	// /v3/projects on the endpoint that serves /v3/credentials; forward passes
	// those GETs (ids and name/domain_id filters checked) to this service with
	// the caller's own token, so its policy decides what the caller sees. Risk:
	// callers reach these read-only look-ups through the bridge even where the
	// identity service itself is not exposed to them; off answers 404.
	Lookups string `yaml:"lookups"`
	// TLS toward an https:// identity service (validation, look-ups and the
	// upstream's Keystone service login): CA bundle, client certificate,
	// server name. Default: the system roots, no client certificate.
	TLS tlsconf.ClientTLS `yaml:"tls"`
}

// Identity look-up modes.
const (
	LookupsForward = "forward"
	LookupsOff     = "off"
)

// MaxTokenLen bounds a token: Huawei IAM tokens run to several KiB.
const MaxTokenLen = 16 << 10

// ValidTokenSyntax reports whether tok can be a token at all (printable ASCII,
// bounded). Anything else is refused before it is sent anywhere.
func ValidTokenSyntax(tok string) bool {
	if tok == "" || len(tok) > MaxTokenLen {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= 0x20 || tok[i] >= 0x7f {
			return false
		}
	}
	return true
}

// IdentityClient validates tokens against the identity service over HTTP.
type IdentityClient struct {
	base, url    string
	serviceToken string
	client       *http.Client
	now          func() time.Time
	reach        reach
	// Observe, when set, is told how long each call took and whether it got an
	// answer (a valid or a rejected token) — metrics hook.
	Observe func(ctx context.Context, d time.Duration, answered bool)
}

// identityIdleTimeout is upstream.DefaultIdleTimeout (policy does not import upstream).
const identityIdleTimeout = 4 * time.Second

// NewTransport is the pooled transport toward the identity service, with
// identity.tls applied.
func NewTransport(cfg IdentityConfig) (*http.Transport, error) {
	// IdleConnTimeout below the identity service's keep-alive timeout
	// (Apache's 5 s; uwsgi closes at once): net/http then drops an idle
	// connection before the server does, and a validation (a GET) that still
	// lands on one the server closed is resent by net/http itself.
	t := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: identityIdleTimeout}
	if !cfg.TLS.IsZero() {
		tc, err := cfg.TLS.Config("") // "": net/http names the URL's host
		if err != nil {
			return nil, fmt.Errorf("identity.tls: %v", err)
		}
		t.TLSClientConfig = tc
	}
	return t, nil
}

// NewIdentityClient builds a client; rt is the transport (nil: NewTransport's;
// if that fails, every call fails closed with its error).
func NewIdentityClient(cfg IdentityConfig, serviceToken string, rt http.RoundTripper) *IdentityClient {
	if rt == nil {
		if t, err := NewTransport(cfg); err != nil {
			rt = failTransport{err}
		} else {
			rt = t
		}
	}
	base := strings.TrimRight(cfg.URL, "/")
	return &IdentityClient{
		base:         base,
		url:          base + "/v3/auth/tokens?nocatalog=1",
		serviceToken: serviceToken,
		client:       &http.Client{Transport: rt, Timeout: cfg.Timeout},
		now:          time.Now,
	}
}

// Validate asks the identity service about token. It never caches: see Cache.
func (c *IdentityClient) Validate(ctx context.Context, token string) (_ *Identity, err error) {
	if !ValidTokenSyntax(token) {
		return nil, ErrInvalidToken
	}
	req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if rerr != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, rerr)
	}
	if c.Observe != nil {
		start := time.Now()
		defer func() { c.Observe(ctx, time.Since(start), err == nil || errors.Is(err, ErrInvalidToken)) }()
	}
	auth := c.serviceToken
	if auth == "" {
		auth = token
	}
	req.Header.Set("X-Auth-Token", auth)
	req.Header.Set("X-Subject-Token", token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		// The URL may not be echoed: net/http errors carry it, never the token.
		err = redactURLError(err)
		if ctx.Err() == nil { // a caller who hung up says nothing of the service
			c.reach.note(c.now(), err)
		}
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	c.reach.note(c.now(), answerErr(resp.StatusCode))
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: reading answer: %v", ErrUnavailable, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusNotFound:
		return nil, ErrInvalidToken
	default:
		return nil, fmt.Errorf("%w: identity service answered %d", ErrUnavailable, resp.StatusCode)
	}
	id, err := ParseToken(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if !id.ExpiresAt.After(c.now()) {
		return nil, ErrInvalidToken
	}
	return id, nil
}

// failTransport fails every call: a client whose TLS files did not load.
type failTransport struct{ err error }

func (f failTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

func redactURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// ParseToken reads a Keystone v3 token answer.
func ParseToken(body []byte) (*Identity, error) {
	if !gjson.ValidBytes(body) {
		return nil, errors.New("identity answer is not JSON")
	}
	t := gjson.GetBytes(body, "token")
	if !t.IsObject() {
		return nil, errors.New(`identity answer has no "token"`)
	}
	id := &Identity{
		UserID:     t.Get("user.id").String(),
		UserName:   t.Get("user.name").String(),
		DomainID:   t.Get("user.domain.id").String(),
		DomainName: t.Get("user.domain.name").String(),
		ProjectID:  t.Get("project.id").String(),
	}
	if id.UserID == "" {
		return nil, errors.New("identity answer has no user id")
	}
	exp, err := time.Parse(time.RFC3339Nano, t.Get("expires_at").String())
	if err != nil {
		return nil, fmt.Errorf("identity answer: expires_at: %v", err)
	}
	id.ExpiresAt = exp
	for _, r := range t.Get("roles.#.name").Array() {
		id.Roles = append(id.Roles, r.String())
	}
	return id, nil
}
