package fleetproc

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Peak samples, as fast as one session can, how many sessions the server
// has whose application_name matches a LIKE pattern: what the server
// holds, not what the processes think they hold.
type Peak struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // guards the fields below
	peak    int64
	at      time.Time
	samples int64
	err     error
}

// SamplePeak starts sampling on the server of adminURL, until Stop or
// the end of ctx.
func SamplePeak(ctx context.Context, adminURL, pattern string) (*Peak, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("fleetproc: peak sampler: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Peak{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer conn.Close(context.Background())
		for ctx.Err() == nil {
			var n int64
			err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", pattern).Scan(&n)
			p.mu.Lock()
			switch {
			case err == nil:
				if n > p.peak {
					p.peak, p.at = n, time.Now()
				}
				p.samples++
			case ctx.Err() == nil:
				// A sample not taken is a breach not seen.
				p.err = fmt.Errorf("fleetproc: peak sampler failed after %d samples: %w", p.samples, err)
			}
			failed := p.err != nil
			p.mu.Unlock()
			if failed {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return p, nil
}

// Samples is how many samples have been taken so far.
func (p *Peak) Samples() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.samples
}

// Stop ends the sampling and returns the most sessions seen, when, and
// how many samples it is the most of; err is a sample that failed. It
// may be called more than once.
func (p *Peak) Stop() (peak int64, at time.Time, samples int64, err error) {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak, p.at, p.samples, p.err
}
