package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
)

// A watcher whose queue overflowed gets a fresh snapshot, then only the
// events published after it. A sync in data-loss mode queued before the
// snapshot is older than it, but versions cannot tell (they may restart
// in that mode): sent after the snapshot it made a Tracker delete a
// tenant nobody deleted, and create it again.
//
// The hub is plain goroutines and channels, so the test runs in a synctest
// bubble: "the pump is blocked" and "the pump has sent everything it will"
// are established by synctest.Wait, not guessed by a sleep or a deadline.
func TestWatchSnapshotCoversQueuedDataLossSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		st := state{version: 1, tenants: map[string]Tenant{"a": {ID: "a", DeployInfo: dbInfo("a"), Version: 1}}}
		var h hub
		snap := func() (Event, uint64) {
			mu.Lock()
			defer mu.Unlock()
			ev := st.sync()
			ev.DataLoss = true
			return ev, h.published()
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		init, _ := snap()
		ch, err := h.add(ctx, &init, snap)
		if err != nil {
			t.Fatal(err)
		}
		// The consumer lags: once the pump is blocked sending the initial
		// sync, it has taken it off the queue and takes nothing more, so
		// what follows overflows the queue whatever the scheduling.
		synctest.Wait()
		pub := func(ev Event) { mu.Lock(); h.publish(ev); mu.Unlock() }
		for i := 0; i <= maxQueued; i++ { // overflow the queue
			mu.Lock()
			st.version++
			a := st.tenants["a"]
			a.Version++
			st.tenants["a"] = a
			h.publish(Event{Type: EventUpdate, Version: st.version, Tenant: a})
			mu.Unlock()
		}
		// A periodic resync in data-loss mode, then a create.
		mu.Lock()
		s := st.sync()
		s.DataLoss = true
		mu.Unlock()
		pub(s)
		mu.Lock()
		st.version++
		b := Tenant{ID: "b", DeployInfo: dbInfo("b"), Version: 1}
		st.tenants["b"] = b
		h.publish(Event{Type: EventCreate, Version: st.version, Tenant: b})
		mu.Unlock()
		if !overflowed(&h) {
			t.Fatal("the watcher's queue did not overflow: the test does not test what it is about")
		}

		// Read until the pump has nothing more to send: after
		// synctest.Wait it is either blocked sending an event (which the
		// receive below takes) or waiting for new ones (and the receive
		// finds nothing).
		tr := NewTracker()
		got := 0
		for {
			synctest.Wait()
			var ev Event
			select {
			case ev = <-ch:
			default:
				if _, ok := tr.Get("b"); !ok || got < 2 {
					t.Fatalf("after %d events the watcher lacks tenant b", got)
				}
				return
			}
			got++
			for _, c := range tr.Apply(ev) {
				if c.Type == EventDelete {
					t.Fatalf("tenant %q deleted by a stale DataLoss sync (v%d) applied after a newer snapshot; nobody deleted it", c.Tenant.ID, ev.Version)
				}
			}
		}
	})
}

// overflowed reports whether the hub's one watcher dropped its queue and
// owes a snapshot.
func overflowed(h *hub) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.stale
	}
	return false
}

// A real store's watcher that does not read while many changes are made
// overflows its queue and gets a snapshot of the store (the store's own
// snapshot function, not a test's): a sync listing exactly what the store
// holds, after which its view is the store's.
func TestWatchOverflowSnapshot(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if _, err := s.Create(ctx, newTenant("a", "a")); err != nil {
			t.Fatal(err)
		}
		const limit, writes = 4, 20
		setMaxQueued(t, s, limit)
		ch, err := s.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tr := NewTracker()
		first := next(t, ch)
		if first.Type != EventSync {
			t.Fatalf("first event %v, want a sync", first.Type)
		}
		tr.Apply(first)
		// The consumer reads nothing now: the pump blocks on its first
		// send, and the queue behind it overflows.
		for i := range writes {
			id := fmt.Sprintf("c%02d", i)
			if _, err := s.Create(ctx, newTenant(id, id)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Update(ctx, Tenant{ID: "a", DeployInfo: dbInfo("a2"), Version: 1}); err != nil {
			t.Fatal(err)
		}
		// Whether it overflowed is told by the snapshot that must follow
		// (below), not by the watcher's flag: its pump may already have
		// taken the flag to build that snapshot.
		want := mustList(t, s)
		if len(want) != writes+1 {
			t.Fatalf("List has %d tenants, want %d", len(want), writes+1)
		}
		final := int64(writes + 2)
		// The snapshot is built when the watcher's pump finds the overflow,
		// possibly while the writes went on: it must hold the store as it
		// was at its version (a, then c00... one a version), and the events
		// after it must bring the view to the end.
		snapshots := 0
		for tr.Version() < final {
			ev := next(t, ch)
			if ev.Type == EventSync {
				snapshots++
				var wantIDs []string
				wantIDs = append(wantIDs, "a")
				for i := range min(int(ev.Version)-1, writes) {
					wantIDs = append(wantIDs, fmt.Sprintf("c%02d", i))
				}
				if !slices.Equal(ids(ev.Tenants), wantIDs) {
					t.Fatalf("the snapshot at version %d lists %v, want the store as it was then: %v", ev.Version, ids(ev.Tenants), wantIDs)
				}
				wantA := dbInfo("a")
				if ev.Version == final {
					wantA = dbInfo("a2")
				}
				if !maps.Equal(ev.Tenants[0].DeployInfo, wantA) {
					t.Errorf("the snapshot at version %d has tenant a as %v", ev.Version, ev.Tenants[0])
				}
			}
			tr.Apply(ev)
		}
		if snapshots == 0 {
			t.Fatalf("no snapshot sync came after %d writes with room for %d queued events: the queue did not overflow, or the overflow was not answered with a snapshot", writes+1, limit)
		}
		if tr.Len() != len(want) {
			t.Errorf("after the snapshot the tracker knows %d tenants, want %d", tr.Len(), len(want))
		}
		for _, w := range want {
			if g, ok := tr.Get(w.ID); !ok || !sameTenant(g, w) {
				t.Errorf("after the snapshot the tracker has %v for %s, want %v", g, w.ID, w)
			}
		}
	})
}
