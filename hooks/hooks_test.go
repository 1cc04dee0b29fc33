package hooks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tenantsql/tenantsql/internal/lifecycle"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
)

var allKinds = []Kind{OnCreate, PostCreate, OnUpdate, PostUpdate, OnDelete, PostDelete}

// quiet is a logger for tests that expect failures and do not look at the log.
var quiet = slog.New(slog.DiscardHandler)

func TestKindString(t *testing.T) {
	tests := []struct {
		k    Kind
		want string
	}{
		{OnCreate, "on_tenant_create"},
		{PostCreate, "post_tenant_create"},
		{OnUpdate, "on_tenant_update"},
		{PostUpdate, "post_tenant_update"},
		{OnDelete, "on_tenant_delete"},
		{PostDelete, "post_tenant_delete"},
		{0, "hooks.Kind(0)"},
		{PostDelete + 1, "hooks.Kind(7)"},
		{255, "hooks.Kind(255)"},
	}
	for _, tt := range tests {
		if got := tt.k.String(); got != tt.want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(tt.k), got, tt.want)
		}
		if got := fmt.Sprint(tt.k); got != tt.want {
			t.Errorf("fmt.Sprint(Kind(%d)) = %q, want %q", uint8(tt.k), got, tt.want)
		}
	}
}

func TestKindPost(t *testing.T) {
	tests := []struct {
		k    Kind
		want bool
	}{
		{OnCreate, false},
		{PostCreate, true},
		{OnUpdate, false},
		{PostUpdate, true},
		{OnDelete, false},
		{PostDelete, true},
		{0, false},
		{PostDelete + 1, false},
	}
	for _, tt := range tests {
		if got := tt.k.Post(); got != tt.want {
			t.Errorf("%v.Post() = %v, want %v", tt.k, got, tt.want)
		}
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		typ   store.EventType
		phase store.Phase
		want  Kind
	}{
		{store.EventCreate, store.PhaseOn, OnCreate},
		{store.EventCreate, store.PhasePost, PostCreate},
		{store.EventUpdate, store.PhaseOn, OnUpdate},
		{store.EventUpdate, store.PhasePost, PostUpdate},
		{store.EventDelete, store.PhaseOn, OnDelete},
		{store.EventDelete, store.PhasePost, PostDelete},
		{store.EventSync, store.PhaseOn, 0},
		{store.EventSync, store.PhasePost, 0},
		{0, store.PhaseOn, 0},
		{0, store.PhasePost, 0},
		{store.EventDelete + 1, store.PhasePost, 0},
		{store.EventCreate, 0, 0},
		{store.EventCreate, store.PhasePost + 1, 0},
	}
	for _, tt := range tests {
		got := KindOf(tt.typ, tt.phase)
		if got != tt.want {
			t.Errorf("KindOf(%v, %v) = %v, want %v", tt.typ, tt.phase, got, tt.want)
		}
		if got != 0 && got.Post() != (tt.phase == store.PhasePost) {
			t.Errorf("KindOf(%v, %v).Post() = %v", tt.typ, tt.phase, got.Post())
		}
	}
}

func nop(context.Context, Event) error { return nil }

func TestSubscribePanics(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		fn   Func
		want string
	}{
		{"zero kind", 0, nop, "unknown kind hooks.Kind(0)"},
		{"kind past the last", PostDelete + 1, nop, "unknown kind hooks.Kind(7)"},
		{"nil hook", OnCreate, nil, "nil hook"},
		{"empty name", OnCreate, nop, "empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(quiet)
			defer func() {
				p := recover()
				if p == nil {
					t.Fatal("Subscribe did not panic")
				}
				if msg := fmt.Sprint(p); !strings.Contains(msg, tt.want) {
					t.Errorf("panic %q does not mention %q", msg, tt.want)
				}
				if n := len(r.hooks); n != 0 {
					t.Errorf("a hook was added anyway: %v", r.hooks)
				}
			}()
			if tt.name == "empty name" {
				r.SubscribeNamed(tt.kind, "", tt.fn)
			}
			r.Subscribe(tt.kind, tt.fn)
		})
	}
}

