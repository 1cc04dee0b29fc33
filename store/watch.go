package store

import (
	"context"
	"sync"
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
	mu       sync.Mutex
	watchers map[*watcher]struct{}
	closed   bool
}

type watcher struct {
	h        *hub
	out      chan Event
	snapshot func() Event
	wake     chan struct{}
	done     chan struct{}
	stop     sync.Once

	mu    sync.Mutex
	queue []Event
	stale bool // queue overflowed: send a fresh snapshot next
}

// add registers a watcher whose first event is initial, or, if initial is
// nil (the store has not read its state yet), the first event published.
// snapshot builds a current EventSync; it is called without any hub lock
// held.
func (h *hub) add(ctx context.Context, initial *Event, snapshot func() Event) (<-chan Event, error) {
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
	}
	if initial != nil {
		w.queue = []Event{*initial}
		w.wake <- struct{}{}
	}
	h.watchers[w] = struct{}{}
	go w.pump(ctx)
	return w.out, nil
}

func (h *hub) publish(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.push(ev)
	}
}

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

func (w *watcher) push(ev Event) {
	w.mu.Lock()
	if len(w.queue) >= maxQueued {
		w.queue = nil
		w.stale = true
	} else {
		w.queue = append(w.queue, ev)
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
	var (
		delivered int64 // highest version sent; older events are skipped
		sent      bool
	)
	send := func(ev Event) bool {
		// A sync in data-loss mode may start versions again;
		// anything else older than what was sent is stale.
		if sent && !ev.DataLoss && (ev.Version < delivered || ev.Version == delivered && ev.Type != EventSync) {
			return true
		}
		select {
		case w.out <- ev:
			delivered, sent = ev.Version, true
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
			snap := w.snapshot()
			if !send(snap) {
				return
			}
		}
		for _, ev := range q {
			if !send(ev) {
				return
			}
		}
	}
}
