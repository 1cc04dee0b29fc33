package store

import (
	"context"
	"sync"
	"sync/atomic"
)

// maxQueued is how many undelivered events a watcher may hold. Past it the
// queue is dropped and the watcher gets a fresh EventSync instead: a slow
// consumer costs memory up to this bound, then a snapshot, never a lost
// change and never a blocked writer.
const maxQueued = 4096

// hub fans events out to watchers. Stores call publish while holding their
// own lock, so events reach every queue in version order; publish never
// blocks on a consumer.
type hub struct {
	// seq counts the events published so far. It changes under mu but is
	// read without it: every query of the driver compares it with what its
	// watcher has applied (Sequencer).
	seq atomic.Uint64

	mu       sync.Mutex
	watchers map[*watcher]struct{}
	closed   bool
	// maxQueued, when set, replaces the package's maxQueued for watchers
	// added from then on: tests overflow a queue with a few writes.
	maxQueued int
}

// snapshotFunc builds a current EventSync and returns it with the number
// of events published when it was built (hub.published, read under the
// store's lock, so that the two agree).
type snapshotFunc func() (Event, uint64)

type watcher struct {
	h        *hub
	out      chan Event
	snapshot snapshotFunc
	wake     chan struct{}
	done     chan struct{}
	stop     sync.Once
	max      int // queued events past which the queue is dropped

	mu    sync.Mutex
	queue []queued
	stale bool // queue overflowed: send a fresh snapshot next
}

// queued is an event waiting for its watcher, with its place in the order
// of publication.
type queued struct {
	ev  Event
	seq uint64
}

// add registers a watcher whose first event is initial, or, if initial is
// nil (the store has not read its state yet), the first event published.
// The store holds its lock, so initial reflects every event published so
// far. snapshot is called without any hub lock held.
func (h *hub) add(ctx context.Context, initial *Event, snapshot snapshotFunc) (<-chan Event, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if h.watchers == nil {
		h.watchers = make(map[*watcher]struct{})
	}
	w := &watcher{
		h:        h,
		out:      make(chan Event),
		snapshot: snapshot,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		max:      maxQueued,
	}
	if h.maxQueued > 0 {
		w.max = h.maxQueued
	}
	if initial != nil {
		ev := *initial
		ev.Seq = h.seq.Load()
		w.queue = []queued{{ev, ev.Seq}}
		w.wake <- struct{}{}
	}
	h.watchers[w] = struct{}{}
	go w.pump(ctx)
	return w.out, nil
}

func (h *hub) publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev.Seq = h.seq.Add(1)
	for w := range h.watchers {
		w.push(queued{ev, ev.Seq})
	}
}

// published returns how many events were published so far.
func (h *hub) published() uint64 { return h.seq.Load() }

func (h *hub) close() {
	h.mu.Lock()
	ws := h.watchers
	h.watchers = nil
	h.closed = true
	h.mu.Unlock()
	for w := range ws {
		w.stop.Do(func() { close(w.done) })
	}
}

func (h *hub) remove(w *watcher) {
	h.mu.Lock()
	delete(h.watchers, w)
	h.mu.Unlock()
	w.stop.Do(func() { close(w.done) })
}

func (w *watcher) push(q queued) {
	w.mu.Lock()
	if len(w.queue) >= w.max {
		w.queue = nil
		w.stale = true
	} else {
		w.queue = append(w.queue, q)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) pump(ctx context.Context) {
	defer close(w.out)
	defer w.h.remove(w)
	// Events published before the last snapshot sent are skipped: it holds
	// them already. Versions cannot tell, as a sync in data-loss mode may
	// start them again, and such a sync sent after a newer snapshot would
	// remove the tenants created in between. Nothing else is skipped: an
	// event the consumer must not apply (older than its view) is still
	// delivered, so that its Seq arrives and Published can be reached;
	// Tracker ignores it.
	var (
		covered  uint64
		snapshot bool // one was sent, so covered means something
	)
	send := func(ev Event) bool {
		select {
		case w.out <- ev:
			return true
		case <-ctx.Done():
		case <-w.done:
		}
		return false
	}
	for {
		select {
		case <-w.wake:
		case <-ctx.Done():
			return
		case <-w.done:
			return
		}
		w.mu.Lock()
		q, stale := w.queue, w.stale
		w.queue, w.stale = nil, false
		w.mu.Unlock()
		if stale {
			snap, seq := w.snapshot()
			snap.Seq = seq
			if !send(snap) {
				return
			}
			covered, snapshot = seq, true
		}
		for _, e := range q {
			if snapshot && e.seq <= covered {
				continue
			}
			if !send(e.ev) {
				return
			}
		}
	}
}
