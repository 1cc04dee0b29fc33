// Package lifecycle is where the tenantsql driver finds the default hooks
// registry without importing package hooks (which would turn the
// dependency arrows around): package hooks installs its default registry
// here when it is linked in.
package lifecycle

import (
	"errors"
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

// ErrMissingURLKey is driver.ErrMissingURLKey, here so that package hooks
// can tell "this tenant has no database under the *sql.DB's key" (nothing
// for a hook to do) from a failure, without importing the driver.
var ErrMissingURLKey = errors.New("tenantsql: tenant lacks the database URL key")
