package proxy

import (
	"fmt"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
)

// identityLookupConns bounds the connections for identity look-ups (a CLI's
// occasional reads, not a hot path).
const identityLookupConns = 64

// OptionsFrom reads a validated config's settings for the proxy: the one place
// config keys become proxy options. It fails only when a TLS file (upstream.tls,
// identity.tls) no longer loads.
func OptionsFrom(cfg *config.Config) (Options, error) {
	upTLS, err := cfg.Upstream.TLS.ForURL(cfg.Upstream.URL)
	if err != nil {
		return Options{}, fmt.Errorf("upstream.tls: %v", err)
	}
	o := Options{
		Upstream: upstream.Options{Peer: "upstream", Side: UpstreamSide(cfg.Upstream), URL: cfg.Upstream.URL,
			Timeout: cfg.Upstream.Timeout, MaxConns: cfg.Upstream.MaxConns, IdleTimeout: cfg.Upstream.IdleTimeout, TLS: upTLS},
		MaxBodyBytes:  cfg.Limits.MaxBodyBytes,
		MaxConcurrent: cfg.Limits.MaxConcurrent,
		PublicURL:     cfg.PublicURL,
		OwnerTTL:      cfg.Cache.TTL,
		Policy:        cfg.Policy,
	}
	if o.PublicURL == "" {
		o.PublicURL = map[bool]string{true: "https://", false: "http://"}[cfg.TLS.Enabled()] + cfg.Listen
	}
	if cfg.Identity.Lookups == policy.LookupsForward {
		idTLS, err := cfg.Identity.TLS.ForURL(cfg.Identity.URL)
		if err != nil {
			return Options{}, fmt.Errorf("identity.tls: %v", err)
		}
		o.Lookups = &upstream.Options{Peer: "identity service", Side: translate.SideKeystone, URL: cfg.Identity.URL,
			Timeout: cfg.Identity.Timeout, MaxConns: identityLookupConns, TLS: idTLS}
	}
	return o, nil
}

// UpstreamSide maps the config's dialect and flavor to a side.
func UpstreamSide(u config.Upstream) translate.Side { return upstream.SideOf(u.Dialect, u.Flavor) }
