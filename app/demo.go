package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/telemetry"
)

// Emulated is a reference server listening on an address.
type Emulated struct {
	Addr   string
	server *http.Server
}

// Close stops it.
func (e *Emulated) Close() error { return e.server.Close() }

// ServeEmulator listens on addr and serves h, its connections treated as conns
// says (none: net/http's defaults).
func ServeEmulator(addr string, h http.Handler, conns ...emulator.Conns) (*Emulated, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	for _, c := range conns {
		c.Apply(srv)
	}
	go func() { _ = srv.Serve(ln) }()
	return &Emulated{Addr: ln.Addr().String(), server: srv}, nil
}

// DemoAddrs are where the demo listens.
type DemoAddrs struct {
	Listen, Admin, Upstream, Identity string
	// Migration adds a Keystone-flavor ec2blob secondary on Secondary and
	// mirrors the oscred primary's writes to it.
	Migration bool
	Secondary string
}

// Demo starts the identity service and the oscred reference backend with the demo
// users, and the bridge in front of them; it prints curl lines to w.
func Demo(a DemoAddrs, w io.Writer, log *slog.Logger, tel *telemetry.Telemetry) (*Runtime, []*Emulated, error) {
	dir := emulator.NewDirectory(emulator.DemoUsers())
	idn, err := ServeEmulator(a.Identity, emulator.NewIdentity(dir).Handler())
	if err != nil {
		return nil, nil, fmt.Errorf("identity service: %v", err)
	}
	up, err := ServeEmulator(a.Upstream, emulator.NewOscred(dir).Handler())
	if err != nil {
		idn.Close()
		return nil, nil, fmt.Errorf("oscred backend: %v", err)
	}
	emus := []*Emulated{idn, up}
	env := []string{
		"CREDBRIDGE_LISTEN=" + a.Listen, "CREDBRIDGE_ADMIN_LISTEN=" + a.Admin,
		"CREDBRIDGE_UPSTREAM_URL=http://" + up.Addr, "CREDBRIDGE_IDENTITY_URL=http://" + idn.Addr,
	}
	if a.Migration {
		sec, menv, err := demoSecondary(a.Secondary, dir)
		if err != nil {
			return nil, emus, err
		}
		emus, env = append(emus, sec), append(env, menv...)
	}
	cfg, err := config.Load("", env)
	if err != nil {
		return nil, emus, err
	}
	rt, err := Start(cfg, Options{Log: log, Telemetry: tel})
	if err != nil {
		return nil, emus, err
	}
	printDemo(w, rt.Addr(), rt.AdminAddr(), up.Addr, idn.Addr)
	if a.Migration {
		printMigrationDemo(w, rt.Addr(), rt.AdminAddr(), emus[2].Addr)
	}
	return rt, emus, nil
}

