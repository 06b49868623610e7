// Package install renders and checks KeeperLB's install manifests: the
// kustomize tree under config/ and the Helm chart at charts/keeperlb. The
// tests, `go run ./hack/render` and the docs all go through it, so what a
// user applies is exactly what the tests applied to a real API server.
//
// Rendering uses the kustomize and Helm libraries themselves (krusty and
// helm.sh/helm/v4), not reimplementations. Check is a pure function that
// holds the install policy: the controller runs non-root on a read-only
// root filesystem with leader election, the speaker adds NET_RAW and no
// other capability, the webhooks match internal/webhook, and so on.
package install
