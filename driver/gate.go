package driver

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/tenantsql/tenantsql/store"
)

// gate is a tenant's readiness at one configuration in this process: open
// once the hooks of the change that made it (a create, or an update that
// moved the tenant to another database) have succeeded here. Tenants
// created well before the connector started (see isNew), and all tenants
// when there are no hooks, are open from the start.
type gate struct {
	kind store.EventType // the change whose hooks open it
	from store.Tenant    // for a move: the tenant before it
	done chan struct{}
	ok   atomic.Bool
	err  error // set before done closes
}

var openGate = func() *gate {
	g := &gate{done: make(chan struct{})}
	g.ok.Store(true)
	close(g.done)
	return g
}()

func newGate(kind store.EventType, from store.Tenant) *gate {
	return &gate{kind: kind, from: from, done: make(chan struct{})}
}

func (g *gate) resolve(err error) {
	g.err = err
	g.ok.Store(err == nil)
	close(g.done)
}

func (g *gate) failed() bool {
	select {
	case <-g.done:
		return g.err != nil
	default:
		return false
	}
}

// waitGate waits until the hooks that opened t's configuration have
// succeeded in this process.
func waitGate(ctx context.Context, t *tenant, g *gate) error {
	what := "create"
	if g.kind == store.EventUpdate {
		what = "update (a move to another database)"
	}
	select {
	case <-g.done:
	case <-ctx.Done():
		return fmt.Errorf("%w: tenant %q: waiting for the hooks of its %s: %w", ErrTenantNotReady, t.id, what, ctx.Err())
	}
	if g.err != nil {
		return fmt.Errorf("%w: tenant %q: the hooks of its %s failed: %w", ErrTenantNotReady, t.id, what, g.err)
	}
	return nil
}
