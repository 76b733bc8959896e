package proxy

import (
	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
)

// identityLookupConns bounds the connections for identity look-ups (a CLI's
// occasional reads, not a hot path).
const identityLookupConns = 64

// OptionsFrom reads a validated config's settings for the proxy: the one place
// config keys become proxy options.
func OptionsFrom(cfg *config.Config) Options {
	o := Options{
		Upstream: upstream.Options{Peer: "upstream", Side: UpstreamSide(cfg.Upstream), URL: cfg.Upstream.URL,
			Timeout: cfg.Upstream.Timeout, MaxConns: cfg.Upstream.MaxConns},
		MaxBodyBytes:  cfg.Limits.MaxBodyBytes,
		MaxConcurrent: cfg.Limits.MaxConcurrent,
		PublicURL:     cfg.PublicURL,
		OwnerTTL:      cfg.Cache.TTL,
		Policy:        cfg.Policy,
	}
	if o.PublicURL == "" {
		o.PublicURL = "http://" + cfg.Listen
	}
	if cfg.Identity.Lookups == policy.LookupsForward {
		o.Lookups = &upstream.Options{Peer: "identity service", Side: translate.SideKeystone, URL: cfg.Identity.URL,
			Timeout: cfg.Identity.Timeout, MaxConns: identityLookupConns}
	}
	return o
}

// UpstreamSide maps the config's dialect and flavor to a side.
func UpstreamSide(u config.Upstream) translate.Side { return upstream.SideOf(u.Dialect, u.Flavor) }
