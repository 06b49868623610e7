// Command images builds the controller and speaker OCI images without a
// container engine and writes them as OCI image-layout tarballs:
//
//	go run ./hack/images                      # bin/images/keeperlb-{controller,speaker}.tar
//	go run ./hack/images -platforms linux/amd64,linux/arm64
//
// Load one with `podman load -i bin/images/keeperlb-controller.tar`,
// `ctr -n k8s.io images import ...`, or push it with
// `skopeo copy oci-archive:bin/images/keeperlb-controller.tar docker://REGISTRY/keeperlb-controller:TAG`.
//
// The tag defaults to the chart's appVersion, which is what config/ and
// charts/keeperlb reference, and every timestamp to the commit time of
// HEAD ($SOURCE_DATE_EPOCH wins), so a rebuild of the same commit gives the
// same digests.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"sigs.k8s.io/yaml"

	"github.com/keeperlb/keeperlb/internal/image"
)

// components are the images this command builds: name and Go package.
func components() [][2]string {
	return [][2]string{
		{"keeperlb-controller", "./cmd/keeperlb-controller"},
		{"keeperlb-speaker", "./cmd/keeperlb-speaker"},
	}
}

type options struct {
	out, repository, version, revision, source, created, goCmd, root string
	platforms                                                        string
}

func main() {
	o := options{}
	flag.StringVar(&o.out, "out", "bin/images", "folder for the <name>.tar image layouts")
	flag.StringVar(&o.repository, "repository", "ghcr.io/keeperlb", "registry and path the image names start with")
	flag.StringVar(&o.version, "version", "", "image tag and version label (default: the chart's appVersion)")
	flag.StringVar(&o.revision, "revision", "", "revision label (default: git rev-parse HEAD, +dirty when the tree has changes)")
	flag.StringVar(&o.source, "source", "https://github.com/keeperlb/keeperlb", "source label")
	flag.StringVar(&o.created, "created", "", "creation time, RFC 3339 or Unix seconds (default: $SOURCE_DATE_EPOCH, else the commit time of HEAD)")
	flag.StringVar(&o.platforms, "platforms", "linux/"+runtime.GOARCH, "comma-separated os/arch[/variant] list")
	flag.StringVar(&o.goCmd, "go", "go", "go command")
	flag.StringVar(&o.root, "root", ".", "repository root")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.version == "" {
		v, err := chartAppVersion(filepath.Join(o.root, "charts/keeperlb/Chart.yaml"))
		if err != nil {
			return err
		}
		o.version = v
	}
	if o.revision == "" {
		o.revision = gitRevision(ctx, o.root)
	}
	created, err := createdTime(ctx, o.root, o.created)
	if err != nil {
		return err
	}
	var platforms []v1.Platform
	for _, s := range strings.Split(o.platforms, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(s))
		if err != nil || p.OS == "" || p.Architecture == "" {
			return fmt.Errorf("platform %q: want os/arch[/variant]", s)
		}
		platforms = append(platforms, *p)
	}
	work, err := os.MkdirTemp("", "keeperlb-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	for _, c := range components() {
		name, pkg := c[0], c[1]
		var imgs []v1.Image
		for _, p := range platforms {
			bin := filepath.Join(work, fmt.Sprintf("%s-%s-%s%s", name, p.OS, p.Architecture, p.Variant))
			if err := image.GoBuild(ctx, o.goCmd, o.root, pkg, bin, p); err != nil {
				return err
			}
			img, err := image.Build(image.Spec{
				Title: name, Binary: bin, Platform: p, Created: created,
				Version: o.version, Revision: o.revision, Source: o.source,
			})
			if err != nil {
				return err
			}
			imgs = append(imgs, img)
		}
		idx, err := image.NewIndex(imgs...)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		ref := o.repository + "/" + name + ":" + o.version
		path := filepath.Join(o.out, name+".tar")
		if err := image.WriteLayoutTar(path, idx, ref, created); err != nil {
			return err
		}
		digest, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s  %s@%s  (%s)\n", path, ref, digest, o.platforms)
	}
	return nil
}

func chartAppVersion(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the chart's appVersion: %w", err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil || c.AppVersion == "" {
		return "", fmt.Errorf("%s: no appVersion (%v)", path, err)
	}
	return c.AppVersion, nil
}

// gitRevision names the commit; outside a git checkout it is "unknown".
func gitRevision(ctx context.Context, root string) string {
	rev, err := git(ctx, root, "rev-parse", "HEAD")
	if err != nil {
		return "unknown"
	}
	if st, err := git(ctx, root, "status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
		rev += "-dirty"
	}
	return rev
}

func createdTime(ctx context.Context, root, flagValue string) (time.Time, error) {
	v := flagValue
	if v == "" {
		v = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if v == "" {
		if ct, err := git(ctx, root, "log", "-1", "--format=%ct"); err == nil {
			v = ct
		}
	}
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("creation time %q: want RFC 3339 or Unix seconds", v)
	}
	return t.UTC(), nil
}

func git(ctx context.Context, root string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}
