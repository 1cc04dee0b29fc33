package driver

import (
	"context"
	"math/rand/v2"
)

// A dial is a physical connection being opened for a caller.
type dial struct {
	done      chan dialResult // unbuffered: a result goes only to a caller that takes it
	abandoned chan struct{}   // closed when the caller stops waiting
}

type dialResult struct {
	pc  *physConn
	err error
}

// dialLocked starts opening a physical connection for p in a slot already
// reserved; the caller holds b.mu, has found the budget open, and then
// waits for the result with wait. The dial is not cut short when ctx ends:
// a session half set up on the server would linger after the client hung
// up, its slot already given to someone else. The caller returns at once,
// and the connection, when it is up, goes to p's pool as if it had been
// used and released (pgxpool does the same). The connect timeout bounds
// the dial, and close waits for it.
func (b *budget) dialLocked(ctx context.Context, p *pool) *dial {
	d := &dial{done: make(chan dialResult), abandoned: make(chan struct{})}
	b.wg.Go(func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.connectTimeout)
		defer cancel()
		pc, err := b.connect(dctx, p)
		select {
		case d.done <- dialResult{pc, err}:
		case <-d.abandoned:
			if err == nil {
				b.release(pc)
			}
		}
	})
	return d
}

// waitDial returns the dial's connection, or ctx's error if ctx ends
// first: a caller that gave up on its connection, counted as a timeout of
// p's tenant like one that gave up in the queue.
func (b *budget) waitDial(ctx context.Context, p *pool, d *dial) (*physConn, error) {
	select {
	case r := <-d.done:
		return r.pc, r.err
	case <-ctx.Done():
		close(d.abandoned)
		b.mu.Lock()
		b.countLocked(p.t, counters{timeouts: 1})
		b.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (b *budget) connect(ctx context.Context, p *pool) (*physConn, error) {
	began := b.now()
	s, err := p.dial(ctx)
	b.event(ctx, p.t, PoolDial, b.now().Sub(began), err)
	if err != nil {
		b.mu.Lock()
		b.countLocked(p.t, counters{connectErrors: 1})
		b.unreserveLocked(p)
		b.mu.Unlock()
		return nil, err
	}
	pc := newPhysConn(s, p)
	// Jitter spreads the reconnects of connections dialled together.
	pc.expires = b.now().Add(b.lifetime - rand.N(b.lifetime/10+1))
	b.mu.Lock()
	b.countLocked(p.t, counters{newConns: 1})
	if took := b.now().Sub(began); b.dialTime == 0 {
		b.dialTime = took
	} else {
		b.dialTime += (took - b.dialTime) / 8
	}
	// Retired during the dial: the caller must not run its query on the
	// old configuration. release closes the session (the pool is retired).
	retired, closed := p.retired, b.closed
	b.mu.Unlock()
	if retired || closed {
		b.release(pc)
		if closed {
			return nil, ErrClosed
		}
		return nil, errRetired
	}
	return pc, nil
}
