package deploy_test

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The labels kubernetes.io recommends on every object
// (concepts/overview/working-with-objects/common-labels).
var recommended = []string{
	"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
	"app.kubernetes.io/part-of", "app.kubernetes.io/managed-by",
}

func checkLabels(t *testing.T, m manifests, extra ...string) {
	t.Helper()
	for obj, l := range m.labels {
		for _, k := range append(recommended, extra...) {
			if l[k] == "" {
				t.Errorf("%s has no label %s", obj, k)
			}
		}
	}
	for _, d := range m.deployments {
		for _, k := range recommended {
			if d.Spec.Template.Labels[k] == "" {
				t.Errorf("deployment %s's pods have no label %s", d.Name, k)
			}
		}
	}
}

// admitted lists the peers the NetworkPolicies selecting pod admit to port
// (name or number) of it: nil peers in a rule means everyone. ok is false
// when no policy selects the pod (then everyone may connect).
func admitted(t *testing.T, m manifests, pod map[string]string, c corev1.Container, port string) (peers [][]networkingv1.NetworkPolicyPeer, ok bool) {
	t.Helper()
	num := strconv.Itoa(int(containerPort(t, c, port)))
	for _, np := range m.netpols {
		sel, err := ingressSelector(np)
		if err != nil {
			t.Fatal(err)
		}
		if !sel.Matches(labels.Set(pod)) {
			continue
		}
		ok = true
		for _, rule := range np.Spec.Ingress {
			covers := len(rule.Ports) == 0
			for _, p := range rule.Ports {
				if p.Port != nil && (p.Port.String() == port || p.Port.String() == num) {
					covers = true
				}
			}
			if covers {
				peers = append(peers, rule.From)
			}
		}
	}
	return peers, ok
}

func ingressSelector(np networkingv1.NetworkPolicy) (labels.Selector, error) {
	if len(np.Spec.PolicyTypes) > 0 && !containsType(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		return labels.Nothing(), nil
	}
	return selectorOf(np.Spec.PodSelector.MatchLabels), nil
}

func selectorOf(ml map[string]string) labels.Selector {
	return labels.SelectorFromSet(ml)
}

func containsType(ts []networkingv1.PolicyType, want networkingv1.PolicyType) bool {
	for _, t := range ts {
		if t == want {
			return true
		}
	}
	return false
}

// checkAdminPrivate holds the admin port (metrics, and pprof when on) to the
// monitoring namespace: a NetworkPolicy selects the pod, every rule that
// admits the port admits that namespace alone, and no Service puts the pod on
// a node port or a load balancer.
func checkAdminPrivate(t *testing.T, m manifests, d appsv1.Deployment) {
	t.Helper()
	c, _ := bridge(t, d)
	peers, ok := admitted(t, m, d.Spec.Template.Labels, c, "admin")
	if !ok {
		t.Fatalf("%s: no NetworkPolicy selects the pods: the admin port is open to the cluster", d.Name)
	}
	if len(peers) == 0 {
		t.Errorf("%s: no one may scrape the admin port", d.Name)
	}
	for _, from := range peers {
		if len(from) != 1 || from[0].PodSelector != nil || from[0].IPBlock != nil || from[0].NamespaceSelector == nil ||
			len(from[0].NamespaceSelector.MatchLabels) != 1 || from[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
			t.Errorf("%s: the admin port is admitted from %+v, not the monitoring namespace alone", d.Name, from)
		}
	}
	for _, s := range m.services {
		if s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP || len(s.Spec.ExternalIPs) > 0 {
			t.Errorf("service %s is %s: reachable from outside the cluster", s.Name, s.Spec.Type)
		}
	}
	if d.Spec.Template.Spec.HostNetwork {
		t.Errorf("%s: hostNetwork puts every port on the node", d.Name)
	}
}

func hostOf(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// checkPodShape holds what both deployments promise: the pod's own config
// (mounted, hash-named so an edit rolls the pods), no service links in the
// environment, the image the Makefile builds.
func checkPodShape(t *testing.T, m manifests, d appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		t.Errorf("%s: enableServiceLinks must be false: each Service would put CREDBRIDGE_*_SERVICE_HOST/_PORT variables in the bridge's environment", d.Name)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: the bridge needs no Kubernetes API token", d.Name)
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && !hashed(v.ConfigMap.Name, m) {
			t.Errorf("%s: ConfigMap %s is not made by configMapGenerator (no content hash): a config edit would not roll the pods", d.Name, v.ConfigMap.Name)
		}
	}
}

