package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/tenantsql/tenantsql/internal/lifecycle"
	"github.com/tenantsql/tenantsql/store"
)

// Kind names a lifecycle event and its phase.
type Kind uint8

// The six lifecycle events of the original library: for each change, the
// ON phase runs first (the library's own work is done by then: the tenant
// is registered, its pools are set up or retired), then the POST phase.
const (
	OnCreate Kind = iota + 1
	PostCreate
	OnUpdate
	PostUpdate
	OnDelete
	PostDelete
)

var kindNames = [...]string{
	OnCreate:   "on_tenant_create",
	PostCreate: "post_tenant_create",
	OnUpdate:   "on_tenant_update",
	PostUpdate: "post_tenant_update",
	OnDelete:   "on_tenant_delete",
	PostDelete: "post_tenant_delete",
}

func (k Kind) String() string {
	if k >= OnCreate && k <= PostDelete {
		return kindNames[k]
	}
	return fmt.Sprintf("hooks.Kind(%d)", uint8(k))
}

// Post reports whether k is a POST-phase kind.
func (k Kind) Post() bool { return k == PostCreate || k == PostUpdate || k == PostDelete }

// KindOf returns the kind of a store change in a phase, or 0 for what is
// no change of a tenant (a sync) or no phase.
func KindOf(c store.EventType, p store.Phase) Kind {
	var k Kind
	switch c {
	case store.EventCreate:
		k = OnCreate
	case store.EventUpdate:
		k = OnUpdate
	case store.EventDelete:
		k = OnDelete
	default:
		return 0
	}
	switch p {
	case store.PhaseOn:
		return k
	case store.PhasePost:
		return k + 1
	}
	return 0
}

// An Event is what a hook is told.
type Event struct {
	Kind Kind
	// Tenant is the tenant after the change; for a delete, as it was.
	Tenant store.Tenant
	// Old is the tenant before an update.
	Old store.Tenant
	// Version is the store version of the change.
	Version int64
}

// A Func is a hook. Its context carries the tenant (tenantctx.TenantFrom),
// so it can query the tenant's database through a tenantsql *sql.DB at
// once, on the configuration of the change it is called for (see the
// package documentation), and it ends when the change's hooks have all
// returned, or when the *sql.DB is closed.
type Func func(ctx context.Context, ev Event) error

// A Failure is a hook that returned an error or panicked.
type Failure struct {
	Kind    Kind
	Hook    string // the hook's name (see Registry.Subscribe)
	Version int64  // the store version of the change
	Err     error
	At      time.Time
}

// maxFailures bounds the failures kept per tenant.
const maxFailures = 16

// Registry holds hooks and runs them. The zero value is not usable; call
// New. A Registry is safe for concurrent use.
type Registry struct {
	log *slog.Logger // nil: slog.Default() when logging

	mu       sync.RWMutex
	hooks    map[Kind][]hook
	failures map[string][]Failure
	observe  Observer
}

// A HookRun is one run of one hook, as an Observer sees it.
type HookRun struct {
	Hook    string // the hook's name (see Registry.Subscribe)
	Kind    Kind
	Tenant  string
	Version int64 // the store version of the change
}

// An Observer is called as each hook starts, with the context the hook
// would get, and returns the context the hook gets instead (carrying a
// span, for one) and the function to call with the hook's error (nil on
// success, the panic as an error after a panic) when it returns.
//
// It is how the telemetry package traces hooks (telemetry's
// HookObserver) without this package importing OpenTelemetry: a program
// that uses the driver alone compiles none. A plain function rather than
// a wrapper of each Func, so that the hooks keep their names, and the
// ready-made ones their own, in logs and Failures.
type Observer func(ctx context.Context, run HookRun) (context.Context, func(err error))

// SetObserver has every hook run from now on reported to o; nil stops
// it. The driver runs the hooks of hooks.Default() unless given another
// registry (driver.WithHooks): set the observer on that one.
func (r *Registry) SetObserver(o Observer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.observe = o
}

type hook struct {
	name string
	fn   Func
}

// New returns an empty registry that logs to log; if log is nil, to
// slog.Default() as it is when a hook fails.
func New(log *slog.Logger) *Registry {
	return &Registry{log: log, hooks: make(map[Kind][]hook), failures: make(map[string][]Failure)}
}

// logger returns the registry's logger. slog.Default() is looked up each
// time: the default registry is built at package initialization, before a
// program's slog.SetDefault, and the logger slog.Default() returned then
// would send its records to the new handler as INFO text lines.
func (r *Registry) logger() *slog.Logger {
	if r.log != nil {
		return r.log
	}
	return slog.Default()
}

var defaultRegistry = New(nil)

func init() { lifecycle.SetDefault(defaultRegistry) }

// Default returns the default registry, which the tenantsql driver uses
// unless given another one (driver.WithHooks).
func Default() *Registry { return defaultRegistry }

// Subscribe adds fn to the default registry's hooks for kind.
func Subscribe(kind Kind, fn Func) { defaultRegistry.Subscribe(kind, fn) }

// SubscribeNamed adds fn to the default registry's hooks for kind, under
// name in logs and errors.
func SubscribeNamed(kind Kind, name string, fn Func) { defaultRegistry.SubscribeNamed(kind, name, fn) }

// Subscribe adds fn to the hooks for kind. Hooks of a kind run in the
// order they were subscribed. It panics on an unknown kind or a nil fn,
// as those are programming errors.
//
// Logs and errors name the hook: a ready-made hook of this package by its
// own name ("hooks.Migrate", "hooks.Databases.create", ...), any other by
// its Go function name, which for a function literal is only its place
// ("main.newApp.func2"): give such a hook a name with SubscribeNamed.
func (r *Registry) Subscribe(kind Kind, fn Func) {
	r.subscribe("Subscribe", kind, "", fn)
}

