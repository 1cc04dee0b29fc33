package driver

import (
	"context"
	"sync"
)

// hookQueue runs the hook jobs of tenant changes: one tenant's one after
// another, in the order queued; different tenants' side by side, up to a
// limit. Its jobs end when ctx does.
type hookQueue struct {
	ctx   context.Context // the connector's: ends when it closes
	slots chan struct{}   // one per job running
	jobs  sync.WaitGroup  // every job queued, until it returns

	mu    sync.Mutex
	tails map[string]chan struct{} // guarded by mu: each tenant's last job, closed when it ends
}

func newHookQueue(ctx context.Context, concurrency int) *hookQueue {
	return &hookQueue{ctx: ctx, slots: make(chan struct{}, concurrency), tails: make(map[string]chan struct{})}
}

// enqueue runs fn after the jobs queued before for the same tenant, or
// abandon if the queue's context ends first. fn's context ends when it
// returns: a hook's context names one configuration of its tenant, and
// must not be used to reach the tenant after the hook (see hookScope).
func (q *hookQueue) enqueue(id string, fn func(context.Context), abandon func()) {
	q.mu.Lock()
	prev := q.tails[id]
	done := make(chan struct{})
	q.tails[id] = done
	q.mu.Unlock()
	q.jobs.Go(func() {
		defer func() {
			close(done)
			q.mu.Lock()
			if q.tails[id] == done {
				delete(q.tails, id)
			}
			q.mu.Unlock()
		}()
		if prev != nil {
			select {
			case <-prev:
			case <-q.ctx.Done():
				abandon()
				return
			}
		}
		select {
		case q.slots <- struct{}{}:
		case <-q.ctx.Done():
			abandon()
			return
		}
		defer func() { <-q.slots }()
		if q.ctx.Err() != nil { // select picks at random when both were ready
			abandon()
			return
		}
		ctx, cancel := context.WithCancel(q.ctx)
		defer cancel()
		fn(ctx)
	})
}

// wait returns once every job queued has returned or been abandoned.
func (q *hookQueue) wait() { q.jobs.Wait() }