// hashSuffix is kustomize's content hash on a generated name.
var hashSuffix = regexp.MustCompile(`-[bcdfghkmt2-9]{10}$`)

// hashed reports whether name is a generated ConfigMap of m (name-<hash>).
func hashed(name string, m manifests) bool {
	for _, cm := range m.configMaps {
		if cm.Name == name && hashSuffix.MatchString(name) {
			return true
		}
	}
	return false
}

func TestGateway(t *testing.T) {
	m := renderDir(t, "k8s/gateway")
	if len(m.deployments) != 1 || len(m.services) != 2 || len(m.configMaps) != 1 || len(m.pdbs) != 1 || len(m.hpas) != 1 || len(m.netpols) != 1 || len(m.serviceMonitors) != 1 {
		t.Fatalf("gateway needs a Deployment, two Services, a ConfigMap, PDB, HPA, NetworkPolicy and ServiceMonitor: %+v", m)
	}
	d := m.deployments[0]
	k, init := bridge(t, d)
	if init {
		t.Fatal("the gateway's bridge is the pod's main container")
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 || m.hpas[0].Spec.MinReplicas == nil || *m.hpas[0].Spec.MinReplicas < 2 {
		t.Error("gateway must run at least 2 replicas")
	}
	checkContainer(t, k)
	checkPodShape(t, m, d)
	checkLabels(t, m, "app.kubernetes.io/version")
	pods := labels.Set(d.Spec.Template.Labels)
	sels := []map[string]string{d.Spec.Selector.MatchLabels, m.services[0].Spec.Selector, m.services[1].Spec.Selector, m.pdbs[0].Spec.Selector.MatchLabels}
	for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
		sels = append(sels, c.LabelSelector.MatchLabels)
	}
	for _, sel := range sels {
		if len(sel) == 0 || !selectorOf(sel).Matches(pods) {
			t.Errorf("selector %v does not select the pods %v", sel, pods)
		}
	}
	if m.hpas[0].Spec.ScaleTargetRef.Name != d.Name {
		t.Error("HPA targets another deployment")
	}

	c := podContainer(t, m, d)
	cfg, err := c.effective(t)
	if err != nil {
		t.Fatalf("the gateway's bridge would not start: %v", err)
	}
	if cfg.Cache.RedisURL == "" {
		t.Error("gateway replicas must share Redis")
	}
	if !underSecret(d, c.inContainer(cfg.Cache.HMACKeyFile)) || !underSecret(d, c.inContainer(cfg.Upstream.Auth.Keystone.PasswordFile)) {
		t.Errorf("the cache's HMAC key (%s) and the upstream password (%s) must come from Secrets", c.inContainer(cfg.Cache.HMACKeyFile), c.inContainer(cfg.Upstream.Auth.Keystone.PasswordFile))
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < int64(cfg.ShutdownTimeout.Seconds()) {
		t.Error("termination grace period shorter than shutdown_timeout")
	}
	for name, addr := range map[string]string{"http": cfg.Listen, "admin": cfg.AdminListen} {
		host, port := hostOf(t, addr)
		if isLoopback(host) {
			t.Errorf("%s listens on %s: the Service and the kubelet cannot reach it", name, addr)
		}
		if int32(port) != containerPort(t, k, name) {
			t.Errorf("%s listens on %s, the container port %s is %d", name, addr, name, containerPort(t, k, name))
		}
	}
	if peers, _ := admitted(t, m, d.Spec.Template.Labels, k, "http"); len(peers) == 0 {
		t.Error("the NetworkPolicy admits no client")
	}
	checkAdminPrivate(t, m, d)
	checkServiceMonitor(t, m, k)
}

// checkServiceMonitor: the ServiceMonitor selects the admin Service, whose
// port leads to the container's admin port, and scrapes /metrics there.
func checkServiceMonitor(t *testing.T, m manifests, k corev1.Container) {
	t.Helper()
	sm := m.serviceMonitors[0]
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Fatalf("ServiceMonitor must scrape /metrics: %+v", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0].Port
	found := 0
	for _, s := range m.services {
		if !selectorOf(sm.Spec.Selector.MatchLabels).Matches(labels.Set(s.Labels)) {
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.Name == ep {
				found++
				if p.TargetPort.String() != "admin" && p.TargetPort.IntValue() != int(containerPort(t, k, "admin")) {
					t.Errorf("service %s port %s leads to %s, not the admin port", s.Name, ep, p.TargetPort.String())
				}
			}
		}
	}
	if found != 1 {
		t.Errorf("ServiceMonitor finds %d services with port %s; want the admin Service alone", found, ep)
	}
}

func TestSidecar(t *testing.T) {
	m := renderDir(t, "k8s/sidecar")
	if len(m.deployments) != 1 || len(m.configMaps) != 1 || len(m.netpols) != 1 {
		t.Fatalf("sidecar needs a Deployment, a ConfigMap and a NetworkPolicy: %+v", m)
	}
	d := m.deployments[0]
	k, init := bridge(t, d)
	if !init || k.RestartPolicy == nil || *k.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatal("the bridge must be a native sidecar: an init container with restartPolicy Always")
	}
	if len(d.Spec.Template.Spec.Containers) == 0 {
		t.Fatal("the sidecar shares a Pod with its backend")
	}
	checkContainer(t, k)
	checkPodShape(t, m, d)
	checkLabels(t, m)

	c := podContainer(t, m, d)
	cfg, err := c.effective(t)
	if err != nil {
		t.Fatalf("the sidecar's bridge would not start: %v", err)
	}
	host, _ := hostOf(t, cfg.Listen)
	u, err := url.Parse(cfg.Upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !isLoopback(host) || !isLoopback(u.Hostname()) {
		t.Errorf("sidecar must listen on and reach the Pod's loopback: %s -> %s", cfg.Listen, cfg.Upstream.URL)
	}
	if cfg.Cache.RedisURL != "" && !underSecret(d, c.inContainer(cfg.Cache.HMACKeyFile)) {
		t.Error("a sidecar sharing Redis needs its HMAC key from a Secret")
	}
	if _, port := hostOf(t, cfg.AdminListen); int32(port) != containerPort(t, k, "admin") {
		t.Errorf("admin listens on %s, the container port is %d", cfg.AdminListen, containerPort(t, k, "admin"))
	}
	checkAdminPrivate(t, m, d)
}

// A config edit must roll the pods: the generated ConfigMap's name, which the
// pod template names, changes with the file.
func TestConfigEditRollsPods(t *testing.T) {
	for _, dir := range []string{"k8s/gateway", "k8s/sidecar"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			fsys := filesys.MakeFsInMemory()
			for _, f := range listDir(t, dir) {
				if err := fsys.WriteFile(filepath.Join(dir, f.name), f.data); err != nil {
					t.Fatal(err)
				}
			}
			before := podConfigMaps(render(t, fsys, dir))
			cfg := filepath.Join(dir, "config.yaml")
			raw, err := fsys.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			edited := strings.Replace(string(raw), "\nlimits:\n", "\nlog: {level: debug}\nlimits:\n", 1)
			if edited == string(raw) {
				t.Fatal("config.yaml has no limits section to edit beside")
			}
			if err := fsys.WriteFile(cfg, []byte(edited)); err != nil {
				t.Fatal(err)
			}
			after := podConfigMaps(render(t, fsys, dir))
			if len(before) == 0 || before == after {
				t.Fatalf("the pod template names ConfigMap %q before the edit and %q after: the pods would not roll", before, after)
			}
		})
	}
}

func podConfigMaps(m manifests) string {
	var names []string
	for _, v := range m.deployments[0].Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			names = append(names, v.ConfigMap.Name)
		}
	}
	return strings.Join(names, ",")
}

type file struct {
	name string
	data []byte
}

// listDir reads the regular files of dir.
func listDir(t *testing.T, dir string) []file {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []file
	for _, e := range ents {
		if e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, file{e.Name(), b})
		}
	}
	return out
}
