package driver

import (
	"maps"
	"sync/atomic"

	"github.com/tenantsql/tenantsql/store"
)

// registry maps tenant ids to tenants. Readers (every checkout) load an
// immutable map with one atomic load; the one writer (the goroutine that
// follows the store) copies it, which costs O(n) per batch of store
// events, never per query.
type registry struct {
	m   atomic.Pointer[map[string]*tenant]
	key string // the deploy_info key of the URL (WithURLKey)
}

func (r *registry) init(key string) {
	r.key = key
	m := make(map[string]*tenant)
	r.m.Store(&m)
}

func (r *registry) get(id string) *tenant { return (*r.m.Load())[id] }

func (r *registry) snapshot() map[string]*tenant { return *r.m.Load() }

// swap is what applying one change did to the registry.
type swap struct {
	change   store.Change
	old, new *tenant // old: replaced or removed; new: added or replacing
}

// apply applies a batch of changes and returns what each did. mk builds the
// tenant for a created tenant or a new URL under the registry's key; a
// change to other keys of deploy_info keeps the tenant and its pool.
func (r *registry) apply(changes []store.Change, mk func(store.Change, *tenant) *tenant) []swap {
	next := maps.Clone(*r.m.Load())
	out := make([]swap, 0, len(changes))
	for _, c := range changes {
		old := next[c.Tenant.ID]
		sw := swap{change: c, old: old}
		switch c.Type {
		case store.EventCreate, store.EventUpdate:
			if old != nil && old.dsn == c.Tenant.DeployInfo[r.key] {
				sw.old, sw.new = nil, old // same configuration: keep the pool
				old.version.Store(c.Tenant.Version)
				break
			}
			sw.new = mk(c, old)
			next[c.Tenant.ID] = sw.new
		case store.EventDelete:
			delete(next, c.Tenant.ID)
		}
		out = append(out, sw)
	}
	r.m.Store(&next)
	return out
}
