package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// wait is how long a test waits for something that should happen at once.
// It is generous so that a loaded machine never fails a test; no test
// asserts on how fast anything happens.
const wait = 5 * time.Second

// next returns the next event from ch, failing the test if ch closes or
// nothing arrives in time.
func next(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed, want an event")
		}
		return ev
	case <-time.After(wait):
		t.Fatalf("no event within %v", wait)
	}
	panic("unreachable")
}

// waitClosed reads ch until it is closed, failing the test if it is not
// closed in time.
func waitClosed(t *testing.T, ch <-chan Event) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("watch channel not closed within %v", wait)
		}
	}
}

// mirror is what a watcher builds from events: a sync replaces everything,
// a create or update sets one tenant, a delete removes one. It checks the
// ordering contract as it goes.
type mirror struct {
	version int64
	tenants map[string]Tenant
	events  int
	syncs   int
	// skips allows version gaps: a store fed from elsewhere (Redis) does
	// not report a change that a later one superseded before it read it
	// (a tenant created and deleted meanwhile). The final state is still
	// checked against the store.
	skips bool
}

func (m *mirror) apply(t *testing.T, ev Event) {
	t.Helper()
	m.events++
	if m.events == 1 && ev.Type != EventSync {
		t.Fatalf("first event is %v, want sync", ev.Type)
	}
	switch ev.Type {
	case EventSync:
		if m.events > 1 && ev.Version <= m.version {
			t.Fatalf("sync at version %d after version %d", ev.Version, m.version)
		}
		if !slices.IsSortedFunc(ev.Tenants, func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) }) {
			t.Errorf("sync tenants not sorted by id: %v", ids(ev.Tenants))
		}
		m.syncs++
		m.tenants = make(map[string]Tenant, len(ev.Tenants))
		for _, tn := range ev.Tenants {
			m.tenants[tn.ID] = tn
		}
	case EventCreate, EventUpdate, EventDelete:
		// A change must follow the previous version exactly: a gap would
		// be a lost change.
		if ev.Version != m.version+1 && !(m.skips && ev.Version > m.version) {
			t.Fatalf("%v of %q at version %d after version %d", ev.Type, ev.Tenant.ID, ev.Version, m.version)
		}
		if ev.Type == EventDelete {
			delete(m.tenants, ev.Tenant.ID)
		} else {
			m.tenants[ev.Tenant.ID] = ev.Tenant
		}
	default:
		t.Fatalf("unknown event type %v", ev.Type)
	}
	m.version = ev.Version
}

func (m *mirror) list() []Tenant {
	return slices.SortedFunc(maps.Values(m.tenants), func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) })
}

// current returns the store's version and tenants, as a new watcher's first
// event tells them.
func current(t *testing.T, s Store) Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return next(t, ch)
}

func TestWatchEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		for _, id := range []string{"b", "a"} {
			if _, err := s.Create(ctx, newTenant(id, id)); err != nil {
				t.Fatal(err)
			}
		}
		ch, err := s.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev := next(t, ch)
		if ev.Type != EventSync || ev.Version != 2 || !slices.Equal(ids(ev.Tenants), []string{"a", "b"}) {
			t.Fatalf("first event = %v version %d with %v, want sync version 2 with [a b]", ev.Type, ev.Version, ids(ev.Tenants))
		}
		b := mustGet(t, s, "b")

		if _, err := s.Create(ctx, newTenant("c", "c")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, newTenant("a", "a2")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Delete(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		// Nothing that fails or changes nothing makes an event.
		s.Delete(ctx, "b")
		s.Create(ctx, newTenant("c", "c"))
		s.Update(ctx, Tenant{ID: "a", DeployInfo: dbInfo("a3"), Version: 1})
		s.Create(ctx, Tenant{ID: "bad"})
		if _, err := s.Create(ctx, newTenant("d", "d")); err != nil {
			t.Fatal(err)
		}

		want := []struct {
			typ     EventType
			version int64
			id, db  string
		}{
			{EventCreate, 3, "c", "c"},
			{EventUpdate, 4, "a", "a2"},
			{EventDelete, 5, "b", "b"}, // the tenant as it was
			{EventCreate, 6, "d", "d"},
		}
		for _, w := range want {
			ev := next(t, ch)
			if ev.Type != w.typ || ev.Version != w.version || ev.Tenant.ID != w.id || ev.Tenant.PostgresURL() != dbInfo(w.db)[KeyPostgresURL] {
				t.Fatalf("got %v version %d of %v, want %v version %d of %q on %q", ev.Type, ev.Version, ev.Tenant, w.typ, w.version, w.id, w.db)
			}
			if w.typ == EventDelete && !sameTenant(ev.Tenant, b) {
				t.Errorf("delete event carries %v, want the tenant as it was: %v", ev.Tenant, b)
			}
		}

		// A later watcher starts from the current state.
		cur := current(t, s)
		if cur.Type != EventSync || cur.Version != 6 || !slices.Equal(ids(cur.Tenants), []string{"a", "c", "d"}) {
			t.Errorf("new watcher's first event = %v version %d with %v, want sync version 6 with [a c d]", cur.Type, cur.Version, ids(cur.Tenants))
		}
	})
}

