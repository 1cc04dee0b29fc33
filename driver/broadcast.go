package driver

import "sync"

// A broadcast wakes everyone waiting for the next time something happens
// (here: the next batch of store changes applied to the registry). A
// waiter takes the channel first, then checks its condition, then waits
// on the channel: a notify in between closes the channel it holds, so no
// wake-up is lost.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{} // guarded by mu; closed and replaced by notify
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

// next returns a channel closed at the next notify.
func (b *broadcast) next() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}
