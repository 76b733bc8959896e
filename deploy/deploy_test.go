// Package deploy_test validates the deployment files. Each kustomization is
// rendered with kustomize's own Go API (what `kubectl kustomize` runs), every
// resource it yields decodes strictly into its real API type (unknown or
// mistyped fields fail, as a schema check would; it stands in for
// kubeconform, whose schemas this machine cannot download), and the bridge
// in each Pod is loaded with the config it would really run with: the image's
// ENV, the Pod's env, its mounted ConfigMap and Secrets, through the
// product's own config.Load.
package deploy_test

import (
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// serviceMonitor is the part of the Prometheus Operator's
// monitoring.coreos.com/v1 ServiceMonitor the gateway uses; decoding strictly
// into it refuses any other field (its full Go types would pull the operator
// in for one struct).
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type manifests struct {
	deployments     []appsv1.Deployment
	services        []corev1.Service
	configMaps      []corev1.ConfigMap
	pdbs            []policyv1.PodDisruptionBudget
	hpas            []autoscalingv2.HorizontalPodAutoscaler
	netpols         []networkingv1.NetworkPolicy
	serviceMonitors []serviceMonitor
	labels          map[string]map[string]string // "Kind/name" -> metadata.labels
}

func strict[T any](t *testing.T, what string, doc []byte) T {
	t.Helper()
	var v T
	if err := yaml.UnmarshalStrict(doc, &v); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// collect decodes doc strictly onto the end of into, when called.
func collect[T any](t *testing.T, what string, doc []byte, into *[]T) func() {
	return func() { *into = append(*into, strict[T](t, what, doc)) }
}

// render runs kustomize over dir in fsys and decodes what it yields.
func render(t *testing.T, fsys filesys.FileSystem, dir string) manifests {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	m := manifests{labels: map[string]map[string]string{}}
	for _, r := range res.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		what := dir + ": " + r.GetKind() + "/" + r.GetName()
		m.labels[r.GetKind()+"/"+r.GetName()] = r.GetLabels()
		decode, ok := map[string]func(){
			"apps/v1/Deployment":                      collect(t, what, doc, &m.deployments),
			"v1/Service":                              collect(t, what, doc, &m.services),
			"v1/ConfigMap":                            collect(t, what, doc, &m.configMaps),
			"policy/v1/PodDisruptionBudget":           collect(t, what, doc, &m.pdbs),
			"autoscaling/v2/HorizontalPodAutoscaler":  collect(t, what, doc, &m.hpas),
			"networking.k8s.io/v1/NetworkPolicy":      collect(t, what, doc, &m.netpols),
			"monitoring.coreos.com/v1/ServiceMonitor": collect(t, what, doc, &m.serviceMonitors),
		}[r.GetApiVersion()+"/"+r.GetKind()]
		if !ok {
			t.Fatalf("%s: unexpected %s", what, r.GetApiVersion())
		}
		decode()
	}
	return m
}

func renderDir(t *testing.T, dir string) manifests {
	return render(t, filesys.MakeFsOnDisk(), dir)
}

// bridge returns the credbridge container of a pod template and whether it is
// an init container.
func bridge(t *testing.T, d appsv1.Deployment) (corev1.Container, bool) {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "credbridge" {
			return c, false
		}
	}
	for _, c := range d.Spec.Template.Spec.InitContainers {
		if c.Name == "credbridge" {
			return c, true
		}
	}
	t.Fatalf("deployment %s has no credbridge container", d.Name)
	return corev1.Container{}, false
}

// readmeSecrets reads the Secrets deploy/README.md tells the operator to
// create (`kubectl create secret generic NAME --from-file=KEY=FILE ...`):
// name -> keys. They are not in the kustomize output, so this is what a Pod
// can mount.
func readmeSecrets(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	line := regexp.MustCompile(`kubectl create secret generic (\S+)((?: --from-file=\S+)+)`)
	for _, m := range line.FindAllStringSubmatch(string(raw), -1) {
		for _, f := range strings.Fields(m[2]) {
			key, _, _ := strings.Cut(strings.TrimPrefix(f, "--from-file="), "=")
			out[m[1]] = append(out[m[1]], key)
		}
	}
	return out
}

