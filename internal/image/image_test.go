package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/keeperlb/keeperlb/internal/image"
)

var host = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

// hello builds testdata/hello as a static binary, once per test.
func hello(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hello")
	if err := image.GoBuild(context.Background(), "", ".", "./testdata/hello", bin, host); err != nil {
		t.Fatal(err)
	}
	return bin
}

func spec(bin string) image.Spec {
	return image.Spec{
		Title: "hello", Binary: bin, Platform: host,
		Version: "1.2.3", Revision: "0123abcd", Source: "https://example.com/keeperlb",
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// writeAndOpen writes the image as a layout tar and unpacks it again.
func writeAndOpen(t *testing.T, s image.Spec, ref string) (string, v1.ImageIndex) {
	t.Helper()
	img, err := image.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := image.NewIndex(img)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "images", "hello.tar")
	if err := image.WriteLayoutTar(path, idx, ref, s.Created); err != nil {
		t.Fatal(err)
	}
	layout, err := image.OpenLayoutTar(path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return path, layout
}

func TestImage(t *testing.T) {
	s := spec(hello(t))
	_, layout := writeAndOpen(t, s, "registry.example/keeperlb/hello:1.2.3")

	// index.json: one entry, the image index, named.
	top, err := layout.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Manifests) != 1 {
		t.Fatalf("index.json has %d entries, want 1", len(top.Manifests))
	}
	entry := top.Manifests[0]
	if entry.MediaType != types.OCIImageIndex {
		t.Errorf("index.json entry is %s, want an OCI image index", entry.MediaType)
	}
	if entry.Annotations[image.RefName] != "1.2.3" || entry.Annotations[image.ContainerdName] != "registry.example/keeperlb/hello:1.2.3" {
		t.Errorf("index.json entry names %v", entry.Annotations)
	}
	idx, err := layout.ImageIndex(entry.Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Platform == nil || im.Manifests[0].Platform.OS != "linux" || im.Manifests[0].Platform.Architecture != runtime.GOARCH {
		t.Fatalf("image index manifests %+v, want one for linux/%s", im.Manifests, runtime.GOARCH)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}

	// Config: entrypoint, user, labels, platform.
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/hello"}) {
		t.Errorf("entrypoint %v", cf.Config.Entrypoint)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", cf.Config.User)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.title":    "hello",
		"org.opencontainers.image.version":  "1.2.3",
		"org.opencontainers.image.revision": "0123abcd",
		"org.opencontainers.image.source":   "https://example.com/keeperlb",
		"org.opencontainers.image.created":  "2026-01-02T03:04:05Z",
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range wantLabels {
		if cf.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
		}
		if m.Annotations[k] != v {
			t.Errorf("manifest annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s / %s, want OCI", m.MediaType, m.Config.MediaType)
	}
	if !cf.Created.Time.Equal(s.Created) {
		t.Errorf("created %s, want %s", cf.Created.Time, s.Created)
	}

	// Layers: the binary, executable, and the user database.
	files := layerFiles(t, img)
	bin, ok := files["usr/local/bin/hello"]
	if !ok {
		t.Fatalf("no usr/local/bin/hello in the layers; have %v", keys(files))
	}
	if bin.hdr.Typeflag != tar.TypeReg || bin.hdr.Mode&0o111 != 0o111 || bin.hdr.Uid != 0 {
		t.Errorf("binary entry: type %c mode %o uid %d, want a root-owned executable", bin.hdr.Typeflag, bin.hdr.Mode, bin.hdr.Uid)
	}
	if !strings.Contains(string(files["etc/passwd"].data), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the nonroot user:\n%s", files["etc/passwd"].data)
	}
	if tmp := files["tmp/"]; tmp.hdr == nil || tmp.hdr.Mode != 0o1777 {
		t.Errorf("/tmp must be a sticky world-writable folder")
	}
	for name, f := range files {
		if !f.hdr.ModTime.Equal(s.Created) {
			t.Errorf("%s has time %s, want the image's created time", name, f.hdr.ModTime)
		}
	}

	// The binary from the layer runs.
	run := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(run, bin.data, os.FileMode(bin.hdr.Mode)&0o777); err != nil {
		t.Fatal(err)
	}
	if err := image.CheckStatic(run, host); err != nil {
		t.Error(err)
	}
	out, err := exec.Command(run, "a", "b").CombinedOutput()
	if err != nil || string(out) != "hello from the image: 2 args\n" {
		t.Errorf("running the binary from the layer: %v: %q", err, out)
	}
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

func layerFiles(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("%d layers, want 2 (base, binary)", len(layers))
	}
	out := map[string]entry{}
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil || mt != types.OCILayer {
			t.Errorf("layer media type %s (%v), want %s", mt, err, types.OCILayer)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = entry{hdr: h, data: data}
		}
		rc.Close()
	}
	return out
}

func keys(m map[string]entry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestImageReproducible: the same inputs give the same bytes, so a
// rebuild of a commit can be verified against a published digest.
func TestImageReproducible(t *testing.T) {
	s := spec(hello(t))
	sum := func() [32]byte {
		path, _ := writeAndOpen(t, s, "registry.example/keeperlb/hello:1.2.3")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(data)
	}
	if a, b := sum(), sum(); a != b {
		t.Error("two builds of the same image differ")
	}
	s2 := s
	s2.Version = "1.2.4"
	img1, err := image.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	img2, err := image.Build(s2)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img1.Digest()
	d2, _ := img2.Digest()
	if d1 == d2 {
		t.Error("a different version label must change the digest")
	}
}

func TestCheckStaticRefusesDynamicBinaries(t *testing.T) {
	// The go command itself is an ELF executable built for this machine
	// (static or not); a C program from the system is dynamic.
	dyn, err := exec.LookPath("ls")
	if err != nil {
		t.Fatalf("need a dynamically linked system binary: %v", err)
	}
	err = image.CheckStatic(dyn, host)
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("CheckStatic(%s) = %v, want a dynamic-linking error", dyn, err)
	}
	other := v1.Platform{OS: "linux", Architecture: "s390x"}
	if runtime.GOARCH == "s390x" {
		other.Architecture = "amd64"
	}
	if err := image.CheckStatic(hello(t), other); err == nil {
		t.Error("CheckStatic accepted a binary for the wrong architecture")
	}
}

func TestOpenLayoutTarRefusesEscapes(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "../escape", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	path := filepath.Join(t.TempDir(), "evil.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := image.OpenLayoutTar(path, dir); err == nil || !strings.Contains(err.Error(), "leaves the layout") {
		t.Fatalf("want an escape error, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); err == nil {
		t.Error("the entry was written outside the folder")
	}
}

func TestBuildRejectsBadSpecs(t *testing.T) {
	for _, s := range []image.Spec{
		{Binary: "x", Platform: host},
		{Title: "x", Platform: host},
		{Title: "x", Binary: "x"},
		{Title: "x", Binary: filepath.Join(t.TempDir(), "missing"), Platform: host},
	} {
		if _, err := image.Build(s); err == nil {
			t.Errorf("Build(%+v) succeeded", s)
		}
	}
}
