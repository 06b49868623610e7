// Package examples embeds the example manifests, so that the demo applies
// exactly the files a user can read in examples/.
package examples

import "embed"

// Demo holds demo/*.yaml: the pool and the Services of `keeperlb demo`.
//
//go:embed demo/*.yaml
var Demo embed.FS
