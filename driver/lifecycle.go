package driver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/tenantctx"
)

// Hooks runs the lifecycle hooks of tenant changes; *hooks.Registry
// implements it. For every change the connector applies it calls
// HandleChange twice: store.PhaseOn (right after the connector's own work
// on its registry and pools), then store.PhasePost.
type Hooks = store.ChangeHandler

// hookKey is the context key of a hookScope.
type hookKey struct{}

// A hookScope is what the context of one change's hooks carries: the
// tenant at the configuration of that change. Queries the hooks make for
// that tenant run on it, whatever happened since: not on the registry's
// current configuration, which a later change may already have replaced
// (a delete hook's cleanup must not reach the database of a tenant
// created again under the same id), and without waiting for its gate,
// which these very hooks open.
type hookScope struct {
	c *Connector
	t *tenant // the change's configuration; for a delete, the one deleted

	mu      sync.Mutex
	private *tenant // guarded by mu: t's configuration, once t is retired
	ended   bool    // guarded by mu: the hooks have returned
}

// errHookEnded is what a query made with a hook's context gets once the
// hooks of its change have returned (a context kept with
// context.WithoutCancel): the configuration it names may be gone, and a
// later one is not the hook's to reach.
var errHookEnded = errors.New("tenantsql: a hook's context was used after its hooks returned")

// hookScopeOf returns the scope of the hooks whose context ctx is, if they
// run for tenant id in this connector.
func (c *Connector) hookScopeOf(ctx context.Context, id string) *hookScope {
	if hs, ok := ctx.Value(hookKey{}).(*hookScope); ok && hs.c == c && hs.t.id == id {
		return hs
	}
	return nil
}

