package tenantriver_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/tenantctx"
	"github.com/tenantsql/tenantsql/tenantriver"
)

// Jobs inserted from several goroutines for several tenants each run on
// their own tenant's database: every tenant's ran table holds exactly the
// jobs inserted for it, each written by a session on that database.
func TestConcurrentTenants(t *testing.T) {
	const tenants, goroutines, perGoroutine = 3, 6, 10
	h := newHarness(t, tenants)
	c := h.client(t, h.config(t))
	start(t, c)

	var (
		mu   sync.Mutex
		want = map[string][]int64{} // tenant id -> job ids
		wg   sync.WaitGroup
		errs = make(chan error, goroutines)
	)
	for g := range goroutines {
		wg.Go(func() {
			tn := h.env.Tenants[g%tenants]
			ctx := tenantctx.WithTenant(t.Context(), tn.ID)
			for range perGoroutine {
				res, err := c.Insert(ctx, recordArgs{}, nil)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want[tn.ID] = append(want[tn.ID], res.Job.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("insert: %v", err)
	}
	for _, ids := range want {
		for _, id := range ids {
			h.waitState(t, id, rivertype.JobStateCompleted)
		}
	}
	for _, tn := range h.env.Tenants {
		rows := h.ran(t, tn)
		var got []int64
		for _, r := range rows {
			got = append(got, r.JobID)
			if r.DB != tn.Database || r.CtxTenant != tn.ID || r.Attempt != 1 {
				t.Errorf("tenant %s: job %d ran on database %s with tenant %q at attempt %d, want %s, %s, 1",
					tn.ID, r.JobID, r.DB, r.CtxTenant, r.Attempt, tn.Database, tn.ID)
			}
		}
		ids := want[tn.ID]
		slices.Sort(ids)
		if !slices.Equal(got, ids) {
			t.Errorf("tenant %s: its database holds jobs %v, want the %d inserted for it: %v", tn.ID, got, len(ids), ids)
		}
	}
}

// A job that fails once is retried on the same tenant: both attempts
// write into the tenant's database.
func TestRetryKeepsTenant(t *testing.T) {
	h := newHarness(t, 2)
	c := h.client(t, h.config(t))
	start(t, c)

	tn := h.env.Tenants[1]
	res, err := c.Insert(h.env.Context(tn), recordArgs{FailFirst: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := h.waitState(t, res.Job.ID, rivertype.JobStateCompleted)
	if len(s.Errors) != 1 || !strings.Contains(s.Errors[0], errFirstAttempt.Error()) {
		t.Errorf("job errors %q, want the first attempt's only", s.Errors)
	}
	want := []ranRow{{res.Job.ID, 1, tn.Database, tn.ID}, {res.Job.ID, 2, tn.Database, tn.ID}}
	if got := h.ran(t, tn); !slices.Equal(got, want) {
		t.Errorf("tenant %s's database: %+v, want %+v", tn.ID, got, want)
	}
	if got := h.ran(t, h.env.Tenants[0]); len(got) != 0 {
		t.Errorf("the other tenant's database: %+v, want nothing", got)
	}
}

// A job whose tenant was deleted before it ran fails with
// driver.ErrUnknownTenant and is cancelled after one attempt.
func TestDeletedTenantCancels(t *testing.T) {
	h := newHarness(t, 2)
	c := h.client(t, h.cancelAtOnce(h.config(t)))
	gone, kept := h.env.Tenants[0], h.env.Tenants[1]
	// Inserted before the client works anything, so that both exist in
	// the control database when the tenant is deleted.
	resGone, err := c.Insert(h.env.Context(gone), recordArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resKept, err := c.Insert(h.env.Context(kept), recordArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.env.Store.Delete(t.Context(), gone.ID); err != nil || !ok {
		t.Fatalf("delete tenant: %v, %v", ok, err)
	}
	start(t, c)

	s := h.waitOutcome(t, resGone.Job.ID)
	if s.State != rivertype.JobStateCancelled {
		t.Errorf("job of the deleted tenant is %s, want cancelled", s.State)
	}
	if len(s.Errors) != 1 || !strings.Contains(s.Errors[0], driver.ErrUnknownTenant.Error()) {
		t.Errorf("cancelled job's errors %q, want one, the unknown tenant's", s.Errors)
	}
	if s.Tenant == nil || *s.Tenant != gone.ID {
		t.Errorf("cancelled job's metadata names tenant %v, want %s", s.Tenant, gone.ID)
	}
	h.waitState(t, resKept.Job.ID, rivertype.JobStateCompleted)
	if got := h.ran(t, gone); len(got) != 0 {
		t.Errorf("deleted tenant's database: %+v, want nothing", got)
	}
	if got := h.ran(t, kept); len(got) != 1 || got[0].DB != kept.Database {
		t.Errorf("kept tenant's database: %+v, want its job", got)
	}
}

// A kind declared WithoutTenant runs with no tenant, even when inserted
// from a context that has one, and its tenantsql queries fail closed.
func TestTenantlessKind(t *testing.T) {
	h := newHarness(t, 1)
	c := h.client(t, h.config(t))
	start(t, c)

	for _, ctx := range []context.Context{t.Context(), h.env.Context(h.env.Tenants[0])} {
		res, err := c.Insert(ctx, sweepArgs{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s := h.waitState(t, res.Job.ID, rivertype.JobStateCompleted); s.Tenant != nil {
			t.Errorf("tenant-less job's metadata names tenant %q", *s.Tenant)
		}
	}
	rows, err := h.control.Query(t.Context(), "SELECT had_tenant, no_tenant_error, db = current_database() FROM swept")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var had, noTenant, controlDB bool
		if err := rows.Scan(&had, &noTenant, &controlDB); err != nil {
			t.Fatal(err)
		}
		n++
		if had || !noTenant || !controlDB {
			t.Errorf("tenant-less job: had a tenant %v, query failed with ErrNoTenant %v, wrote on the control database %v; want false, true, true", had, noTenant, controlDB)
		}
	}
	if rows.Err() != nil || n != 2 {
		t.Fatalf("%d sweeps recorded (%v), want 2", n, rows.Err())
	}
	if got := h.ran(t, h.env.Tenants[0]); len(got) != 0 {
		t.Errorf("tenant's database: %+v, want nothing", got)
	}
}

// A tenant's kind inserted without a tenant is refused at insert; one
// that reaches the queue all the same (inserted by a client without the
// middleware) is cancelled without running: a retry could not give it a
// tenant.
func TestNoTenantFailsClosed(t *testing.T) {
	h := newHarness(t, 1)
	c := h.client(t, h.config(t))

	_, err := c.Insert(t.Context(), recordArgs{}, nil)
	if !errors.Is(err, driver.ErrNoTenant) || !strings.Contains(err.Error(), "tenantriver.WithoutTenant") {
		t.Errorf("insert without tenant: %v, want driver.ErrNoTenant saying what to do", err)
	}
	var n int
	if err := h.control.QueryRow(t.Context(), "SELECT count(*) FROM river_job").Scan(&n); err != nil || n != 0 {
		t.Fatalf("river_job holds %d jobs (%v), want none", n, err)
	}

	// Jobs that reach the queue without a usable tenant all the same,
	// inserted by a client without the middleware.
	plain := h.client(t, &river.Config{}) // insert-only, no middleware
	tests := []struct {
		name, metadata, wantErr string
	}{
		{"no tenant", `{}`, "names no tenant in its metadata"},
		{"tenant not a string", fmt.Sprintf(`{%q: 7}`, tenantriver.MetadataKey), "want a tenant id string"},
		{"incarnation not a time", fmt.Sprintf(`{%q: %q, %q: "yesterday"}`, tenantriver.MetadataKey, h.env.Tenants[0].ID,
			tenantriver.MetadataKeyCreatedAt), "want an RFC 3339 time string"},
	}
	ids := make([]int64, len(tests))
	for i, tt := range tests {
		res, err := plain.Insert(h.env.Context(h.env.Tenants[0]), recordArgs{}, &river.InsertOpts{Metadata: []byte(tt.metadata)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.Job.ID
	}
	start(t, c)
	for i, tt := range tests {
		s := h.waitOutcome(t, ids[i])
		if s.State != rivertype.JobStateCancelled || len(s.Errors) != 1 || !strings.Contains(s.Errors[0], tt.wantErr) {
			t.Errorf("%s: job %s with errors %q, want cancelled after one attempt saying %q", tt.name, s.State, s.Errors, tt.wantErr)
		}
	}
	if got := h.ran(t, h.env.Tenants[0]); len(got) != 0 {
		t.Errorf("tenant's database: %+v, want nothing: the jobs must not run", got)
	}
}

// The insert context is the only source of a job's tenant: metadata that
// names another is refused.
func TestMetadataMismatch(t *testing.T) {
	h := newHarness(t, 2)
	c := h.client(t, h.config(t))
	a, b := h.env.Tenants[0], h.env.Tenants[1]
	tests := []struct {
		name     string
		metadata string
		ok       bool
		is       error // the error matches it, when not ok
	}{
		{"other tenant", fmt.Sprintf(`{%q: %q}`, tenantriver.MetadataKey, b.ID), false, driver.ErrTenantMismatch},
		{"not a string", fmt.Sprintf(`{%q: 7}`, tenantriver.MetadataKey), false, nil},
		{"not an object", `[1]`, false, nil},
		{"same tenant", fmt.Sprintf(`{%q: %q, "other": 1}`, tenantriver.MetadataKey, a.ID), true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Insert(h.env.Context(a), recordArgs{}, &river.InsertOpts{Metadata: []byte(tt.metadata)})
			if !tt.ok {
				if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) {
					t.Errorf("insert: %v, want an error matching %v", err, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := h.job(t, res.Job.ID); s.Tenant == nil || *s.Tenant != a.ID {
				t.Errorf("metadata tenant %v, want %s", s.Tenant, a.ID)
			}
		})
	}
}

// Unique jobs are unique within a tenant: the same args for two tenants
// are two jobs, for one tenant twice one.
func TestUniquePerTenant(t *testing.T) {
	h := newHarness(t, 2)
	c := h.client(t, h.config(t))
	a, b := h.env.Tenants[0], h.env.Tenants[1]
	opts := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
	for i, tt := range []struct {
		ctx     context.Context
		skipped bool
	}{
		{h.env.Context(a), false},
		{h.env.Context(b), false},
		{h.env.Context(a), true},
	} {
		res, err := c.Insert(tt.ctx, recordArgs{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.UniqueSkippedAsDuplicate != tt.skipped {
			t.Errorf("insert %d: skipped as duplicate %v, want %v", i, res.UniqueSkippedAsDuplicate, tt.skipped)
		}
	}
	rows, err := h.control.Query(t.Context(), "SELECT metadata ->> $1 FROM river_job ORDER BY 1", tenantriver.MetadataKey)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	want := []string{a.ID, b.ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("jobs for tenants %v, want %v", got, want)
	}
}