// trace records which hooks ran, in order.
type trace struct {
	mu  sync.Mutex
	ran []string
}

func (tr *trace) hook(name string, err error) Func {
	return func(ctx context.Context, ev Event) error {
		tr.mu.Lock()
		tr.ran = append(tr.ran, name)
		tr.mu.Unlock()
		return err
	}
}

func (tr *trace) panicking(name string, v any) Func {
	return func(ctx context.Context, ev Event) error {
		tr.mu.Lock()
		tr.ran = append(tr.ran, name)
		tr.mu.Unlock()
		panic(v)
	}
}

func (tr *trace) get() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.ran)
}

func TestRunRunsHooksOfTheKindInOrder(t *testing.T) {
	r := New(quiet)
	tr := &trace{}
	for _, k := range allKinds {
		for i := range 3 {
			r.Subscribe(k, tr.hook(fmt.Sprintf("%v#%d", k, i), nil))
		}
	}
	for _, k := range allKinds {
		tr.ran = nil
		if err := r.Run(t.Context(), Event{Kind: k, Tenant: store.Tenant{ID: "t1"}}); err != nil {
			t.Fatalf("Run(%v): %v", k, err)
		}
		want := []string{k.String() + "#0", k.String() + "#1", k.String() + "#2"}
		if got := tr.get(); !slices.Equal(got, want) {
			t.Errorf("Run(%v) ran %v, want %v", k, got, want)
		}
	}
	if got := r.Failures("t1"); len(got) != 0 {
		t.Errorf("Failures after successful runs = %v", got)
	}
}

func TestRunWithoutHooks(t *testing.T) {
	r := New(quiet)
	r.Subscribe(OnCreate, nop)
	for _, k := range append([]Kind{0, PostDelete + 1}, allKinds[1:]...) {
		if err := r.Run(t.Context(), Event{Kind: k}); err != nil {
			t.Errorf("Run(%v) with no hooks of that kind = %v", k, err)
		}
	}
}

type ctxKey struct{}

