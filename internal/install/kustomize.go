package install

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
// system rooted at /config, so that a build sees exactly the files the
// test means, and a test may add or remove some without touching the
// working tree. Build /config/default or /config/monitoring from it.
func ConfigFS(configDir string) (filesys.FileSystem, error) {
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
	return mem, nil
}
