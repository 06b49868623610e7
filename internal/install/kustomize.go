package install

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Kustomize builds the kustomization in dir, read from fsys, as
// `kubectl kustomize dir` would, and returns its objects and YAML.
func Kustomize(fsys filesys.FileSystem, dir string) ([]*unstructured.Unstructured, []byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(fsys, dir)
	if err != nil {
		return nil, nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, nil, fmt.Errorf("kustomize build %s: encoding: %w", dir, err)
	}
	objs, err := Decode(out)
	if err != nil {
		return nil, nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return objs, out, nil
}

// ConfigFS copies the repository's config/ folder into an in-memory file
// system rooted at /config and adds the files given (paths relative to
// /config), so that a build can supply the memberlist key without writing
// into the working tree. It returns the file system; build /config/default
// or /config/monitoring from it.
func ConfigFS(configDir string, extra map[string][]byte) (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(configDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(configDir, path)
		if err != nil {
			return err
		}
		target := filepath.Join("/config", rel)
		if d.IsDir() {
			return mem.MkdirAll(target)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return mem.WriteFile(target, data)
	})
	if err != nil {
		return nil, fmt.Errorf("copying %s: %w", configDir, err)
	}
	for _, name := range slices.Sorted(maps.Keys(extra)) {
		if err := mem.WriteFile(filepath.Join("/config", name), extra[name]); err != nil {
			return nil, fmt.Errorf("adding %s: %w", name, err)
		}
	}
	return mem, nil
}