func TestRunPassesContextAndEvent(t *testing.T) {
	r := New(quiet)
	ev := Event{
		Kind:    PostUpdate,
		Tenant:  store.Tenant{ID: "t1", Version: 3, DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://db/new"}},
		Old:     store.Tenant{ID: "t1", Version: 2, DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://db/old"}},
		Version: 42,
	}
	var got Event
	var gotVal any
	r.Subscribe(PostUpdate, func(ctx context.Context, e Event) error {
		got, gotVal = e, ctx.Value(ctxKey{})
		return nil
	})
	ctx := context.WithValue(t.Context(), ctxKey{}, "marker")
	if err := r.Run(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if gotVal != "marker" {
		t.Errorf("hook's context value = %v, want the caller's", gotVal)
	}
	if got.Kind != ev.Kind || got.Version != ev.Version || got.Tenant.String() != ev.Tenant.String() || got.Old.String() != ev.Old.String() {
		t.Errorf("hook got %+v, want %+v", got, ev)
	}
}

var errBoom = errors.New("boom")

func failingHook(context.Context, Event) error { return errBoom }

func panickingHook(context.Context, Event) error { panic("kaboom") }

func TestRunFailuresDoNotStopLaterHooks(t *testing.T) {
	r := New(quiet)
	tr := &trace{}
	r.Subscribe(PostCreate, tr.hook("first", nil))
	r.Subscribe(PostCreate, tr.hook("fails", errBoom))
	r.Subscribe(PostCreate, tr.panicking("panics", "kaboom"))
	r.Subscribe(PostCreate, tr.panicking("panics with an error", fmt.Errorf("wrapped: %w", errBoom)))
	r.Subscribe(PostCreate, tr.hook("last", nil))
	r.Subscribe(OnCreate, tr.hook("other kind", errBoom))

	err := r.Run(t.Context(), Event{Kind: PostCreate, Tenant: store.Tenant{ID: "tenant-7.test"}, Version: 9})
	if want := []string{"first", "fails", "panics", "panics with an error", "last"}; !slices.Equal(tr.get(), want) {
		t.Errorf("ran %v, want %v", tr.get(), want)
	}
	if err == nil {
		t.Fatal("Run returned nil after failing hooks")
	}
	if !errors.Is(err, errBoom) {
		t.Errorf("errors.Is(%v, errBoom) = false", err)
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Run's error %T is not a joined error", err)
	}
	errs := joined.Unwrap()
	if len(errs) != 3 {
		t.Fatalf("Run's error holds %d errors, want 3: %v", len(errs), err)
	}
	for i, e := range errs {
		msg := e.Error()
		for _, want := range []string{`"tenant-7.test"`, "post_tenant_create"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %d %q does not mention %s", i, msg, want)
			}
		}
	}
	if msg := errs[0].Error(); !strings.HasSuffix(msg, ": boom") {
		t.Errorf("error %q does not end in the hook's own error", msg)
	}
	for i, want := range []string{"panicked: kaboom", "panicked: wrapped: boom"} {
		if msg := errs[i+1].Error(); !strings.Contains(msg, want) {
			t.Errorf("panic error %q does not contain %q", msg, want)
		}
	}

	fs := r.Failures("tenant-7.test")
	if len(fs) != 3 {
		t.Fatalf("Failures = %v, want 3", fs)
	}
	for i, f := range fs {
		if f.Kind != PostCreate || f.Version != 9 || f.Err != errs[i] || f.At.IsZero() || f.Hook == "" {
			t.Errorf("Failures[%d] = %+v, want kind %v, version 9, the error Run returned, a time and a hook name", i, f, PostCreate)
		}
	}
	if len(r.Failures("other")) != 0 {
		t.Error("failures of one tenant show up under another")
	}
}

func TestFailureNamesTheHook(t *testing.T) {
	r := New(quiet)
	r.Subscribe(OnDelete, failingHook)
	r.Subscribe(OnDelete, panickingHook)
	err := r.Run(t.Context(), Event{Kind: OnDelete, Tenant: store.Tenant{ID: "t1"}})
	fs := r.Failures("t1")
	if len(fs) != 2 {
		t.Fatalf("Failures = %v", fs)
	}
	for i, name := range []string{"hooks.failingHook", "hooks.panickingHook"} {
		if !strings.HasSuffix(fs[i].Hook, name) {
			t.Errorf("Failures[%d].Hook = %q, want it to end in %q", i, fs[i].Hook, name)
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Run's error %q does not name %s", err, name)
		}
	}
}

// SubscribeNamed's name is what failures, errors and logs call the hook;
// Subscribe keeps the Go name of a hook it knows no other name for.
func TestSubscribeNamed(t *testing.T) {
	var buf testenv.LogBuffer
	r := New(slog.New(slog.NewJSONHandler(&buf, nil)))
	r.SubscribeNamed(PostCreate, "seed the tenant", func(context.Context, Event) error { return errBoom })
	r.Subscribe(PostCreate, func(context.Context, Event) error { return errBoom })
	err := r.Run(t.Context(), Event{Kind: PostCreate, Tenant: store.Tenant{ID: "t1"}})
	fs := r.Failures("t1")
	if len(fs) != 2 {
		t.Fatalf("Failures = %v", fs)
	}
	if fs[0].Hook != "seed the tenant" || !strings.Contains(err.Error(), "hook seed the tenant for tenant") {
		t.Errorf("named hook: Failure.Hook %q, error %q", fs[0].Hook, err)
	}
	if want := "hooks.TestSubscribeNamed.func"; !strings.HasPrefix(strings.TrimPrefix(fs[1].Hook, "github.com/tenantsql/tenantsql/"), want) {
		t.Errorf("unnamed hook: Failure.Hook %q, want the Go name %s...", fs[1].Hook, want)
	}
	if recs := buf.Records(t); len(recs) != 2 || recs[0]["hook"] != "seed the tenant" {
		t.Errorf("log records %v, want the first to name the hook \"seed the tenant\"", recs)
	}
}

// The package's ready-made hooks carry their own names, whichever way
// they are subscribed.
func TestReadyMadeHookNames(t *testing.T) {
	dbCreate, dbDrop := Databases(DropDatabaseOnDelete(store.NewMemory()))
	schCreate, schDrop := Schemas(DropSchemaOnDelete(store.NewMemory()))
	mig, err := Migrate(&sql.DB{}, fstest.MapFS{"00001_a.sql": {Data: []byte("-- +goose Up\nSELECT 1;\n")}})
	if err != nil {
		t.Fatal(err)
	}
	r := New(quiet)
	for _, tt := range []struct {
		kind Kind
		fn   Func
		want string
	}{
		{OnCreate, dbCreate, "hooks.Databases.create"},
		{PostDelete, dbDrop, "hooks.Databases.drop"},
		{OnCreate, schCreate, "hooks.Schemas.create"},
		{PostDelete, schDrop, "hooks.Schemas.drop"},
		{PostCreate, mig, "hooks.Migrate"},
	} {
		r.Subscribe(tt.kind, tt.fn)
		hs := r.hooks[tt.kind]
		if got := hs[len(hs)-1].name; got != tt.want {
			t.Errorf("Subscribe(%v, ...) named the hook %q, want %q", tt.kind, got, tt.want)
		}
	}
	// A hook the caller names keeps the caller's name.
	r.SubscribeNamed(OnCreate, "create the database", dbCreate)
	if hs := r.hooks[OnCreate]; hs[len(hs)-1].name != "create the database" {
		t.Errorf("SubscribeNamed on a ready-made hook: %q", hs[len(hs)-1].name)
	}
}

func TestFailuresBoundedOldestFirst(t *testing.T) {
	r := New(quiet)
	r.Subscribe(OnUpdate, failingHook)
	const runs = maxFailures + 5
	for v := int64(1); v <= runs; v++ {
		if err := r.Run(t.Context(), Event{Kind: OnUpdate, Tenant: store.Tenant{ID: "t1"}, Version: v}); !errors.Is(err, errBoom) {
			t.Fatalf("Run #%d = %v", v, err)
		}
		if v == 3 {
			if got := len(r.Failures("t1")); got != 3 {
				t.Fatalf("after 3 failures Failures holds %d", got)
			}
		}
	}
	// One for another tenant, which must survive ClearFailures("t1").
	if err := r.Run(t.Context(), Event{Kind: OnUpdate, Tenant: store.Tenant{ID: "t2"}, Version: 100}); !errors.Is(err, errBoom) {
		t.Fatalf("Run for t2 = %v", err)
	}

	fs := r.Failures("t1")
	if len(fs) != maxFailures {
		t.Fatalf("Failures holds %d, want %d", len(fs), maxFailures)
	}
	for i, f := range fs {
		if want := int64(runs - maxFailures + 1 + i); f.Version != want {
			t.Errorf("Failures[%d].Version = %d, want %d (oldest first, oldest dropped)", i, f.Version, want)
		}
		if i > 0 && f.At.Before(fs[i-1].At) {
			t.Errorf("Failures[%d] is older than the one before it", i)
		}
	}
	if maxFailures != 16 {
		t.Errorf("maxFailures = %d; the package documentation says 16", maxFailures)
	}

	r.ClearFailures("t1")
	if got := r.Failures("t1"); len(got) != 0 {
		t.Errorf("Failures after ClearFailures = %v", got)
	}
	if got := r.Failures("t2"); len(got) != 1 {
		t.Errorf("ClearFailures(t1) touched t2: %v", got)
	}
	r.ClearFailures("never-failed") // no-op
	if err := r.Run(t.Context(), Event{Kind: OnUpdate, Tenant: store.Tenant{ID: "t1"}, Version: 200}); err == nil {
		t.Fatal("want a failure")
	}
	if fs := r.Failures("t1"); len(fs) != 1 || fs[0].Version != 200 {
		t.Errorf("Failures after clearing and failing again = %v", fs)
	}
}

// A deleted tenant's failures are forgotten once its delete has been
// handled (both phases), so a process where tenants come and go does not
// keep them for ever, and a tenant created again under the same id starts
// clean. Other tenants keep theirs.
func TestDeleteForgetsFailures(t *testing.T) {
	// Every hook here is failingHook: each run must report its error.
	mustFail := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, errBoom) {
			t.Fatalf("a run of failingHook returned %v, want errBoom", err)
		}
	}
	tests := []struct {
		name   string
		delete func(t *testing.T, r *Registry, id string) // handle the delete of id
		want   int                                        // failures of id left afterwards
	}{
		{"both phases through HandleChange", func(t *testing.T, r *Registry, id string) {
			ch := store.Change{Type: store.EventDelete, Tenant: store.Tenant{ID: id}, Version: 3}
			mustFail(t, r.HandleChange(t.Context(), ch, store.PhaseOn))
			mustFail(t, r.HandleChange(t.Context(), ch, store.PhasePost))
		}, 0},
		{"both phases through Run", func(t *testing.T, r *Registry, id string) {
			mustFail(t, r.Run(t.Context(), Event{Kind: OnDelete, Tenant: store.Tenant{ID: id}, Version: 3}))
			mustFail(t, r.Run(t.Context(), Event{Kind: PostDelete, Tenant: store.Tenant{ID: id}, Version: 3}))
		}, 0},
		// The POST phase ends the delete: until it has run, the ON
		// phase's failures (here the second one) are there to see.
		{"ON phase only", func(t *testing.T, r *Registry, id string) {
			mustFail(t, r.Run(t.Context(), Event{Kind: OnDelete, Tenant: store.Tenant{ID: id}, Version: 3}))
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(quiet)
			r.Subscribe(PostCreate, failingHook)
			r.Subscribe(OnDelete, failingHook)
			r.Subscribe(PostDelete, failingHook) // its own failure goes too
			for _, id := range []string{"t1", "t2"} {
				mustFail(t, r.Run(t.Context(), Event{Kind: PostCreate, Tenant: store.Tenant{ID: id}, Version: 1}))
			}
			tt.delete(t, r, "t1")
			if got := r.Failures("t1"); len(got) != tt.want {
				t.Fatalf("after the delete Failures(t1) = %v, want %d", got, tt.want)
			}
			if got := r.Failures("t2"); len(got) != 1 {
				t.Errorf("deleting t1 changed t2's failures: %v", got)
			}
			if tt.want != 0 {
				return
			}
			// Created again: only the new tenant's failure is there.
			mustFail(t, r.Run(t.Context(), Event{Kind: PostCreate, Tenant: store.Tenant{ID: "t1"}, Version: 4}))
			if got := r.Failures("t1"); len(got) != 1 || got[0].Version != 4 {
				t.Errorf("the re-created tenant's failures = %+v, want only its own (version 4)", got)
			}
		})
	}
}

