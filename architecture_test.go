package credbridge_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestImportRules holds the packages to docs/architecture.md: each one idea,
// and only the arrows drawn there. It reads what `go list -deps` says the
// product's packages import (tests excluded), so a forbidden import anywhere
// in a package's dependency tree fails here.
func TestImportRules(t *testing.T) {
	const mod = "github.com/credbridge/credbridge/"
	forbidden := map[string][]string{
		// translate is pure: bytes and small structs in, bytes out.
		"translate": {"net/http", "github.com/labstack/echo/v4", "github.com/valyala/fasthttp", mod + "policy",
			mod + "proxy", mod + "upstream", mod + "config", mod + "telemetry", mod + "migrate", mod + "app"},
		// policy knows nothing of dialects.
		"policy": {mod + "translate", mod + "proxy", mod + "upstream", mod + "migrate", mod + "app", "github.com/labstack/echo/v4"},
		// upstream is the client toward a backend: no client edge, no policy.
		"upstream": {mod + "proxy", mod + "app", mod + "migrate", mod + "policy", mod + "config", "github.com/labstack/echo/v4"},
		// migrate knows dialects only through translate and never the client edge.
		"migrate": {mod + "proxy", mod + "app", mod + "config", "github.com/labstack/echo/v4"},
		"proxy":   {mod + "app", mod + "cmd/credbridge"},
		"config":  {mod + "proxy", mod + "app", mod + "upstream", "github.com/labstack/echo/v4"},
		// tlsconf is a leaf: config and policy both hold its ClientTLS.
		"internal/tlsconf": {mod + "config", mod + "policy", mod + "upstream", mod + "proxy", mod + "app", mod + "translate"},
		// telemetry takes label strings; audit takes plain events.
		"telemetry": {mod + "translate", mod + "policy", mod + "proxy", mod + "upstream", mod + "config", mod + "migrate", mod + "app"},
		"audit":     {mod + "translate", mod + "policy", mod + "proxy", mod + "upstream", mod + "config", mod + "migrate", mod + "telemetry", mod + "app"},
		// The product ships no test helper and no benchmark tool.
		"cmd/credbridge": {mod + "internal/testing", mod + "bench"},
	}
	for pkg, bad := range forbidden {
		t.Run(pkg, func(t *testing.T) {
			deps := listDeps(t, mod+pkg)
			for _, d := range deps {
				for _, b := range bad {
					if d == b || strings.HasPrefix(d, b+"/") {
						t.Errorf("%s depends on %s", pkg, d)
					}
				}
			}
		})
	}
}

func listDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var deps []string
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct{ ImportPath string }
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		deps = append(deps, p.ImportPath)
	}
	if len(deps) < 2 {
		t.Fatalf("go list found nothing for %s", pkg)
	}
	return deps
}
