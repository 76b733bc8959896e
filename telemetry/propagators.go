package telemetry

import (
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/propagation"
)

// Propagators reads OTEL_PROPAGATORS (a comma-separated list). Empty means
// tracecontext alone — not the SDK's usual "tracecontext,baggage": baggage is
// whatever a client chose to put there, and the bridge must not carry it on to
// the upstream or the identity service (proxy also drops it from the context
// and from outgoing headers, so even a listed "baggage" only parses it).
// "none" turns propagation off. Names the bridge does not implement (b3,
// jaeger, xray, ottrace) are an error naming the variable, not a silent
// fallback that would break traces without saying so.
func Propagators(v string) (propagation.TextMapPropagator, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return propagation.TraceContext{}, nil
	}
	var ps []propagation.TextMapPropagator
	seen := map[string]bool{}
	for _, name := range strings.Split(v, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if seen[name] {
			continue
		}
		seen[name] = true
		switch name {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
		case "none":
			return propagation.NewCompositeTextMapPropagator(), nil
		default:
			return nil, fmt.Errorf("OTEL_PROPAGATORS: %q is not supported (tracecontext, baggage, none)", name)
		}
	}
	return propagation.NewCompositeTextMapPropagator(ps...), nil
}
