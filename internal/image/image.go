// Package image builds OCI images of KeeperLB's static binaries without a
// container engine: the layers are tar streams written here, assembled
// with github.com/google/go-containerregistry, and saved as OCI
// image-layout tarballs that podman, skopeo, containerd (ctr import) and
// crane read.
//
// An image is two layers: a base with /etc/passwd and /etc/group naming
// the unprivileged user 65532 (nonroot) and a writable /tmp, and the binary
// itself. There is no distribution underneath: the binaries are static
// (CGO_ENABLED=0) and need nothing else. Every timestamp is the Created
// time given, so the same inputs give the same digests.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRootUID is the user (and group) the images run as unless the pod says
// otherwise: the "nonroot" user of distroless images, so that policies
// written for those apply unchanged.
const NonRootUID = 65532

// OCI annotation and label keys (image-spec annotations.md).
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelTitle    = "org.opencontainers.image.title"
	LabelVersion  = "org.opencontainers.image.version"
	LabelRevision = "org.opencontainers.image.revision"
	LabelCreated  = "org.opencontainers.image.created"
	// RefName names an image in an OCI layout's index.json.
	RefName = "org.opencontainers.image.ref.name"
	// ContainerdName is the full image name `ctr import` gives the image.
	ContainerdName = "io.containerd.image.name"
)

// Spec describes one single-platform image.
type Spec struct {
	// Title is the image's name, such as keeperlb-controller.
	Title string
	// Binary is the path of the static binary on this machine.
	Binary string
	// Entrypoint is where the binary goes in the image; empty means
	// /usr/local/bin/<Title>.
	Entrypoint string
	// Platform is the binary's OS and architecture.
	Platform v1.Platform
	// Version, Revision and Source fill the OCI labels.
	Version, Revision, Source string
	// Created is the time recorded everywhere in the image.
	Created time.Time
}

func (s Spec) entrypoint() string {
	if s.Entrypoint != "" {
		return s.Entrypoint
	}
	return "/usr/local/bin/" + s.Title
}

// Labels returns the OCI labels of the image, which are also set as the
// manifest's annotations.
func (s Spec) Labels() map[string]string {
	l := map[string]string{
		LabelTitle:    s.Title,
		LabelVersion:  s.Version,
		LabelRevision: s.Revision,
		LabelSource:   s.Source,
		LabelCreated:  s.Created.UTC().Format(time.RFC3339),
	}
	for k, v := range l {
		if v == "" {
			delete(l, k)
		}
	}
	return l
}

// Build assembles the image of spec.
func Build(spec Spec) (v1.Image, error) {
	if spec.Title == "" || spec.Binary == "" {
		return nil, fmt.Errorf("image spec needs a title and a binary")
	}
	if spec.Platform.OS == "" || spec.Platform.Architecture == "" {
		return nil, fmt.Errorf("image %s: platform needs an OS and an architecture", spec.Title)
	}
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("image %s: reading the binary: %w", spec.Title, err)
	}
	base, err := layer(baseFiles(), spec.Created)
	if err != nil {
		return nil, fmt.Errorf("image %s: base layer: %w", spec.Title, err)
	}
	binLayer, err := layer(binaryFiles(spec.entrypoint(), bin), spec.Created)
	if err != nil {
		return nil, fmt.Errorf("image %s: binary layer: %w", spec.Title, err)
	}
	created := v1.Time{Time: spec.Created.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "keeperlb image: /etc/passwd, /etc/group, /tmp", Comment: "base"}},
		mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "keeperlb image: " + spec.entrypoint(), Comment: "binary"}},
	)
	if err != nil {
		return nil, fmt.Errorf("image %s: adding layers: %w", spec.Title, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: reading config: %w", spec.Title, err)
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS = spec.Platform.OS
	cf.Architecture = spec.Platform.Architecture
	cf.Variant = spec.Platform.Variant
	cf.Config.Entrypoint = []string{spec.entrypoint()}
	cf.Config.Cmd = nil
	cf.Config.User = fmt.Sprintf("%d:%d", NonRootUID, NonRootUID)
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cf.Config.Labels = spec.Labels()
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image %s: writing config: %w", spec.Title, err)
	}
	out, ok := mutate.Annotations(img, spec.Labels()).(v1.Image)
	if !ok {
		return nil, fmt.Errorf("image %s: annotating the manifest", spec.Title)
	}
	return out, nil
}

// file is one entry of a layer.
type file struct {
	name string
	mode int64 // permission bits
	dir  bool
	uid  int
	data []byte
}

// baseFiles are the base layer: the user database naming nonroot, so that
// tools showing the user find a name, and a sticky world-writable /tmp for
// anything that insists on one (Kubernetes mounts over it where the root
// filesystem is read-only).
func baseFiles() []file {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRootUID, NonRootUID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", NonRootUID)
	return []file{
		{name: "etc", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "home", mode: 0o755, dir: true},
		{name: "home/nonroot", mode: 0o700, dir: true, uid: NonRootUID},
		{name: "root", mode: 0o700, dir: true},
		{name: "tmp", mode: 0o1777, dir: true},
	}
}

// binaryFiles are the binary layer: the binary at entry and its parent
// folders.
func binaryFiles(entry string, bin []byte) []file {
	var out []file
	dir := path.Dir(strings.TrimPrefix(entry, "/"))
	var parents []string
	for d := dir; d != "." && d != "/"; d = path.Dir(d) {
		parents = append([]string{d}, parents...)
	}
	for _, d := range parents {
		out = append(out, file{name: d, mode: 0o755, dir: true})
	}
	return append(out, file{name: strings.TrimPrefix(entry, "/"), mode: 0o755, data: bin})
}

// layer writes files, in order, as an uncompressed tar with fixed times
// and numeric owners, and wraps it as a gzip-compressed OCI layer.
func layer(files []file, created time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:    f.name,
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.uid,
			ModTime: created.UTC(),
			Format:  tar.FormatUSTAR,
		}
		if f.dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("writing %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing layer: %w", err)
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
