// Package lifecycle is where the tenantsql driver finds the default hooks
// registry without importing package hooks (which would turn the
// dependency arrows around): package hooks installs its default registry
// here when it is linked in.
package lifecycle

import (
	"sync/atomic"

	"github.com/tenantsql/tenantsql/store"
)

type holder struct{ h store.ChangeHandler }

var def atomic.Pointer[holder]

// SetDefault installs the default handler.
func SetDefault(h store.ChangeHandler) { def.Store(&holder{h}) }

// Default returns the default handler, or nil if package hooks is not
// linked in.
func Default() store.ChangeHandler {
	if p := def.Load(); p != nil {
		return p.h
	}
	return nil
}