// SubscribeNamed is Subscribe with the name logs and errors call the hook
// by, instead of its Go function name. It panics on an empty name too.
func (r *Registry) SubscribeNamed(kind Kind, name string, fn Func) {
	if name == "" {
		panic("hooks: SubscribeNamed: empty name")
	}
	r.subscribe("SubscribeNamed", kind, name, fn)
}

func (r *Registry) subscribe(caller string, kind Kind, name string, fn Func) {
	if kind < OnCreate || kind > PostDelete {
		panic(fmt.Sprintf("hooks: %s: unknown kind %v", caller, kind))
	}
	if fn == nil {
		panic("hooks: " + caller + ": nil hook")
	}
	if name == "" {
		name = funcName(fn)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks[kind] = append(r.hooks[kind], hook{name: name, fn: fn})
}

// readyMade maps the code of this package's ready-made hooks (the
// function literals that Migrate, Databases and Schemas return) to their
// names: a Func cannot carry a name, and the literals' Go names
// ("hooks.Databases.func1") tell a reader nothing.
var readyMade sync.Map // uintptr -> string

// named records fn's name for Subscribe, and returns fn.
func named(name string, fn Func) Func {
	readyMade.Store(reflect.ValueOf(fn).Pointer(), name)
	return fn
}

func funcName(fn Func) string {
	pc := reflect.ValueOf(fn).Pointer()
	if name, ok := readyMade.Load(pc); ok {
		return name.(string)
	}
	if f := runtime.FuncForPC(pc); f != nil {
		return f.Name()
	}
	return "hook"
}

// Run runs the hooks of ev.Kind, in order, each with ctx. A hook that
// fails or panics does not stop the others: its failure is logged, kept
// (Failures) and returned, with the others', from errors.Join.
//
// A PostDelete run ends the tenant's delete: once its hooks have returned,
// the tenant's failures, theirs included, are forgotten.
func (r *Registry) Run(ctx context.Context, ev Event) error {
	if ev.Kind == PostDelete {
		// Kept past the delete, failures would pile up in a process that
		// sees many tenants come and go, and a tenant created again under
		// the same id would show its predecessor's. They have been
		// logged and returned by then.
		defer r.ClearFailures(ev.Tenant.ID)
	}
	r.mu.RLock()
	hs := slices.Clone(r.hooks[ev.Kind])
	observe := r.observe
	r.mu.RUnlock()
	var errs []error
	for _, h := range hs {
		if err := r.runObserved(ctx, observe, h, ev); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runObserved runs h, reported to observe if there is one.
func (r *Registry) runObserved(ctx context.Context, observe Observer, h hook, ev Event) error {
	if observe == nil {
		return r.runOne(ctx, h, ev)
	}
	ctx, done := observe(ctx, HookRun{Hook: h.name, Kind: ev.Kind, Tenant: ev.Tenant.ID, Version: ev.Version})
	err := r.runOne(ctx, h, ev)
	done(err)
	return err
}

func (r *Registry) runOne(ctx context.Context, h hook, ev Event) (err error) {
	// "store_version", not "version": a hook's log may be about a
	// migration, whose versions are the tenant's schema's.
	log := r.logger().With("hook", h.name, "kind", ev.Kind.String(), "tenant", ev.Tenant.ID, "store_version", ev.Version)
	defer func() {
		if p := recover(); p != nil {
			log.Error("tenantsql: hook panicked", "panic", p, "stack", string(debug.Stack()))
			if e, ok := p.(error); ok {
				err = fmt.Errorf("hooks: %s hook %s for tenant %q panicked: %w", ev.Kind, h.name, ev.Tenant.ID, e)
			} else {
				err = fmt.Errorf("hooks: %s hook %s for tenant %q panicked: %v", ev.Kind, h.name, ev.Tenant.ID, p)
			}
			r.keep(ev, h, err)
		}
	}()
	if err := h.fn(withLogger(ctx, log), ev); err != nil {
		log.Error("tenantsql: hook failed", "err", err)
		err = fmt.Errorf("hooks: %s hook %s for tenant %q: %w", ev.Kind, h.name, ev.Tenant.ID, err)
		r.keep(ev, h, err)
		return err
	}
	return nil
}

func (r *Registry) keep(ev Event, h hook, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fs := append(r.failures[ev.Tenant.ID], Failure{Kind: ev.Kind, Hook: h.name, Version: ev.Version, Err: err, At: time.Now()})
	if len(fs) > maxFailures {
		fs = slices.Delete(fs, 0, len(fs)-maxFailures)
	}
	r.failures[ev.Tenant.ID] = fs
}

// Failures returns the latest failures of hooks run for a tenant, oldest
// first; none once the tenant's delete has run its PostDelete phase.
func (r *Registry) Failures(tenant string) []Failure {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.failures[tenant])
}

// ClearFailures forgets the failures kept for a tenant.
func (r *Registry) ClearFailures(tenant string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failures, tenant)
}

// HandleChange runs the hooks for one phase of a store change. The
// tenantsql driver calls it for every change it applies; it is exported
// for other code that follows a store (store.Tracker) and wants the same
// hooks run.
func (r *Registry) HandleChange(ctx context.Context, c store.Change, p store.Phase) error {
	k := KindOf(c.Type, p)
	if k == 0 {
		return nil
	}
	return r.Run(ctx, Event{Kind: k, Tenant: c.Tenant, Old: c.Old, Version: c.Version})
}