func TestFailuresReturnsACopy(t *testing.T) {
	r := New(quiet)
	r.Subscribe(OnCreate, failingHook)
	for v := int64(1); v <= 2; v++ {
		if err := r.Run(t.Context(), Event{Kind: OnCreate, Tenant: store.Tenant{ID: "t1"}, Version: v}); !errors.Is(err, errBoom) {
			t.Fatalf("Run #%d = %v, want errBoom", v, err)
		}
	}
	fs := r.Failures("t1")
	fs[0].Version = 99
	fs[1] = Failure{}
	_ = append(fs[:1], Failure{Version: 77})
	again := r.Failures("t1")
	if len(again) != 2 || again[0].Version != 1 || again[1].Version != 2 {
		t.Errorf("changing the returned slice changed the registry: %+v", again)
	}
}

func TestHandleChange(t *testing.T) {
	old := store.Tenant{ID: "t1", Version: 1, DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://db/a"}}
	cur := store.Tenant{ID: "t1", Version: 2, DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://db/b"}}
	tests := []struct {
		typ   store.EventType
		phase store.Phase
		want  Kind
	}{
		{store.EventCreate, store.PhaseOn, OnCreate},
		{store.EventCreate, store.PhasePost, PostCreate},
		{store.EventUpdate, store.PhaseOn, OnUpdate},
		{store.EventUpdate, store.PhasePost, PostUpdate},
		{store.EventDelete, store.PhaseOn, OnDelete},
		{store.EventDelete, store.PhasePost, PostDelete},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%v", tt.typ, tt.phase), func(t *testing.T) {
			r := New(quiet)
			var got []Event
			for _, k := range allKinds {
				r.Subscribe(k, func(ctx context.Context, ev Event) error {
					got = append(got, ev)
					return nil
				})
			}
			c := store.Change{Type: tt.typ, Tenant: cur, Old: old, Version: 17}
			if err := r.HandleChange(t.Context(), c, tt.phase); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d hooks ran, want 1: %v", len(got), got)
			}
			ev := got[0]
			if ev.Kind != tt.want {
				t.Errorf("Kind = %v, want %v", ev.Kind, tt.want)
			}
			if ev.Version != 17 || ev.Tenant.String() != cur.String() || ev.Old.String() != old.String() {
				t.Errorf("event = %+v, want Tenant %v, Old %v, Version 17", ev, cur, old)
			}
		})
	}
}

