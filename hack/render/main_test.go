package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keeperlb/keeperlb/internal/install"
)

// TestRenderHelm runs the command as docs/install.md does, with values
// from a file and from --set.
func TestRenderHelm(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte("controller:\n  replicas: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run([]string{"helm", "--namespace", "lb", "-f", values, "--set", "serviceMonitor.enabled=true", "../../charts/keeperlb"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Decode(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	d := install.Find(objs, "Deployment", install.ControllerName)
	if d == nil || d.GetNamespace() != "lb" {
		t.Fatalf("no controller Deployment in namespace lb: %v", d)
	}
	if r, _, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "replicas"); fmt.Sprint(r) != "3" {
		t.Errorf("values file ignored: replicas %v", r)
	}
	if install.Find(objs, "ServiceMonitor", install.ControllerName) == nil {
		t.Error("--set serviceMonitor.enabled=true ignored")
	}
}

// TestRenderKustomize builds a copy of config/ from disk, as the doc's
// command does, with no key file in it: nothing is to be prepared, and the
// build carries the speaker but no Secret (the controller creates the
// heartbeat key).
func TestRenderKustomize(t *testing.T) {
	dir := t.TempDir()
	cp := exec.Command("cp", "-r", "../../config", dir)
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("copying config/: %v: %s", err, out)
	}
	// A key file left from an older install must not be what the build
	// succeeds with.
	_ = os.Remove(filepath.Join(dir, "config", "speaker", "memberlist.key"))
	var out bytes.Buffer
	if err := run([]string{"kustomize", filepath.Join(dir, "config", "default")}, &out); err != nil {
		t.Fatalf("config/default must build with no key file: %v", err)
	}
	objs, err := install.Decode(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if install.Find(objs, "DaemonSet", install.SpeakerName) == nil || install.Find(objs, "Deployment", install.ControllerName) == nil {
		t.Error("the build lacks the speaker or the controller")
	}
	for _, o := range objs {
		if o.GetKind() == "Secret" {
			t.Errorf("the build carries Secret %s; the controller creates the heartbeat key", o.GetName())
		}
	}
}

func TestRenderUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"kustomize"}, {"helm"}} {
		if err := run(args, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
