package deploy_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// makeImage is the image `make image` builds (IMAGE in the Makefile), after
// checking its recipe passes the version and commit to the build.
func makeImage(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	mk := string(raw)
	m := regexp.MustCompile(`(?m)^IMAGE\s*\??=\s*(\S+)\s*$`).FindStringSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile sets no IMAGE")
	}
	recipe := regexp.MustCompile(`(?m)^image:.*\n((?:\t.*\n)+)`).FindStringSubmatch(mk)
	if recipe == nil {
		t.Fatal("the Makefile has no image target")
	}
	for _, want := range []string{"-t $(IMAGE)", "--build-arg VERSION=$(VERSION)", "--build-arg COMMIT=$(COMMIT)"} {
		if !strings.Contains(recipe[1], want) {
			t.Errorf("make image does not pass %s:\n%s", want, recipe[1])
		}
	}
	return m[1]
}

// The tag `make image` builds is the one compose and both kustomizations run,
// under the name the Dockerfile's title label gives.
func TestOneImageTag(t *testing.T) {
	want := makeImage(t)
	name, tag, ok := strings.Cut(want, ":")
	if !ok || tag == "" || tag == "latest" {
		t.Fatalf("IMAGE %s: want a fixed tag", want)
	}
	var labels []string
	st := stages(t, "../Dockerfile")
	for _, l := range find(st[len(st)-1], "LABEL") {
		labels = append(labels, envPairs(t, l)...)
	}
	if !strings.Contains(strings.Join(labels, "\n"), "org.opencontainers.image.title="+name+"\n") {
		t.Errorf("the Dockerfile's title label is not %s: %v", name, labels)
	}

	c := loadCompose(t)
	n := 0
	for svc, s := range c.Services {
		if repo, _, _ := strings.Cut(s.Image, ":"); repo == name {
			n++
			if s.Image != want {
				t.Errorf("compose service %s runs %s; make image builds %s", svc, s.Image, want)
			}
		}
	}
	if n == 0 {
		t.Error("compose runs no credbridge image")
	}

	for _, dir := range []string{"k8s/gateway", "k8s/sidecar"} {
		m := renderDir(t, dir)
		n := 0
		for _, d := range m.deployments {
			for _, k := range append(append([]corev1.Container{}, d.Spec.Template.Spec.Containers...), d.Spec.Template.Spec.InitContainers...) {
				if repo, _, _ := strings.Cut(k.Image, ":"); repo == name {
					n++
					if k.Image != want {
						t.Errorf("%s: container %s runs %s; make image builds %s", dir, k.Name, k.Image, want)
					}
				}
			}
			if v, ok := d.Labels["app.kubernetes.io/version"]; ok && v != tag {
				t.Errorf("%s: label app.kubernetes.io/version %s; the image is %s", dir, v, want)
			}
		}
		if n == 0 {
			t.Errorf("%s runs no credbridge image", dir)
		}
	}
}
