package telemetry_test

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/telemetry"
	"github.com/tenantsql/tenantsql/tenantctx"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The databases of the trace tests' tenants: one each, so that the
// database a statement reached names its tenant.
var traceDBs = testenv.Names("tsql_trace", 4)

// traceEnv is a connector whose query tracer makes spans into rec.
type traceEnv struct {
	rec     *tracetest.SpanRecorder
	tracer  trace.Tracer // the test's own, for the callers' spans
	m       *telemetry.Metrics
	store   *store.Memory
	db      *sql.DB
	tenants []string // tenant i on traceDBs[i], or traceDBs[i%2] if shared
}

func newTraceEnv(t *testing.T, mopts []telemetry.Option, dopts ...driver.Option) *traceEnv {
	return newTraceEnvOf(t, false, mopts, dopts...)
}

// newTraceEnvOf registers 4 tenants, each on a database of its own or, if
// shared, two on each database with their id as the setting app.tenant_id
// (tenants that share a pool).
func newTraceEnvOf(t *testing.T, shared bool, mopts []telemetry.Option, dopts ...driver.Option) *traceEnv {
	t.Helper()
	testenv.EnsureDatabases(t, traceDBs...)
	e := &traceEnv{rec: tracetest.NewSpanRecorder(), store: store.NewMemory()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e.tracer = tp.Tracer("test")
	var err error
	if e.m, err = telemetry.New(append([]telemetry.Option{telemetry.WithTracerProvider(tp)}, mopts...)...); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("trace%04x", rand.IntN(1<<16))
	for i, name := range traceDBs {
		id := fmt.Sprintf("%s-%d.test", tag, i)
		url := testenv.DatabaseURL(t, name)
		if shared {
			url = testenv.DatabaseURL(t, traceDBs[i%2], "app.tenant_id", id)
		}
		if _, err := e.store.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: url}}); err != nil {
			t.Fatal(err)
		}
		e.tenants = append(e.tenants, id)
	}
	c, err := driver.NewConnector(e.store, append([]driver.Option{driver.WithHooks(nil), driver.WithQueryTracer(e.m.QueryTracer)}, dopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.db = sql.OpenDB(c)
	t.Cleanup(func() { e.db.Close() })
	return e
}

func attrOf(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func str(s sdktrace.ReadOnlySpan, k attribute.Key) string {
	v, _ := attrOf(s, k)
	return v.AsString()
}

// Under 4 tenants × 16 goroutines, each statement's span is the child of
// the caller's span, and carries the tenant the caller's context named
// and the database the server said the statement ran in
// (current_database()), with the server's address; in a pool that
// tenants share, the tenant the server ran the statement for (the
// setting app.tenant_id the driver set for it).
func TestSpansCarryTheTenantUnderConcurrentLoad(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "database per tenant", true: "shared pools"}[shared], func(t *testing.T) {
			testSpansUnderLoad(t, shared)
		})
	}
}

func testSpansUnderLoad(t *testing.T, shared bool) {
	// The test logs in as a superuser; no policy is under test here.
	e := newTraceEnvOf(t, shared, nil, driver.WithBypassRLS(true))
	e.db.SetMaxOpenConns(12) // fewer sessions than goroutines: sessions change hands
	type call struct{ tenant, database string }
	var (
		mu    sync.Mutex
		calls = map[trace.SpanID]call{} // the caller's span -> what the server answered
	)
	const workers, perWorker = 16, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				tenant := e.tenants[(w+i)%len(e.tenants)]
				ctx, parent := e.tracer.Start(tenantctx.WithTenant(context.Background(), tenant), "caller")
				var database, asTenant string
				err := e.db.QueryRowContext(ctx, "SELECT current_database(), coalesce(current_setting('app.tenant_id', true), '')").Scan(&database, &asTenant)
				parent.End()
				if err != nil {
					t.Error(err)
					return
				}
				if shared {
					tenant = asTenant // the server's word, checked against the context's below
				}
				mu.Lock()
				calls[parent.SpanContext().SpanID()] = call{tenant, database}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(calls) != workers*perWorker {
		t.Fatalf("%d calls, want %d", len(calls), workers*perWorker)
	}
	host, port := serverOf(t)
	seen := map[trace.SpanID]bool{}
	for _, s := range e.rec.Ended() {
		c, ok := calls[s.Parent().SpanID()]
		if !ok || s.SpanKind() != trace.SpanKindClient || str(s, "db.operation.name") == "" {
			continue // a dial (connect) or the driver's own statements
		}
		seen[s.Parent().SpanID()] = true
		if s.Parent().TraceID() != s.SpanContext().TraceID() {
			t.Errorf("span %s is in trace %s, its caller in %s", s.Name(), s.SpanContext().TraceID(), s.Parent().TraceID())
		}
		for k, want := range map[attribute.Key]string{
			telemetry.TenantAttribute: c.tenant,
			"db.namespace":            c.database,
			"db.system.name":          "postgresql",
			"db.operation.name":       "SELECT",
			"server.address":          host,
		} {
			if got := str(s, k); got != want {
				t.Errorf("span %q: %s = %q, want %q (the server ran it in %s for tenant %s)", s.Name(), k, got, want, c.database, c.tenant)
			}
		}
		if v, _ := attrOf(s, "server.port"); strconv.FormatInt(v.AsInt64(), 10) != port {
			t.Errorf("span %q: server.port = %v, want %s", s.Name(), v.String(), port)
		}
		if want := "SELECT " + c.database; s.Name() != want {
			t.Errorf("span name %q, want %q", s.Name(), want)
		}
		if _, ok := attrOf(s, "db.query.text"); ok {
			t.Errorf("span %q has db.query.text without WithQueryText", s.Name())
		}
	}
	if len(seen) != len(calls) {
		t.Errorf("%d of %d calls have a statement span under them", len(seen), len(calls))
	}
}