// demoSecondary serves a Keystone secondary for the same users and returns the
// migration config (mirror, the service account's token, a journal and its key
// in a fresh temporary directory).
func demoSecondary(addr string, dir *emulator.Directory) (*Emulated, []string, error) {
	sec, err := ServeEmulator(addr, emulator.NewEC2Blob(dir, true).Handler())
	if err != nil {
		return nil, nil, fmt.Errorf("keystone secondary: %v", err)
	}
	tmp, err := os.MkdirTemp("", "credbridge-demo-")
	if err != nil {
		return sec, nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	tok, keyFile := filepath.Join(tmp, "secondary-token"), filepath.Join(tmp, "journal-key")
	if err := errors.Join(os.WriteFile(tok, []byte("demo-service-token"), 0o600),
		os.WriteFile(keyFile, []byte(hex.EncodeToString(key)), 0o600)); err != nil {
		return sec, nil, err
	}
	return sec, []string{"CREDBRIDGE_MIGRATION_MODE=mirror", "CREDBRIDGE_MIGRATION_SECONDARY_DIALECT=ec2blob",
		"CREDBRIDGE_MIGRATION_SECONDARY_FLAVOR=keystone", "CREDBRIDGE_MIGRATION_SECONDARY_URL=http://" + sec.Addr,
		"CREDBRIDGE_MIGRATION_SECONDARY_AUTH_TOKEN_FILE=" + tok, "CREDBRIDGE_MIGRATION_JOURNAL_KEY_FILE=" + keyFile,
		"CREDBRIDGE_MIGRATION_JOURNAL=file:" + filepath.Join(tmp, "journal.db")}, nil
}

func printMigrationDemo(w io.Writer, addr, admin, sec string) {
	fmt.Fprintf(w, `
Migration (mirror): the oscred backend is the primary; a Keystone-flavor ec2blob
secondary listens on http://%[3]s and receives every key written through the bridge,
with the same access key and secret.

# create a key through the bridge (answered by the primary)
curl -s -X POST http://%[1]s/v3.0/OS-CREDENTIAL/credentials -H 'X-Auth-Token: demo-admin-token'   -H 'Content-Type: application/json;charset=utf8' -d '{"credential":{"user_id":"u-alice","description":"mirrored"}}'

# the same key pair on the secondary, asked directly (Keystone dialect, secret in the blob)
curl -s 'http://%[3]s/v3/credentials?user_id=u-alice' -H 'X-Auth-Token: demo-admin-token'

# the mirror's state: backlog, last divergences (never secrets)
curl -s http://%[2]s/migration
`, addr, admin, sec)
}

func printDemo(w io.Writer, addr, admin, up, idn string) {
	b := "http://" + addr
	fmt.Fprintf(w, `credbridge demo is running.
  bridge            %s   (clients of both dialects)
  oscred backend    http://%s   (reference Huawei/OTC IAM, the upstream)
  identity service  http://%s   (reference Keystone tokens)
  admin             http://%s/healthz  /readyz

Demo tokens: demo-admin-token (secu_admin), demo-alice-token and demo-bob-token
(plain users u-alice, u-bob), demo-te-token (te_admin: not a key admin).

# oscred client: create a key for alice as the admin (the only answer with a secret)
curl -s -X POST %[1]s/v3.0/OS-CREDENTIAL/credentials -H 'X-Auth-Token: demo-admin-token' \
  -H 'Content-Type: application/json;charset=utf8' -d '{"credential":{"user_id":"u-alice","description":"demo"}}' | tee demo-key.json; echo
AK=$(grep -o '"access":"[A-Z0-9]*"' demo-key.json | cut -d'"' -f4); echo "AK=$AK"

# oscred client: alice lists her keys (no secrets)
curl -s %[1]s/v3.0/OS-CREDENTIAL/credentials -H 'X-Auth-Token: demo-alice-token'

# ec2blob (IBM) client against the same oscred backend: alice's keys with blobs
curl -s '%[1]s/credentials?user_id=u-alice' -H 'X-Auth-Token: demo-alice-token'

# ec2blob (IBM) client: deactivate the key
curl -s -X PATCH %[1]s/credentials/$AK -H 'X-Auth-Token: demo-alice-token' -H 'Content-Type: application/json' \
  -d '{"credential":{"blob":{"access":"'$AK'","status":"Inactive"},"type":"ec2","user_id":"u-alice"}}'

# Keystone client: the same key by its sha256 id
curl -s %[1]s/v3/credentials/$(printf %%s "$AK" | sha256sum | cut -d' ' -f1) -H 'X-Auth-Token: demo-alice-token'

# bob may not touch alice's key (403, in the client's dialect)
curl -s -X DELETE %[1]s/v3.0/OS-CREDENTIAL/credentials/$AK -H 'X-Auth-Token: demo-bob-token'

# alice deletes it (204), which leaves her two-key quota free for the README's examples
curl -s -o /dev/null -w '%%{http_code}\n' -X DELETE %[1]s/v3.0/OS-CREDENTIAL/credentials/$AK -H 'X-Auth-Token: demo-alice-token'

# python-openstackclient, unchanged (Debian: python3-openstackclient)
export OS_AUTH_TYPE=admin_token OS_ENDPOINT=%[1]s/v3 OS_TOKEN=demo-alice-token
ID=$(openstack credential create --type ec2 --project p-alice u-alice '{"description":"from osc"}' -f value -c id)
openstack credential list --user u-alice
openstack credential delete "$ID"

Ctrl-C stops everything.
`, b, up, idn, admin)
}