// inHookOf reports whether ctx is the context of a hook that c's own
// hooks may be waiting for: a hook still running for tenant id, through
// another connector, from the same hooks registry as c's. Such a query
// (a hook of the default *sql.DB migrating the tenant's analytics
// database through the analytics *sql.DB, both following one registry, as
// hooks.Subscribe and sql.Open give) does not wait for c's gate: that
// gate opens when c's hooks for the tenant return, and c runs the same
// hooks, which may be waiting for the hook's own connector in turn. It
// runs on c's current configuration, without waiting for the tenant to
// be ready, as a hook's queries through its own connector do.
//
// Nothing else passes the gate. With another registry, c's hooks are not
// this hook's to wait on, so its query waits as any other. Once the
// hooks have returned, their context (kept with context.WithoutCancel)
// waits as any other too. And the caller never bypasses a gate that has
// failed: the tenant is not ready on c, and its error is the answer.
func (c *Connector) inHookOf(ctx context.Context, id string) bool {
	hs, ok := ctx.Value(hookKey{}).(*hookScope)
	if !ok || hs.t.id != id || !sameHooks(hs.c.hooks, c.hooks) {
		return false
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return !hs.ended
}

// sameHooks reports whether a and b are one hooks registry. A Hooks of
// an uncomparable type (a struct holding a slice) is never the same as
// another, rather than a panic in ==.
func sameHooks(a, b Hooks) bool {
	if a == nil || b == nil {
		return false
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	return va.Type() == vb.Type() && va.Comparable() && vb.Comparable() && a == b
}

// acquire checks out a connection at the scope's configuration. Once that
// configuration has been retired (the tenant was deleted, or changed again
// while its hooks ran), the scope goes on with a private copy of it, which
// no other query sees and which is closed when the hooks return.
func (hs *hookScope) acquire(ctx context.Context, hint *physConn) (*physConn, *tenant, error) {
	t := hs.t
	if t.err != nil {
		return nil, nil, t.err
	}
	for {
		pc, err := t.tg.b.acquire(ctx, t.tg, hint)
		switch {
		case err == nil:
			return pc, t, nil
		case errors.Is(err, errRetired):
			if t, err = hs.detach(); err != nil {
				return nil, nil, err
			}
			hint = nil
			continue
		case errors.Is(err, ErrTenantConfig), errors.Is(err, ErrClosed):
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("tenantsql: tenant %q: %w", t.id, err)
	}
}

func (hs *hookScope) detach() (*tenant, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.ended {
		return nil, fmt.Errorf("%w: tenant %q", errHookEnded, hs.t.id)
	}
	if hs.private == nil {
		o := hs.t
		// A target of its own, even for a tenant that shared one: no
		// other tenant's query may reach what only the hooks should.
		p := &tenant{id: o.id, dsn: o.dsn, set: o.set, tg: &target{name: o.id, dsn: o.tg.dsn, cfg: o.tg.cfg, b: o.tg.b}}
		p.version.Store(o.version.Load())
		p.gate.Store(openGate)
		hs.private = p
	}
	return hs.private, nil
}

// end closes the private copy, if the hooks made one.
func (hs *hookScope) end() {
	hs.mu.Lock()
	p := hs.private
	hs.ended = true
	hs.mu.Unlock()
	if p != nil {
		p.tg.b.removeTarget(p.tg)
	}
}

// scheduleHooks queues the hooks of one change. The changes of one tenant
// run one after another, in order; different tenants' run side by side, up
// to WithHookConcurrency at once. The hooks of a create, and of an update
// that moves the tenant to another database, open the gate of the
// configuration they made when they return: until then its queries wait,
// and if a hook failed they get ErrTenantNotReady. An update that keeps
// the database of a configuration whose hooks failed runs those hooks
// again.
func (c *Connector) scheduleHooks(sw swap) {
	ch := sw.change
	if c.hooks == nil || ch.Type == store.EventCreate && !c.isNew(ch) {
		return
	}
	// A configuration without a usable URL under this connector's key
	// (WithURLKey) has no database here to set up or clean up: its
	// queries fail closed, and hooks for it would only fail too. The
	// hooks of the other *sql.DB, on the keys the tenant has, run there.
	if t := sw.new; t != nil && t.err != nil || ch.Type == store.EventDelete && sw.old != nil && sw.old.err != nil {
		return
	}
	var g *gate
	t := sw.new
	switch ch.Type {
	case store.EventCreate:
		g = sw.new.gate.Load()
	case store.EventUpdate:
		cur := sw.new.gate.Load()
		switch {
		case gainsKey(sw.old, sw.new):
			// Its database appears for this connector: a create here.
			g = cur
			ch = store.Change{Type: store.EventCreate, Tenant: ch.Tenant, Version: ch.Version}
		case sw.old != nil: // moved: a new configuration, gated
			g = cur
		case cur.failed():
			// Retry what failed, as it was: a create, or the move from
			// the database the tenant was on before (a hook that acts
			// only when the URL changed must see that it did).
			g = newGate(cur.kind, cur.from)
			sw.new.gate.Store(g)
			ch = store.Change{Type: cur.kind, Tenant: ch.Tenant, Old: cur.from, Version: ch.Version}
		}
	case store.EventDelete:
		t = sw.old
	}
	var hs *hookScope
	if t != nil {
		hs = &hookScope{c: c, t: t}
	}
	c.hookq.enqueue(ch.Tenant.ID, func(ctx context.Context) {
		resolved := false
		defer func() {
			// A Hooks that panics, or a hook that calls runtime.Goexit,
			// must not leave the tenant's queries waiting for ever.
			if p := recover(); p != nil {
				c.hookFailures.Add(1)
				msg := maskTenant(fmt.Sprint(p), ch)
				c.log.Error("tenantsql: lifecycle hooks panicked", "tenant", ch.Tenant.ID, "panic", msg)
				c.noteHookRun(ch, t, errors.New("the hooks panicked: "+msg))
			}
			if g != nil && !resolved {
				g.resolve(fmt.Errorf("tenantsql: tenant %q: its %s hooks did not return", ch.Tenant.ID, ch.Type))
			}
		}()
		if hs != nil {
			ctx = context.WithValue(ctx, hookKey{}, hs)
			defer hs.end()
		}
		ctx = tenantctx.WithTenant(ctx, ch.Tenant.ID)
		on := c.hooks.HandleChange(ctx, ch, store.PhaseOn)
		post := c.hooks.HandleChange(ctx, ch, store.PhasePost)
		err := errors.Join(on, post)
		if err != nil {
			c.hookFailures.Add(1)
		}
		c.noteHookRun(ch, t, err)
		if g != nil {
			g.resolve(err)
			resolved = true
		}
	}, func() {
		if g != nil {
			g.resolve(ErrClosed)
		}
	})
}

// noteHookRun keeps a failed run of ch's hooks, made for t, as the
// tenant's last failure, for Stats, unless the registry holds another
// configuration of the tenant by now, or none (a delete's failure, or a
// run that ended after its tenant was deleted: the entry would outlive
// it). The error text is masked with every secret of the tenant, before
// and after the change (store.Secrets): the hooks package scrubs its own
// hooks' errors, but a Hooks of the user's may quote anything.
func (c *Connector) noteHookRun(ch store.Change, t *tenant, err error) {
	if err == nil || t == nil {
		return
	}
	f := HookFailure{Time: time.Now(), Change: ch.Type.String(), Error: maskTenant(err.Error(), ch)}
	c.hookFailMu.Lock()
	defer c.hookFailMu.Unlock()
	// Under hookFailMu, which the apply's forgetHookFailure takes after
	// the registry changed: either this sees the change, or the forget
	// comes after this.
	if c.reg.get(ch.Tenant.ID) != t {
		return
	}
	if c.lastHookFailure == nil {
		c.lastHookFailure = make(map[string]HookFailure)
	}
	c.lastHookFailure[ch.Tenant.ID] = f
}

// forgetHookFailure drops the last hook failure of a tenant the registry
// no longer has, so that a tenant created again with its id starts clean.
func (c *Connector) forgetHookFailure(id string) {
	c.hookFailMu.Lock()
	defer c.hookFailMu.Unlock()
	delete(c.lastHookFailure, id)
}

// copyHookFailures returns a copy of the last hook failures of the
// tenants ids, or of all without ids.
func (c *Connector) copyHookFailures(ids ...string) map[string]HookFailure {
	c.hookFailMu.Lock()
	defer c.hookFailMu.Unlock()
	if len(ids) == 0 {
		return maps.Clone(c.lastHookFailure)
	}
	out := make(map[string]HookFailure, len(ids))
	for _, id := range ids {
		if f, ok := c.lastHookFailure[id]; ok {
			out[id] = f
		}
	}
	return out
}

// maskTenant masks in text every secret of ch's tenant, as it is and as
// it was.
func maskTenant(text string, ch store.Change) string {
	return pgurl.RedactText(text, append(store.Secrets(ch.Tenant.DeployInfo), store.Secrets(ch.Old.DeployInfo)...))
}
