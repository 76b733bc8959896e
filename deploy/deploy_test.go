// Package deploy_test validates the deployment files: every Kubernetes manifest
// decodes strictly into its real API type (unknown or mistyped fields fail, as a
// schema check would), each kustomization names files that exist, the gateway
// and sidecar shapes hold, and the bridge configs they carry pass credbridge's
// own validation. It stands in for kubeconform, whose schemas this machine
// cannot download.
package deploy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credbridge/credbridge/config"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// documents splits a multi-document YAML file.
func documents(t *testing.T, path string) [][]byte {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, d := range bytes.Split(raw, []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			out = append(out, d)
		}
	}
	return out
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name   string `json:"name"`
		NewTag string `json:"newTag"`
	} `json:"images"`
}

type manifests struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	configMaps  []corev1.ConfigMap
	pdbs        []policyv1.PodDisruptionBudget
	hpas        []autoscalingv2.HorizontalPodAutoscaler
}

func strict[T any](t *testing.T, path string, doc []byte) T {
	var v T
	if err := yaml.UnmarshalStrict(doc, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// load reads a kustomization and every resource it names.
func load(t *testing.T, dir string) manifests {
	kpath := filepath.Join(dir, "kustomization.yaml")
	k := strict[kustomization](t, kpath, documents(t, kpath)[0])
	if k.Kind != "Kustomization" || k.APIVersion != "kustomize.config.k8s.io/v1beta1" || len(k.Resources) == 0 {
		t.Fatalf("%s: not a kustomization with resources", kpath)
	}
	var m manifests
	for _, r := range k.Resources {
		path := filepath.Join(dir, r)
		for _, doc := range documents(t, path) {
			var tm typeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			switch tm.APIVersion + "/" + tm.Kind {
			case "apps/v1/Deployment":
				m.deployments = append(m.deployments, strict[appsv1.Deployment](t, path, doc))
			case "v1/Service":
				m.services = append(m.services, strict[corev1.Service](t, path, doc))
			case "v1/ConfigMap":
				m.configMaps = append(m.configMaps, strict[corev1.ConfigMap](t, path, doc))
			case "policy/v1/PodDisruptionBudget":
				m.pdbs = append(m.pdbs, strict[policyv1.PodDisruptionBudget](t, path, doc))
			case "autoscaling/v2/HorizontalPodAutoscaler":
				m.hpas = append(m.hpas, strict[autoscalingv2.HorizontalPodAutoscaler](t, path, doc))
			default:
				t.Fatalf("%s: unexpected %s %s", path, tm.APIVersion, tm.Kind)
			}
		}
	}
	return m
}

// bridge returns the credbridge container of a pod template.
func bridge(t *testing.T, d appsv1.Deployment) corev1.Container {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "credbridge" {
			return c
		}
	}
	t.Fatalf("deployment %s has no credbridge container", d.Name)
	return corev1.Container{}
}

func checkContainer(t *testing.T, c corev1.Container) {
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Fatal("liveness probe must GET /healthz")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Fatal("readiness probe must GET /readyz")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Fatal("resource requests missing")
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Fatal("container must not escalate and must have a read-only root")
	}
}

// checkBridgeConfig validates the config.yaml a ConfigMap carries, with the
// secret files it names stood in by temporary files.
func checkBridgeConfig(t *testing.T, cm corev1.ConfigMap) *config.Config {
	raw, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatalf("configmap %s has no config.yaml", cm.Name)
	}
	dir := t.TempDir()
	for _, line := range strings.Split(raw, "\n") {
		if _, v, ok := strings.Cut(line, "_file:"); ok {
			if p := strings.TrimSpace(v); strings.HasPrefix(p, "/etc/credbridge/secrets/") {
				local := filepath.Join(dir, strings.TrimPrefix(p, "/etc/credbridge/secrets/"))
				_ = os.MkdirAll(filepath.Dir(local), 0o700)
				_ = os.WriteFile(local, []byte("stand-in-secret-value-0123456789"), 0o600)
			}
		}
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(raw, "/etc/credbridge/secrets/", dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("configmap %s: %v", cm.Name, err)
	}
	return cfg
}

func TestGateway(t *testing.T) {
	m := load(t, "k8s/gateway")
	if len(m.deployments) != 1 || len(m.services) == 0 || len(m.configMaps) != 1 || len(m.pdbs) != 1 || len(m.hpas) != 1 {
		t.Fatalf("gateway needs a Deployment, Service, ConfigMap, PDB and HPA: %+v", m)
	}
	d := m.deployments[0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 || m.hpas[0].Spec.MinReplicas == nil || *m.hpas[0].Spec.MinReplicas < 2 {
		t.Fatal("gateway must run at least 2 replicas")
	}
	checkContainer(t, bridge(t, d))
	sel := d.Spec.Selector.MatchLabels
	for k, v := range sel {
		if d.Spec.Template.Labels[k] != v || m.services[0].Spec.Selector[k] != v || m.pdbs[0].Spec.Selector.MatchLabels[k] != v {
			t.Fatal("selectors of Deployment, Service and PDB disagree")
		}
	}
	if m.hpas[0].Spec.ScaleTargetRef.Name != d.Name {
		t.Fatal("HPA targets another deployment")
	}
	cfg := checkBridgeConfig(t, m.configMaps[0])
	if cfg.Cache.RedisURL == "" || cfg.Cache.HMACKeyFile == "" {
		t.Fatal("gateway replicas must share Redis with signed entries")
	}
	secrets := map[string]bool{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Secret.SecretName] = true
		}
	}
	if !secrets["credbridge-cache-hmac"] || !secrets["credbridge-upstream-auth"] {
		t.Fatalf("HMAC key and upstream credentials must come from Secrets: %v", secrets)
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < int64(cfg.ShutdownTimeout.Seconds()) {
		t.Fatal("termination grace period shorter than shutdown_timeout")
	}
}

func TestSidecar(t *testing.T) {
	m := load(t, "k8s/sidecar")
	if len(m.deployments) != 1 || len(m.configMaps) != 1 {
		t.Fatalf("sidecar needs a Deployment and a ConfigMap: %+v", m)
	}
	d := m.deployments[0]
	if len(d.Spec.Template.Spec.Containers) < 2 {
		t.Fatal("the sidecar shares a Pod with its backend")
	}
	checkContainer(t, bridge(t, d))
	cfg := checkBridgeConfig(t, m.configMaps[0])
	if !strings.HasPrefix(cfg.Listen, "127.0.0.1:") || !strings.Contains(cfg.Upstream.URL, "127.0.0.1") {
		t.Fatalf("sidecar must listen on and reach the Pod's loopback: %s -> %s", cfg.Listen, cfg.Upstream.URL)
	}
}

func TestComposeFiles(t *testing.T) {
	for _, f := range []string{"compose.yaml", "otel-collector.yaml"} {
		var v map[string]any
		if err := yaml.Unmarshal(documents(t, f)[0], &v); err != nil || len(v) == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	var c struct {
		Services map[string]struct {
			Image   string   `json:"image"`
			Command []string `json:"command"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(documents(t, "compose.yaml")[0], &c); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"bridge", "redis", "otel-collector", "jaeger", "backend", "identity"} {
		if c.Services[s].Image == "" {
			t.Fatalf("compose lacks service %s", s)
		}
	}
}