func TestWatchStops(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()

		// Cancelling the context closes the channel, even one with unread
		// events.
		wctx, cancel := context.WithCancel(ctx)
		ch, err := s.Watch(wctx)
		if err != nil {
			t.Fatal(err)
		}
		next(t, ch)
		if _, err := s.Create(ctx, newTenant("t1", "one")); err != nil {
			t.Fatal(err)
		}
		cancel()
		waitClosed(t, ch)

		// A context that is already done gives a channel that closes.
		ch, err = s.Watch(wctx)
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, ch)

		// Other watchers are not affected by one going away.
		kept, err := s.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		next(t, kept)
		unread, err := s.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, newTenant("t2", "two")); err != nil {
			t.Fatal(err)
		}
		// A store fed from elsewhere (Redis) may deliver t1's create
		// after the snapshot that started kept's channel.
		ev := next(t, kept)
		if ev.Type == EventCreate && ev.Tenant.ID == "t1" {
			ev = next(t, kept)
		}
		if ev.Type != EventCreate || ev.Tenant.ID != "t2" {
			t.Errorf("got %v of %v, want create of t2", ev.Type, ev.Tenant)
		}

		// Closing the store closes every channel.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, kept)
		waitClosed(t, unread)
	})
}

// A watcher that does not read must not block writers, and when it reads
// again it must end up with exactly the store's state: a fresh snapshot
// replaces the events it could not hold.
func TestWatchSlowConsumer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewMemory()
	defer s.Close()
	for i := range 10 {
		if _, err := s.Create(ctx, newTenant(fmt.Sprint("keep-", i), "keep")); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Creates, updates and deletes, well past what a watcher may queue.
	const writers = 4
	perWriter := (maxQueued + 1000) / writers
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					id := fmt.Sprintf("w%d-%d", w, i)
					if _, err := s.Create(ctx, newTenant(id, "a")); err != nil {
						t.Error(err)
						return
					}
					switch {
					case i%3 == 0:
						if _, err := s.Update(ctx, newTenant(id, "b")); err != nil {
							t.Error(err)
						}
					case i%5 == 0:
						if _, err := s.Delete(ctx, id); err != nil {
							t.Error(err)
						}
					}
				}
			})
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writers blocked on a watcher that does not read")
	}

	final := current(t, s)
	if final.Version <= int64(10+maxQueued) {
		t.Fatalf("only %d mutations; the test must overflow the watcher's queue", final.Version)
	}
	var (
		m    mirror
		last Event
	)
	for m.version < final.Version {
		last = next(t, ch)
		m.apply(t, last)
	}
	if m.version != final.Version || !sameTenants(m.list(), final.Tenants) {
		t.Fatalf("watcher ended at version %d with %d tenants, store is at %d with %d", m.version, len(m.tenants), final.Version, len(final.Tenants))
	}
	// Snapshots replaced most of the changes: typically the initial sync,
	// the changes queued before the watcher fell behind, and one snapshot
	// of the final state. (If the watcher's goroutine starts late, the
	// first sync may already be such a snapshot.)
	if mutations := int(final.Version - 10); m.events >= mutations || m.events > 2*maxQueued+2 {
		t.Errorf("watcher got %d events for %d changes; want a snapshot in place of what it could not hold", m.events, mutations)
	}

	// Once caught up, the watcher gets changes one by one again.
	if _, err := s.Create(ctx, newTenant("after", "x")); err != nil {
		t.Fatal(err)
	}
	ev := next(t, ch)
	m.apply(t, ev)
	if ev.Type != EventCreate || ev.Tenant.ID != "after" {
		t.Errorf("after catching up got %v of %v, want create of after", ev.Type, ev.Tenant)
	}
}

// A watcher that reads while writers run sees every change in order, with
// snapshots only where it fell behind, and ends with the store's state.
func TestWatchConcurrentWriters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		ops := 400
		if _, ok := s.(*File); ok {
			ops = 40 // every write is fsynced
		}
		ch, err := s.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range ops {
					id := fmt.Sprintf("w%d-%d", w, i%(ops/4+1))
					switch i % 4 {
					case 0, 1:
						s.Create(ctx, newTenant(id, fmt.Sprint("c", i)))
					case 2:
						s.Update(ctx, newTenant(id, fmt.Sprint("u", i)))
					case 3:
						s.Delete(ctx, id)
					}
				}
			})
		}
		var m mirror
		_, m.skips = s.(*Redis)
		m.apply(t, next(t, ch))
		stop := make(chan struct{})
		go func() { wg.Wait(); close(stop) }()
	read:
		for {
			select {
			case ev := <-ch:
				m.apply(t, ev)
			case <-stop:
				break read
			}
		}
		final := current(t, s)
		for m.version < final.Version {
			m.apply(t, next(t, ch))
		}
		if m.version != final.Version || !sameTenants(m.list(), final.Tenants) {
			t.Fatalf("watcher ended at version %d with %v, store is at %d with %v", m.version, ids(m.list()), final.Version, ids(final.Tenants))
		}
	})
}