func TestHandleChangeReturnsHookErrors(t *testing.T) {
	r := New(quiet)
	// An update: a delete's failures are forgotten once it has run
	// (TestDeleteForgetsFailures).
	r.Subscribe(PostUpdate, failingHook)
	err := r.HandleChange(t.Context(), store.Change{Type: store.EventUpdate, Tenant: store.Tenant{ID: "t1"}, Version: 5}, store.PhasePost)
	if !errors.Is(err, errBoom) {
		t.Fatalf("HandleChange = %v, want the hook's error", err)
	}
	if fs := r.Failures("t1"); len(fs) != 1 || fs[0].Kind != PostUpdate || fs[0].Version != 5 {
		t.Errorf("Failures = %+v", fs)
	}
}

func TestHandleChangeIgnoresSync(t *testing.T) {
	r := New(quiet)
	ran := 0
	for _, k := range allKinds {
		r.Subscribe(k, func(context.Context, Event) error { ran++; return errBoom })
	}
	for _, typ := range []store.EventType{store.EventSync, 0, store.EventDelete + 1} {
		for _, p := range []store.Phase{store.PhaseOn, store.PhasePost} {
			c := store.Change{Type: typ, Tenant: store.Tenant{ID: "t1"}}
			if err := r.HandleChange(t.Context(), c, p); err != nil {
				t.Errorf("HandleChange(%v, %v) = %v", typ, p, err)
			}
		}
	}
	if ran != 0 {
		t.Errorf("%d hooks ran for changes that are not a create, update or delete", ran)
	}
	if fs := r.Failures("t1"); len(fs) != 0 {
		t.Errorf("Failures = %v", fs)
	}
}

