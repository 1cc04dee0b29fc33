// Package lifecycle is where the tenantsql driver finds the default hooks
// registry without importing package hooks (which would turn the
// dependency arrows around): package hooks installs its default registry
// here when it is linked in.
package lifecycle

import (
	"context"
	"sync/atomic"

	"github.com/tenantsql/tenantsql/store"
)

// Handler runs the hooks of one phase of one tenant change: the ON phase
// (post false) right after the library's own work, then the POST phase.
type Handler interface {
	HandleChange(ctx context.Context, c store.Change, post bool) error
}

type holder struct{ h Handler }

var def atomic.Pointer[holder]

// SetDefault installs the default handler.
func SetDefault(h Handler) { def.Store(&holder{h}) }

// Default returns the default handler, or nil if package hooks is not
// linked in.
func Default() Handler {
	if p := def.Load(); p != nil {
		return p.h
	}
	return nil
}
