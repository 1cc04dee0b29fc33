package driver

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// Hooks runs the lifecycle hooks of tenant changes; *hooks.Registry
// implements it. For every change the connector applies it calls
// HandleChange twice: post false (the ON phase, right after the
// connector's own work on its registry and pools), then post true.
type Hooks interface {
	HandleChange(ctx context.Context, c store.Change, post bool) error
}

// hookKey marks the context hooks run with: their own queries for the
// tenant must not wait for the tenant to be ready, since it becomes ready
// when they return.
type hookKey struct{}

type hookMark struct {
	c  *Connector
	id string
}

func (c *Connector) hookContext(id string) context.Context {
	return tenantctx.WithTenant(context.WithValue(c.ctx, hookKey{}, hookMark{c, id}), id)
}

// scheduleHooks queues the hooks of one change. The changes of one tenant
// run one after another, in order; different tenants' run side by side, up
// to WithHookConcurrency at once. A create's hooks open the tenant's gate
// when they return: until then queries wait, and if a hook failed they
// get ErrTenantNotReady. An update of a tenant whose create hooks failed
// runs the create hooks again.
func (c *Connector) scheduleHooks(sw swap) {
	ch := sw.change
	if c.hooks == nil || ch.Type == store.EventCreate && !c.isNew(ch) {
		return
	}
	var g *gate
	switch ch.Type {
	case store.EventCreate:
		g = sw.new.gate.Load()
	case store.EventUpdate:
		if cur := sw.new.gate.Load(); cur.failed() {
			g = newGate()
			sw.new.gate.Store(g)
			ch = store.Change{Type: store.EventCreate, Tenant: ch.Tenant, Version: ch.Version}
		}
	}
	c.enqueue(ch.Tenant.ID, func(ctx context.Context) {
		resolved := false
		defer func() {
			// A Hooks that panics, or a hook that calls runtime.Goexit,
			// must not leave the tenant's queries waiting for ever.
			if p := recover(); p != nil {
				c.log.Error("tenantsql: lifecycle hooks panicked", "tenant", ch.Tenant.ID, "panic", p)
			}
			if g != nil && !resolved {
				g.resolve(fmt.Errorf("tenantsql: tenant %q: its create hooks did not return", ch.Tenant.ID))
			}
		}()
		on := c.hooks.HandleChange(ctx, ch, false)
		post := c.hooks.HandleChange(ctx, ch, true)
		if g != nil {
			g.resolve(errors.Join(on, post))
			resolved = true
		}
	}, func() {
		if g != nil {
			g.resolve(ErrClosed)
		}
	})
}

func (g *gate) failed() bool {
	select {
	case <-g.done:
		return g.err != nil
	default:
		return false
	}
}

// enqueue runs fn after the jobs queued before for the same tenant, or
// abandon if the connector closes first.
func (c *Connector) enqueue(id string, fn func(context.Context), abandon func()) {
	c.jobsMu.Lock()
	prev := c.tails[id]
	done := make(chan struct{})
	c.tails[id] = done
	c.jobsMu.Unlock()
	c.jobs.Add(1)
	go func() {
		defer c.jobs.Done()
		defer func() {
			close(done)
			c.jobsMu.Lock()
			if c.tails[id] == done {
				delete(c.tails, id)
			}
			c.jobsMu.Unlock()
		}()
		if prev != nil {
			select {
			case <-prev:
			case <-c.ctx.Done():
				abandon()
				return
			}
		}
		select {
		case c.hookSlots <- struct{}{}:
		case <-c.ctx.Done():
			abandon()
			return
		}
		defer func() { <-c.hookSlots }()
		if c.ctx.Err() != nil { // select picks at random when both were ready
			abandon()
			return
		}
		fn(c.hookContext(id))
	}()
}

// waitGate waits until t's create hooks have succeeded in this process.
// Queries made by those hooks themselves go through.
func (c *Connector) waitGate(ctx context.Context, t *tenant, g *gate) error {
	if m, ok := ctx.Value(hookKey{}).(hookMark); ok && m.c == c && m.id == t.id {
		return nil
	}
	select {
	case <-g.done:
	case <-ctx.Done():
		return fmt.Errorf("%w: tenant %q: waiting for its create hooks: %w", ErrTenantNotReady, t.id, ctx.Err())
	}
	if g.err != nil {
		return fmt.Errorf("%w: tenant %q: its create hooks failed: %w", ErrTenantNotReady, t.id, g.err)
	}
	return nil
}
