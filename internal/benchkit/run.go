package benchkit

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Run opens c, warms it up, runs workers goroutines querying it for d,
// closes it and counts the sessions the server saw opened.
func Run(ctx context.Context, adminURL string, c Case, workers, maxConns int, warm, d time.Duration) (Result, error) {
	res := Result{Case: c}
	if err := WaitForIdle(ctx, adminURL); err != nil {
		return res, err
	}
	before, err := Sessions(ctx, adminURL)
	if err != nil {
		return res, err
	}
	t, err := Open(ctx, adminURL, c, workers, maxConns)
	if err != nil {
		return res, err
	}
	n := max(c.Tenants, 1)
	loop := func(deadline time.Time, count bool) {
		var wg sync.WaitGroup
		var ops, errs atomic.Int64
		var firstErr atomic.Value
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Workers start spread over the tenants and each moves on
				// to the next tenant with every query.
				i := w * n / workers
				for time.Now().Before(deadline) {
					for range 64 {
						if err := t.Query(i); err != nil {
							errs.Add(1)
							firstErr.CompareAndSwap(nil, err)
						} else {
							ops.Add(1)
						}
						i++
					}
				}
			}()
		}
		wg.Wait()
		if count {
			res.Ops, res.Errors = ops.Load(), errs.Load()
			if e, ok := firstErr.Load().(error); ok {
				res.FirstErr = e
			}
		}
	}
	loop(time.Now().Add(warm), false)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start := time.Now()
	loop(start.Add(d), true)
	res.Elapsed = time.Since(start)
	runtime.ReadMemStats(&m1)
	res.Mallocs = m1.Mallocs - m0.Mallocs
	t.Close()
	if err := WaitForIdle(ctx, adminURL); err != nil {
		return res, err
	}
	after, err := Sessions(ctx, adminURL)
	if err != nil {
		return res, err
	}
	res.NewSessions = after - before
	return res, nil
}