// serverOf is the test server's host and port, as its URL names them.
func serverOf(t *testing.T) (host, port string) {
	t.Helper()
	u, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname(), cmp.Or(u.Port(), "5432")
}

// A statement that fails has its span's status Error, the exception event
// and the server's SQLSTATE; db.query.text only with WithQueryText.
func TestSpanErrorsAndQueryText(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     []telemetry.Option
		wantText bool
	}{
		{"default", nil, false},
		{"WithQueryText", []telemetry.Option{telemetry.WithQueryText(true)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTraceEnv(t, tc.opts)
			const q = "SELECT 1/0"
			ctx, parent := e.tracer.Start(tenantctx.WithTenant(context.Background(), e.tenants[1]), "caller")
			_, err := e.db.ExecContext(ctx, q)
			parent.End()
			if err == nil {
				t.Fatal("SELECT 1/0 did not fail")
			}
			var span sdktrace.ReadOnlySpan
			for _, s := range e.rec.Ended() {
				if s.Parent().SpanID() == parent.SpanContext().SpanID() && s.SpanKind() == trace.SpanKindClient && s.Status().Code == codes.Error {
					span = s
				}
			}
			if span == nil {
				t.Fatalf("no failed statement span under the caller's; spans: %v", names(e.rec.Ended()))
			}
			if got := str(span, "error.type"); got != "22012" {
				t.Errorf("error.type = %q, want 22012 (division_by_zero)", got)
			}
			if got := str(span, "db.response.status_code"); got != "22012" {
				t.Errorf("db.response.status_code = %q, want 22012", got)
			}
			if got := str(span, telemetry.TenantAttribute); got != e.tenants[1] {
				t.Errorf("tenant = %q, want %q", got, e.tenants[1])
			}
			var exception bool
			for _, ev := range span.Events() {
				exception = exception || ev.Name == "exception"
			}
			if !exception {
				t.Error("no exception event on the failed span")
			}
			text, ok := attrOf(span, "db.query.text")
			if ok != tc.wantText || ok && text.AsString() != q {
				t.Errorf("db.query.text = %q (set: %v), want set: %v", text.AsString(), ok, tc.wantText)
			}
		})
	}
}

func names(ss []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name())
	}
	return out
}

