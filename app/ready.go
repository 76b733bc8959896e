package app

import (
	"context"
	"time"
)

// identityProbeEvery is how often a quiet bridge checks that the identity
// service still answers (policy.IdentityClient.ProbeIfQuiet). Busy bridges
// learn it from real validations and do not probe. A variable for tests.
var identityProbeEvery = 10 * time.Second

// probeIdentity runs until ctx ends. /readyz only reads the outcome, so no
// number of /readyz calls makes a call to the identity service.
func (r *Runtime) probeIdentity(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.built.Load().Identity.ProbeIfQuiet(ctx, every)
		}
	}
}
