package store

import (
	"slices"
	"testing"
	"time"
)

func tenantAt(id, db string, version int64) Tenant {
	return Tenant{ID: id, DeployInfo: dbInfo(db), Version: version}
}

// trackerAt returns a tracker synced at version 5 with tenants a and b.
func trackerAt(t *testing.T) *Tracker {
	t.Helper()
	tr := NewTracker()
	cs := tr.Apply(Event{Type: EventSync, Version: 5, Tenants: []Tenant{tenantAt("a", "a", 1), tenantAt("b", "b", 1)}})
	if len(cs) != 2 || !cs[0].Initial || cs[0].Type != EventCreate || tr.Version() != 5 || !tr.Synced() || tr.Len() != 2 {
		t.Fatalf("first sync: changes %+v, version %d, synced %v, len %d", cs, tr.Version(), tr.Synced(), tr.Len())
	}
	return tr
}

// A sync older than the tracker's view (a watcher's queued sync, a slow
// resync) changes nothing: applied, it would delete tenants created since.
func TestTrackerIgnoresStaleSync(t *testing.T) {
	tr := trackerAt(t)
	if cs := tr.Apply(Event{Type: EventSync, Version: 4, Tenants: []Tenant{tenantAt("a", "a", 1)}}); len(cs) != 0 {
		t.Errorf("a sync at version 4 applied to a view at version 5 made changes %+v; a stale sync must be ignored", cs)
	}
	if _, ok := tr.Get("b"); !ok || tr.Version() != 5 {
		t.Errorf("after a stale sync: b known %v, version %d; want true, 5", ok, tr.Version())
	}
	// The same sync from a source that lost data is applied: its versions
	// may start again.
	cs := tr.Apply(Event{Type: EventSync, Version: 4, DataLoss: true, Tenants: []Tenant{tenantAt("a", "a", 1)}})
	if len(cs) != 1 || cs[0].Type != EventDelete || cs[0].Tenant.ID != "b" || cs[0].Initial {
		t.Errorf("a DataLoss sync at an older version: changes %+v, want b deleted", cs)
	}
	if tr.Version() != 4 {
		t.Errorf("version after the DataLoss sync = %d, want 4", tr.Version())
	}
}

// Creates, updates and deletes at a version the tracker has applied
// already are stale and ignored.
func TestTrackerIgnoresStaleEvents(t *testing.T) {
	tr := trackerAt(t)
	for _, ev := range []Event{
		{Type: EventCreate, Version: 5, Tenant: tenantAt("c", "c", 1)},
		{Type: EventUpdate, Version: 4, Tenant: tenantAt("a", "other", 2)},
		{Type: EventDelete, Version: 5, Tenant: tenantAt("b", "b", 1)},
		{Type: EventDelete, Version: 3, Tenant: tenantAt("a", "a", 1)},
	} {
		if cs := tr.Apply(ev); len(cs) != 0 {
			t.Errorf("stale %v at version %d (view at 5) made changes %+v; it must be ignored", ev.Type, ev.Version, cs)
		}
	}
	a, _ := tr.Get("a")
	_, hasB := tr.Get("b")
	_, hasC := tr.Get("c")
	if tr.Len() != 2 || a.PostgresURL() != tenantAt("a", "a", 1).PostgresURL() || !hasB || hasC || tr.Version() != 5 {
		t.Errorf("after stale events: len %d, a %v, b %v, c %v, version %d; want the view unchanged", tr.Len(), a, hasB, hasC, tr.Version())
	}
	// Newer events apply.
	if cs := tr.Apply(Event{Type: EventUpdate, Version: 6, Tenant: tenantAt("a", "other", 2)}); len(cs) != 1 || cs[0].Type != EventUpdate || !cs[0].URLChanged() || cs[0].Old.Version != 1 {
		t.Errorf("update at 6: %+v", cs)
	}
	if cs := tr.Apply(Event{Type: EventDelete, Version: 7, Tenant: tenantAt("b", "b", 1)}); len(cs) != 1 || cs[0].Type != EventDelete {
		t.Errorf("delete at 7: %+v", cs)
	}
	if cs := tr.Apply(Event{Type: EventCreate, Version: 8, Tenant: tenantAt("c", "c", 1)}); len(cs) != 1 || cs[0].Type != EventCreate || cs[0].Initial {
		t.Errorf("create at 8: %+v", cs)
	}
}

