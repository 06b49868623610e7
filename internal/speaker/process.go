package speaker

import (
	"log/slog"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// SetUpProcess makes log controller-runtime's global logger, which the
// parts of controller-runtime that are not handed the manager's logger (the
// metrics server among them) write to. Run does not: it is process-wide
// state, so only a main calls this, once, before Run.
func SetUpProcess(log *slog.Logger) {
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
}