// Registry implements the interface the driver finds it through.
var _ store.ChangeHandler = (*Registry)(nil)

func TestConcurrentUse(t *testing.T) {
	r := New(quiet)
	var wg sync.WaitGroup
	const goroutines, rounds = 8, 50
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				k := allKinds[(g+i)%len(allKinds)]
				if i%3 == 0 {
					r.Subscribe(k, failingHook)
				} else {
					r.Subscribe(k, nop)
				}
			}
		})
		wg.Go(func() {
			id := fmt.Sprintf("t%d", g%3)
			for i := range rounds {
				k := allKinds[i%len(allKinds)]
				// Subscribed concurrently: failingHook may have run, or not.
				if err := r.Run(t.Context(), Event{Kind: k, Tenant: store.Tenant{ID: id}, Version: int64(i)}); err != nil && !errors.Is(err, errBoom) {
					t.Errorf("Run: %v", err)
				}
				if err := r.HandleChange(t.Context(), store.Change{Type: store.EventUpdate, Tenant: store.Tenant{ID: id}}, store.Phase(1+i%2)); err != nil && !errors.Is(err, errBoom) {
					t.Errorf("HandleChange: %v", err)
				}
				if fs := r.Failures(id); len(fs) > maxFailures {
					t.Errorf("Failures(%s) holds %d", id, len(fs))
				}
				if i%10 == 0 {
					r.ClearFailures(id)
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for _, k := range allKinds {
		total += len(r.hooks[k])
	}
	if total != goroutines*rounds {
		t.Errorf("%d hooks subscribed, want %d", total, goroutines*rounds)
	}
}

// A hook that subscribes another hook while running does not deadlock, and
// the new hook runs from the next Run on.
func TestSubscribeFromAHook(t *testing.T) {
	r := New(quiet)
	tr := &trace{}
	r.Subscribe(OnCreate, func(ctx context.Context, ev Event) error {
		r.Subscribe(OnCreate, tr.hook("added", nil))
		r.Failures(ev.Tenant.ID)
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), Event{Kind: OnCreate}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run deadlocked")
	}
	if len(tr.get()) != 0 {
		t.Error("a hook subscribed during Run ran in that Run")
	}
	if err := r.Run(t.Context(), Event{Kind: OnCreate}); err != nil {
		t.Fatalf("the next Run: %v", err)
	}
	if got := tr.get(); len(got) != 1 {
		t.Errorf("the added hook ran %d times in the next Run, want 1", len(got))
	}
}

func TestFailuresAreLogged(t *testing.T) {
	var buf testenv.LogBuffer
	r := New(slog.New(slog.NewJSONHandler(&buf, nil)))
	r.Subscribe(PostCreate, nop)
	r.Subscribe(PostCreate, failingHook)
	r.Subscribe(PostCreate, panickingHook)
	if err := r.Run(t.Context(), Event{Kind: PostCreate, Tenant: store.Tenant{ID: "tenant-9.test"}, Version: 4}); !errors.Is(err, errBoom) {
		t.Fatalf("Run = %v, want the failing hook's errBoom among its errors", err)
	}

	recs := buf.Records(t)
	if len(recs) != 2 {
		t.Fatalf("%d log records, want one per failure (2): %v", len(recs), recs)
	}
	for i, want := range []struct{ msg, hook, extra, value string }{
		{"tenantsql: hook failed", "hooks.failingHook", "err", "boom"},
		{"tenantsql: hook panicked", "hooks.panickingHook", "panic", "kaboom"},
	} {
		rec := recs[i]
		if rec["level"] != "ERROR" || rec["msg"] != want.msg {
			t.Errorf("record %d: level %v msg %v, want ERROR %q", i, rec["level"], rec["msg"], want.msg)
		}
		if rec["tenant"] != "tenant-9.test" || rec["kind"] != "post_tenant_create" {
			t.Errorf("record %d: tenant %v kind %v", i, rec["tenant"], rec["kind"])
		}
		if h, _ := rec["hook"].(string); !strings.HasSuffix(h, want.hook) {
			t.Errorf("record %d: hook %q, want it to end in %q", i, h, want.hook)
		}
		if rec[want.extra] != want.value {
			t.Errorf("record %d: %s = %v, want %q", i, want.extra, rec[want.extra], want.value)
		}
		// The store's version of the change, named so: not to be read as
		// a migration (schema) version.
		if _, ok := rec["version"]; ok || rec["store_version"] != 4.0 {
			t.Errorf("record %d: store_version %v (version %v), want store_version 4 and no version", i, rec["store_version"], rec["version"])
		}
	}
	if stack, _ := recs[1]["stack"].(string); !strings.Contains(stack, "panickingHook") {
		t.Errorf("panic record's stack does not show the hook: %q", stack)
	}
}

var runs atomic.Int64

// withSlogDefault makes slog.Default() log JSON to a buffer until the test
// ends.
func withSlogDefault(t *testing.T) *testenv.LogBuffer {
	buf := &testenv.LogBuffer{}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return buf
}

// A registry built with a nil logger logs to slog.Default() as it is when
// a hook fails, not as it was when the registry was built: the default
// registry is built before any program can call slog.SetDefault.
func TestNilLoggerFollowsSlogDefault(t *testing.T) {
	tests := []struct {
		name string
		reg  func() *Registry
	}{
		{"new", func() *Registry { return New(nil) }},
		{"default", Default},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.reg() // before slog.SetDefault
			// The default registry keeps its hooks across -count runs: a
			// fresh id keeps earlier runs' hooks out of this one.
			id := fmt.Sprintf("slog-default-%s-%d", tt.name, runs.Add(1))
			r.Subscribe(OnDelete, func(ctx context.Context, ev Event) error {
				if ev.Tenant.ID == id {
					return errBoom
				}
				return nil
			})
			buf := withSlogDefault(t)
			if err := r.Run(t.Context(), Event{Kind: OnDelete, Tenant: store.Tenant{ID: id}}); !errors.Is(err, errBoom) {
				t.Fatalf("Run = %v, want errBoom", err)
			}
			r.ClearFailures(id)
			recs := buf.Records(t)
			if len(recs) != 1 {
				t.Fatalf("slog.Default() got %d records, want 1: %v", len(recs), recs)
			}
			if recs[0]["level"] != "ERROR" || recs[0]["msg"] != "tenantsql: hook failed" || recs[0]["tenant"] != id || recs[0]["err"] != "boom" {
				t.Errorf("record = %v, want an ERROR record of the failure", recs[0])
			}
		})
	}
}

func TestDefaultRegistry(t *testing.T) {
	if Default() == nil {
		t.Fatal("Default() is nil")
	}
	if a, b := Default(), Default(); a != b {
		t.Fatal("Default() changes")
	}
	h := lifecycle.Default()
	if h == nil {
		t.Fatal("lifecycle.Default() is nil with package hooks linked in")
	}
	if reg, ok := h.(*Registry); !ok || reg != Default() {
		t.Fatalf("lifecycle.Default() = %T %p, want hooks.Default() %p", h, h, Default())
	}

	// Subscribe adds to the default registry, which the driver reaches
	// through lifecycle.Default().
	const id = "default-registry-test"
	var got []Kind
	Subscribe(PostUpdate, func(ctx context.Context, ev Event) error {
		if ev.Tenant.ID == id {
			got = append(got, ev.Kind)
		}
		return nil
	})
	if err := h.HandleChange(t.Context(), store.Change{Type: store.EventUpdate, Tenant: store.Tenant{ID: id}}, store.PhasePost); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []Kind{PostUpdate}) {
		t.Errorf("hook subscribed with Subscribe ran for %v, want [PostUpdate]", got)
	}
	if r := New(nil); r == Default() {
		t.Error("New returned the default registry")
	}
}
