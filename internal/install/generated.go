package install

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/keeperlb/keeperlb/config/crd"
)

// Generated returns what `make generate` produced and every install must
// carry: the CRDs and the controller's and speaker's roles, read from the
// repository at root.
func Generated(root string) (Want, error) {
	var w Want
	defs, err := crd.Definitions()
	if err != nil {
		return w, err
	}
	w.CRDs = defs
	for _, f := range []string{"config/rbac/controller/role.yaml", "config/rbac/speaker/role.yaml"} {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return w, fmt.Errorf("reading generated RBAC: %w", err)
		}
		objs, err := Decode(data)
		if err != nil {
			return w, fmt.Errorf("%s: %w", f, err)
		}
		w.RBAC = append(w.RBAC, objs...)
	}
	return w, nil
}
