package store

import (
	"context"
	"fmt"
	"maps"
)

// A Change is what an Event did to one tenant, as a Tracker sees it.
type Change struct {
	// Type is EventCreate, EventUpdate or EventDelete.
	Type EventType
	// Tenant is the tenant after the change; for a delete, as it was.
	Tenant Tenant
	// Old is the tenant before an update.
	Old Tenant
	// Version is the store version of the event that made the change.
	Version int64
	// Initial marks the creates of the first sync: tenants that existed
	// before the tracker started following the store.
	Initial bool
}

// A Phase is a step of applying a change in a process. PhaseOn comes
// first: the library's own work (the tenantsql driver's registry and
// pools), then the ON hooks; PhasePost follows, for the POST hooks (such
// as migrations).
type Phase uint8

// The phases of a change, in the order they run.
const (
	PhaseOn Phase = iota + 1
	PhasePost
)

func (p Phase) String() string {
	switch p {
	case PhaseOn:
		return "on"
	case PhasePost:
		return "post"
	}
	return fmt.Sprintf("Phase(%d)", uint8(p))
}

// A ChangeHandler reacts to one phase of a change: *hooks.Registry runs
// the hooks subscribed to it, and the tenantsql driver calls it for every
// change it applies (driver.WithHooks), PhaseOn then PhasePost.
type ChangeHandler interface {
	HandleChange(ctx context.Context, c Change, p Phase) error
}

// URLChanged reports whether an update changed the tenant's POSTGRES_URL.
func (c Change) URLChanged() bool {
	return c.Type == EventUpdate && c.Old.PostgresURL() != c.Tenant.PostgresURL()
}

// A Tracker follows a store's events and tells what each one changed,
// tenant by tenant: a sync becomes the creates, updates and deletes that
// bring the tracker's view to the synced set, so a consumer reacts the
// same way to a change it saw as an event and to one it only learned of
// by a resync after a disconnect. Events older than the tracker's view are
// ignored. A Tracker is not safe for concurrent use.
type Tracker struct {
	tenants map[string]Tenant
	version int64
	synced  bool
}

// NewTracker returns a Tracker that has seen nothing yet.
func NewTracker() *Tracker { return &Tracker{tenants: make(map[string]Tenant)} }

// Synced reports whether the tracker has applied a sync.
func (tr *Tracker) Synced() bool { return tr.synced }

// Version returns the store version of the last event applied.
func (tr *Tracker) Version() int64 { return tr.version }

// Len returns the number of tenants the tracker knows.
func (tr *Tracker) Len() int { return len(tr.tenants) }

// Get returns the tenant as the tracker knows it.
func (tr *Tracker) Get(id string) (Tenant, bool) {
	t, ok := tr.tenants[id]
	return t, ok
}

// Apply applies one event and returns the changes it made, creates and
// updates sorted by id as the sync listed them, then deletes. A tenant
// found created again (another CreatedAt under a known id) is a delete of
// the old one followed by a create, in the place of its create.
func (tr *Tracker) Apply(ev Event) []Change {
	switch ev.Type {
	case EventSync:
		// A sync older than the view is stale, unless it comes from a
		// source that lost data, whose versions may start again.
		if tr.synced && !ev.DataLoss && ev.Version < tr.version {
			return nil
		}
		initial := !tr.synced
		tr.synced = true
		tr.version = ev.Version
		var out []Change
		seen := make(map[string]struct{}, len(ev.Tenants))
		for _, t := range ev.Tenants {
			seen[t.ID] = struct{}{}
			for _, c := range tr.upsert(t, ev.Version) {
				c.Initial = initial
				out = append(out, c)
			}
		}
		for id, t := range tr.tenants {
			if _, ok := seen[id]; !ok {
				delete(tr.tenants, id)
				out = append(out, Change{Type: EventDelete, Tenant: t, Version: ev.Version})
			}
		}
		return out
	case EventCreate, EventUpdate:
		if ev.Version <= tr.version {
			return nil
		}
		tr.version = ev.Version
		return tr.upsert(ev.Tenant, ev.Version)
	case EventDelete:
		if ev.Version <= tr.version {
			return nil
		}
		tr.version = ev.Version
		if t, ok := tr.tenants[ev.Tenant.ID]; ok {
			delete(tr.tenants, ev.Tenant.ID)
			return []Change{{Type: EventDelete, Tenant: t, Version: ev.Version}}
		}
	}
	return nil
}

func (tr *Tracker) upsert(t Tenant, version int64) []Change {
	old, ok := tr.tenants[t.ID]
	tr.tenants[t.ID] = t
	switch {
	case !ok:
		return []Change{{Type: EventCreate, Tenant: t, Version: version}}
	case recreated(old, t):
		// The tenant was deleted and created again while the tracker
		// looked away (a resync, or a create whose delete was missed):
		// its version and deploy info may well be what they were, but
		// it is another tenant (its database may have been dropped and
		// made anew), so consumers see the delete then the create,
		// and run their hooks for both.
		return []Change{
			{Type: EventDelete, Tenant: old, Version: version},
			{Type: EventCreate, Tenant: t, Version: version},
		}
	case old.Version == t.Version && maps.Equal(old.DeployInfo, t.DeployInfo):
		return nil
	}
	return []Change{{Type: EventUpdate, Tenant: t, Old: old, Version: version}}
}

// recreated reports whether cur is another incarnation of old's id: both
// know when they were created, and not at the same time. A store that
// records no creation time cannot tell, and its tenants are taken as the
// same.
func recreated(old, cur Tenant) bool {
	return !old.CreatedAt.IsZero() && !cur.CreatedAt.IsZero() && !old.CreatedAt.Equal(cur.CreatedAt)
}