// A tenant's create hooks each get a span with the hook's name, kind,
// tenant and error; hooks.Migrate's migration a span under its hook's,
// with the versions the server's goose table records, and the migration's
// statements are spans under it, in the tenant's database.
func TestHookAndMigrationSpans(t *testing.T) {
	name := testenv.Unique("tsql_trace_hooks")
	testenv.RecreateDatabase(t, name)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	m, err := telemetry.New(telemetry.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	reg := hooks.New(nil)
	reg.SetObserver(m.HookObserver)
	s := store.NewMemory()
	c, err := driver.NewConnector(s, driver.WithHooks(reg), driver.WithQueryTracer(m.QueryTracer))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	fsys := fstest.MapFS{"00001_items.sql": {Data: []byte("-- +goose Up\nCREATE TABLE items (id int);\n-- +goose Down\nDROP TABLE items;\n")}}
	migrateHook, err := hooks.Migrate(db, fsys, migrate.WithObserver(m.MigrateObserver))
	if err != nil {
		t.Fatal(err)
	}
	reg.Subscribe(hooks.OnCreate, migrateHook)
	errRefused := errors.New("refused")
	reg.SubscribeNamed(hooks.PostCreate, "refuse", func(context.Context, hooks.Event) error { return errRefused })

	id := fmt.Sprintf("hooks%04x.test", rand.IntN(1<<16))
	if _, err := s.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: testenv.DatabaseURL(t, name)}}); err != nil {
		t.Fatal(err)
	}
	find := func(spanName string) sdktrace.ReadOnlySpan {
		for _, s := range rec.Ended() {
			if s.Name() == spanName {
				return s
			}
		}
		return nil
	}
	testenv.Eventually(t, 10*time.Second, "the post_tenant_create hook's span", func() bool { return find("hook post_tenant_create") != nil })

	onCreate, migrated, refused := find("hook on_tenant_create"), find("migrate up"), find("hook post_tenant_create")
	if onCreate == nil || migrated == nil {
		t.Fatalf("spans %v, want hook on_tenant_create and migrate up", names(rec.Ended()))
	}
	for _, tc := range []struct {
		span       sdktrace.ReadOnlySpan
		hook, kind string
		failed     bool
	}{
		{onCreate, "hooks.Migrate", "on_tenant_create", false},
		{refused, "refuse", "post_tenant_create", true},
	} {
		if got := str(tc.span, telemetry.TenantAttribute); got != id {
			t.Errorf("%s: tenant %q, want %q", tc.span.Name(), got, id)
		}
		if got := str(tc.span, telemetry.HookNameAttribute); got != tc.hook {
			t.Errorf("%s: hook %q, want %q", tc.span.Name(), got, tc.hook)
		}
		if got := str(tc.span, telemetry.HookKindAttribute); got != tc.kind {
			t.Errorf("%s: kind %q, want %q", tc.span.Name(), got, tc.kind)
		}
		if failed := tc.span.Status().Code == codes.Error; failed != tc.failed {
			t.Errorf("%s: status %v, want failed: %v", tc.span.Name(), tc.span.Status(), tc.failed)
		}
	}
	if migrated.Parent().SpanID() != onCreate.SpanContext().SpanID() {
		t.Errorf("migrate up's parent is %s, want the hooks.Migrate span %s", migrated.Parent().SpanID(), onCreate.SpanContext().SpanID())
	}
	if got := str(migrated, telemetry.TenantAttribute); got != id {
		t.Errorf("migrate up: tenant %q, want %q", got, id)
	}
	// What the server's goose table says the tenant now has, read past
	// the driver (the tenant is not ready: its post_tenant_create hook
	// failed).
	direct, err := sql.Open("pgx", testenv.DatabaseURL(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	var version int64
	if err := direct.QueryRow("SELECT max(version_id) FROM goose_db_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	after, _ := attrOf(migrated, telemetry.MigrateAfterAttribute)
	applied, _ := attrOf(migrated, telemetry.MigrateAppliedAttribute)
	if after.AsInt64() != version || fmt.Sprint(applied.AsInt64Slice()) != fmt.Sprint([]int64{version}) {
		t.Errorf("migrate up: after %v, applied %v; the server's goose table is at %d", after.String(), applied.String(), version)
	}
	var children int
	for _, s := range rec.Ended() {
		if s.Parent().SpanID() != migrated.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindClient {
			continue
		}
		children++
		if got := str(s, "db.namespace"); got != name {
			t.Errorf("statement %q of the migration: db.namespace %q, want %q", s.Name(), got, name)
		}
		if got := str(s, telemetry.TenantAttribute); got != id {
			t.Errorf("statement %q of the migration: tenant %q, want %q", s.Name(), got, id)
		}
	}
	if children == 0 {
		t.Error("no statement span under the migration's span")
	}
}

// A Metrics made for traces only has no instruments: Register says so,
// and how to get them.
func TestTracesOnlyHasNoMeter(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	m, err := telemetry.New(telemetry.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	c, err := driver.NewConnector(store.NewMemory(), driver.WithHooks(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Register(c); !errors.Is(err, telemetry.ErrNoMeter) || !strings.Contains(err.Error(), "WithMeterProvider") {
		t.Errorf("Register: %v, want ErrNoMeter naming WithMeterProvider", err)
	}
}