// Change.URLChanged is true only for an update that changed POSTGRES_URL.
func TestChangeURLChanged(t *testing.T) {
	a1, a2 := tenantAt("a", "one", 1), tenantAt("a", "two", 2)
	a1other := tenantAt("a", "one", 2)
	a1other.DeployInfo["OTHER"] = "x"
	for _, c := range []struct {
		name string
		c    Change
		want bool
	}{
		{"update of the URL", Change{Type: EventUpdate, Old: a1, Tenant: a2}, true},
		{"update of another key", Change{Type: EventUpdate, Old: a1, Tenant: a1other}, false},
		{"create", Change{Type: EventCreate, Tenant: a2}, false},
		{"delete", Change{Type: EventDelete, Tenant: a1, Old: a2}, false},
	} {
		if got := c.c.URLChanged(); got != c.want {
			t.Errorf("%s: URLChanged = %v, want %v", c.name, got, c.want)
		}
	}
	// Through a tracker, as consumers see it.
	tr := NewTracker()
	tr.Apply(Event{Type: EventSync, Version: 1, Tenants: []Tenant{a1}})
	cs := tr.Apply(Event{Type: EventSync, Version: 2, Tenants: []Tenant{a1other}})
	if len(cs) != 1 || cs[0].Type != EventUpdate || cs[0].URLChanged() {
		t.Errorf("sync changing another key: %+v, want an update with URLChanged false", cs)
	}
	cs = tr.Apply(Event{Type: EventSync, Version: 3, Tenants: []Tenant{a2}})
	if len(cs) != 1 || !cs[0].URLChanged() {
		t.Errorf("sync changing the URL: %+v, want an update with URLChanged true", cs)
	}
}

// A tenant deleted and created again while the tracker looked away comes
// back with the same id, often the same version and deploy info: only its
// creation time tells. The tracker reports the delete, then the create, so
// hooks run for both (the database was dropped and made anew).
func TestTrackerSeesRecreation(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(created time.Time) Tenant {
		tn := tenantAt("a", "a", 1)
		tn.CreatedAt = created
		return tn
	}
	tests := []struct {
		name   string
		before Tenant
		ev     Event
		want   []EventType
	}{
		{"resync, created again", at(t0), Event{Type: EventSync, Version: 9, Tenants: []Tenant{at(t0.Add(time.Second))}}, []EventType{EventDelete, EventCreate}},
		{"create, its delete missed", at(t0), Event{Type: EventCreate, Version: 9, Tenant: at(t0.Add(time.Second))}, []EventType{EventDelete, EventCreate}},
		{"resync, same tenant", at(t0), Event{Type: EventSync, Version: 9, Tenants: []Tenant{at(t0)}}, nil},
		{"no creation times", at(time.Time{}), Event{Type: EventSync, Version: 9, Tenants: []Tenant{at(time.Time{})}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker()
			tr.Apply(Event{Type: EventSync, Version: 5, Tenants: []Tenant{tt.before}})
			var got []EventType
			for _, c := range tr.Apply(tt.ev) {
				got = append(got, c.Type)
				if c.Tenant.ID != "a" {
					t.Errorf("change for %q, want a", c.Tenant.ID)
				}
				if c.Type == EventDelete && !c.Tenant.CreatedAt.Equal(tt.before.CreatedAt) {
					t.Errorf("the delete carries the tenant created at %v, want the old one (%v)", c.Tenant.CreatedAt, tt.before.CreatedAt)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("changes %v, want %v", got, tt.want)
			}
			if cur, _ := tr.Get("a"); tt.ev.Type == EventCreate && !cur.CreatedAt.Equal(tt.ev.Tenant.CreatedAt) {
				t.Errorf("the tracker keeps the tenant created at %v, want the new one", cur.CreatedAt)
			}
		})
	}
}

// Only two creation times that are both known and differ make a
// re-creation: a time that appears or vanishes (a file edited by hand) is
// an update of the same tenant, and the changes of a re-creation after the
// first sync are not initial.
func TestTrackerRecreationEdges(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	withTime := func(created time.Time, version int64) Tenant {
		tn := tenantAt("a", "a", version)
		tn.CreatedAt = created
		return tn
	}
	tr := NewTracker()
	tr.Apply(Event{Type: EventSync, Version: 5, Tenants: []Tenant{withTime(time.Time{}, 1)}})
	if cs := tr.Apply(Event{Type: EventUpdate, Version: 6, Tenant: withTime(t0, 2)}); len(cs) != 1 || cs[0].Type != EventUpdate {
		t.Errorf("a creation time appearing with an update: %+v, want one update", cs)
	}
	cs := tr.Apply(Event{Type: EventSync, Version: 9, Tenants: []Tenant{withTime(t0.Add(time.Second), 1)}})
	if len(cs) != 2 || cs[0].Type != EventDelete || cs[1].Type != EventCreate || cs[0].Initial || cs[1].Initial {
		t.Fatalf("re-created, seen by a later sync: %+v, want a delete then a create, neither initial", cs)
	}
	if cur, _ := tr.Get("a"); !cur.CreatedAt.Equal(t0.Add(time.Second)) || tr.Len() != 1 {
		t.Errorf("after the sync the tracker holds %v (%d tenants), want the new incarnation alone", cur.CreatedAt, tr.Len())
	}
}
