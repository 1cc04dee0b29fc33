package hooks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/store"
)

type observedKey struct{}

// The observer sees each hook run with its name, kind, tenant and store
// version, the hook gets the context it returns, and its end gets the
// hook's error: nil, the error returned, or the panic.
func TestObserverSeesEachRun(t *testing.T) {
	r := New(quiet)
	type seen struct {
		run HookRun
		err error
	}
	var got []seen
	r.SetObserver(func(ctx context.Context, run HookRun) (context.Context, func(error)) {
		i := len(got)
		got = append(got, seen{run: run})
		return context.WithValue(ctx, observedKey{}, run.Hook), func(err error) { got[i].err = err }
	})
	errNo := errors.New("no")
	var ctxHook any
	r.SubscribeNamed(OnCreate, "ok", func(ctx context.Context, _ Event) error {
		ctxHook = ctx.Value(observedKey{})
		return nil
	})
	r.SubscribeNamed(OnCreate, "fails", func(context.Context, Event) error { return errNo })
	r.SubscribeNamed(OnCreate, "panics", func(context.Context, Event) error { panic("boom") })
	r.Run(context.Background(), Event{Kind: OnCreate, Tenant: store.Tenant{ID: "t1"}, Version: 7})

	if ctxHook != "ok" {
		t.Errorf("the hook's context carries %v, want the observer's value %q", ctxHook, "ok")
	}
	want := []string{"ok", "fails", "panics"}
	if len(got) != len(want) {
		t.Fatalf("observed %d runs, want %d", len(got), len(want))
	}
	for i, s := range got {
		if s.run != (HookRun{Hook: want[i], Kind: OnCreate, Tenant: "t1", Version: 7}) {
			t.Errorf("run %d: %+v", i, s.run)
		}
	}
	if got[0].err != nil {
		t.Errorf("ok: end got %v, want nil", got[0].err)
	}
	if !errors.Is(got[1].err, errNo) {
		t.Errorf("fails: end got %v, want the hook's error", got[1].err)
	}
	if got[2].err == nil || !strings.Contains(got[2].err.Error(), "boom") {
		t.Errorf("panics: end got %v, want the panic", got[2].err)
	}

	r.SetObserver(nil)
	got = nil
	r.Run(context.Background(), Event{Kind: OnCreate, Tenant: store.Tenant{ID: "t1"}})
	if len(got) != 0 {
		t.Errorf("observed %d runs after SetObserver(nil)", len(got))
	}
}