// podContainer is the bridge of d as it starts: the image, the container's
// args and env over it, and its volumes mounted (ConfigMaps from the render,
// Secrets with the keys the README creates, stood in by random values).
func podContainer(t *testing.T, m manifests, d appsv1.Deployment) container {
	t.Helper()
	k, _ := bridge(t, d)
	c := image(t)
	if len(k.Command) > 0 {
		t.Fatalf("%s: command overrides the image's entrypoint", d.Name)
	}
	if len(k.Args) > 0 {
		c.args = k.Args
	}
	if len(k.EnvFrom) > 0 {
		t.Fatalf("%s: envFrom is not modelled here; use env", d.Name)
	}
	for _, e := range k.Env {
		if e.ValueFrom != nil {
			t.Fatalf("%s: env %s from a reference is not modelled here", d.Name, e.Name)
		}
		c.setEnv(e.Name, e.Value)
	}
	secrets := readmeSecrets(t)
	for _, vm := range k.VolumeMounts {
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			t.Fatalf("%s: subPath mounts do not follow ConfigMap updates", d.Name)
		}
		for _, other := range k.VolumeMounts {
			if other.Name != vm.Name && strings.HasPrefix(vm.MountPath, other.MountPath+"/") {
				t.Fatalf("%s: %s is mounted inside %s: ConfigMap and Secret volumes are read-only, no mount point can be made in one", d.Name, vm.MountPath, other.MountPath)
			}
		}
		c.mount(t, vm.MountPath, volumeFiles(t, m, d, vm.Name, secrets))
	}
	return c
}

// volumeFiles is what volume name of d holds: file name -> contents.
func volumeFiles(t *testing.T, m manifests, d appsv1.Deployment, name string, secrets map[string][]string) map[string][]byte {
	t.Helper()
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name != name {
			continue
		}
		switch {
		case v.ConfigMap != nil:
			for _, cm := range m.configMaps {
				if cm.Name == v.ConfigMap.Name {
					return pick(t, d.Name+" configMap "+cm.Name, cm.Data, v.ConfigMap.Items)
				}
			}
			t.Fatalf("%s: volume %s names ConfigMap %s, which the kustomization does not make", d.Name, name, v.ConfigMap.Name)
		case v.Secret != nil:
			keys, ok := secrets[v.Secret.SecretName]
			if !ok {
				t.Fatalf("%s: volume %s names Secret %s, which README.md never creates", d.Name, name, v.Secret.SecretName)
			}
			data := map[string]string{}
			for _, k := range keys {
				data[k] = strings.Repeat("stand-in-", 4) + k // 32+ bytes, like a real key
			}
			return pick(t, d.Name+" secret "+v.Secret.SecretName, data, v.Secret.Items)
		case v.EmptyDir != nil:
			return nil
		}
		t.Fatalf("%s: volume %s: only ConfigMap, Secret and emptyDir volumes are modelled", d.Name, name)
	}
	t.Fatalf("%s: mounts volume %s, which it does not declare", d.Name, name)
	return nil
}

// pick is a ConfigMap's or Secret's files as a volume projects them: every key,
// or the items named (a missing key stops the Pod from starting).
func pick(t *testing.T, what string, data map[string]string, items []corev1.KeyToPath) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = []byte(v)
		}
		return out
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			t.Fatalf("%s has no key %s", what, it.Key)
		}
		out[it.Path] = []byte(v)
	}
	return out
}

// underSecret reports whether file (a container path) lies in a Secret mount.
func underSecret(d appsv1.Deployment, file string) bool {
	k := d.Spec.Template.Spec
	secretVols := map[string]bool{}
	for _, v := range k.Volumes {
		if v.Secret != nil {
			secretVols[v.Name] = true
		}
	}
	for _, c := range append(k.Containers, k.InitContainers...) {
		if c.Name != "credbridge" {
			continue
		}
		for _, vm := range c.VolumeMounts {
			if secretVols[vm.Name] && strings.HasPrefix(path.Clean(file), vm.MountPath+"/") {
				return true
			}
		}
	}
	return false
}

func checkContainer(t *testing.T, c corev1.Container) {
	t.Helper()
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("liveness probe must GET /healthz")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("readiness probe must GET /readyz")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("resource requests missing")
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("container must not escalate and must have a read-only root")
	}
	for _, p := range c.Ports {
		if p.HostPort != 0 || p.HostIP != "" {
			t.Errorf("port %s is bound on the node (hostPort)", p.Name)
		}
	}
}

// containerPort is the number of c's port name.
func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %s", c.Name, name)
	return 0
}
