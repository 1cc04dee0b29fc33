package telemetry_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/store"
	"github.com/tenantsql/tenantsql/telemetry"
	"github.com/tenantsql/tenantsql/tenantctx"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The databases the tests' tenants use; each tenant's sessions carry its id
// as application_name, so the server can say which are whose.
var dbs = testenv.Names("tsql_otel", 2)

// env is a connector over a memory store, with its metrics read by a
// ManualReader.
type env struct {
	t       *testing.T
	store   *store.Memory
	conn    *driver.Connector
	db      *sql.DB
	admin   *sql.DB
	reader  *sdkmetric.ManualReader
	m       *telemetry.Metrics
	tenants []string // ids, also their application_name
}

// newEnv registers n tenants (tenant i on dbs[i%2]) and opens a *sql.DB
// whose connector has m's query tracer and is registered on m.
func newEnv(t *testing.T, n int, mopts []telemetry.Option, dopts ...driver.Option) *env {
	t.Helper()
	testenv.EnsureDatabases(t, dbs...)
	e := &env{t: t, store: store.NewMemory(), admin: testenv.Admin(t), reader: sdkmetric.NewManualReader()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	m, err := telemetry.New(append([]telemetry.Option{telemetry.WithMeterProvider(mp)}, mopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	tag := fmt.Sprintf("otel%04x", rand.IntN(1<<16))
	for i := range n {
		id := fmt.Sprintf("%s-%d.test", tag, i)
		url := testenv.DatabaseURL(t, dbs[i%len(dbs)], "application_name", id)
		if _, err := e.store.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: url}}); err != nil {
			t.Fatal(err)
		}
		e.tenants = append(e.tenants, id)
	}
	e.conn, err = driver.NewConnector(e.store, append([]driver.Option{driver.WithHooks(nil), driver.WithQueryTracer(m.QueryTracer), driver.WithPoolEvents(m.PoolEvent)}, dopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.db = sql.OpenDB(e.conn)
	e.db.SetMaxOpenConns(50)
	e.db.SetMaxIdleConns(50)
	t.Cleanup(func() { e.db.Close() })
	stop, err := m.Register(e.conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	return e
}

func (e *env) ctx(i int) context.Context {
	return tenantctx.WithTenant(context.Background(), e.tenants[i])
}

// collect reads every instrument.
func (e *env) collect() map[string]metricdata.Metrics {
	e.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := e.reader.Collect(context.Background(), &rm); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != telemetry.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// value is the sum of the data points of the named instrument whose
// attributes include want, and how many there were.
func value(t *testing.T, ms map[string]metricdata.Metrics, name string, want ...attribute.KeyValue) (float64, int) {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		t.Fatalf("no instrument %s collected", name)
	}
	var sum float64
	n := 0
	match := func(s attribute.Set) bool {
		for _, kv := range want {
			if v, ok := s.Value(kv.Key); !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				sum += float64(p.Value)
				n++
			}
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				sum += p.Value
				n++
			}
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				sum += float64(p.Count)
				n++
			}
		}
	default:
		t.Fatalf("%s: unexpected data %T", name, m.Data)
	}
	return sum, n
}

// sessions counts the server's sessions of tenant i, in a state if one is
// given.
func (e *env) sessions(i int, state string) int {
	e.t.Helper()
	var n int
	err := e.admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND ($2 = '' OR state = $2)`, e.tenants[i], state).Scan(&n)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) server() string {
	e.t.Helper()
	ts, ok := e.conn.TenantStats(e.tenants[0])
	if !ok || ts.Server == "" {
		e.t.Fatalf("tenant %s has no server", e.tenants[0])
	}
	return ts.Server
}

const deadline = time.Minute // only catches a hang

// TestPoolMetricsMatchServer holds a known load on a budget of 5 and
// compares the connection instruments with what pg_stat_activity shows:
// 3 sessions in a transaction for tenant 0, 2 idle for tenant 1, and 2
// callers of tenant 0 blocked, one of which then gives up.
func TestPoolMetricsMatchServer(t *testing.T) {
	// An eviction delay of an hour keeps the blocked callers queued
	// rather than closing tenant 1's idle sessions for them.
	e := newEnv(t, 2, nil, driver.WithMaxConns(5), driver.WithEvictionDelay(time.Hour))

	// Tenant 1: two sessions, then idle.
	var txs []*sql.Tx
	for range 2 {
		tx, err := e.db.BeginTx(e.ctx(1), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(e.ctx(1), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	for _, tx := range txs {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// Tenant 0: three sessions held in transactions.
	txs = nil
	for range 3 {
		tx, err := e.db.BeginTx(e.ctx(0), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(e.ctx(0), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	defer func() {
		for _, tx := range txs {
			tx.Rollback()
		}
	}()
	// Two more callers of tenant 0: the budget is full, they wait.
	ctxs := make([]context.Context, 2)
	cancels := make([]context.CancelFunc, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		ctxs[i], cancels[i] = context.WithTimeout(e.ctx(0), deadline)
		defer cancels[i]()
		wg.Go(func() {
			var one int
			errs[i] = e.db.QueryRowContext(ctxs[i], "SELECT 1").Scan(&one)
		})
	}
	pool := attribute.String("db.client.connection.pool.name", e.server())
	var ms map[string]metricdata.Metrics
	testenv.Eventually(t, deadline, "two pending requests", func() bool {
		ms = e.collect()
		v, _ := value(t, ms, "db.client.connection.pending_requests", pool)
		return v == 2
	})

	used, _ := value(t, ms, "db.client.connection.count", pool, attribute.String("db.client.connection.state", "used"))
	idle, _ := value(t, ms, "db.client.connection.count", pool, attribute.String("db.client.connection.state", "idle"))
	if want := e.sessions(0, "idle in transaction"); used != float64(want) || want != 3 {
		t.Errorf("used = %v, the server has %d sessions of tenant 0 in a transaction (want 3)", used, want)
	}
	if want := e.sessions(1, "idle"); idle != float64(want) || want != 2 {
		t.Errorf("idle = %v, the server has %d idle sessions of tenant 1 (want 2)", idle, want)
	}
	if all := e.sessions(0, "") + e.sessions(1, ""); used+idle != float64(all) {
		t.Errorf("used + idle = %v, the server has %d sessions of the two tenants", used+idle, all)
	}
	if v, _ := value(t, ms, "db.client.connection.max", pool); v != 5 {
		t.Errorf("max = %v, want the budget 5", v)
	}
	// No session was closed: every one dialled is still on the server.
	if v, _ := value(t, ms, "tenantsql.connection.created", pool); v != 5 {
		t.Errorf("created = %v, want the 5 sessions the server has", v)
	}
	if v, _ := value(t, ms, "db.client.connection.create_time", pool); v != 5 {
		t.Errorf("create_time has %v dials, want the 5 sessions the server has", v)
	}
	// A histogram with nothing recorded yet is not collected at all.
	if _, ok := ms["db.client.connection.wait_time"]; ok {
		t.Errorf("wait_time collected while both callers still wait: %+v", ms["db.client.connection.wait_time"].Data)
	}
	for name, want := range map[string]float64{"tenantsql.tenants.registered": 2, "tenantsql.tenants.pooled": 2, "tenantsql.tenants.not_ready": 0, "db.client.connection.timeouts": 0} {
		if v, _ := value(t, ms, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}

	// One caller gives up: a timeout, one request left pending.
	cancels[0]()
	testenv.Eventually(t, deadline, "a timeout", func() bool {
		ms = e.collect()
		v, _ := value(t, ms, "db.client.connection.timeouts", pool)
		return v == 1
	})
	if v, _ := value(t, ms, "db.client.connection.pending_requests", pool); v != 1 {
		t.Errorf("pending = %v after one caller gave up, want 1", v)
	}
	// A session back: the other caller runs.
	if err := txs[0].Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !errors.Is(errs[0], context.Canceled) || errs[1] != nil {
		t.Fatalf("callers: %v, %v; want context.Canceled, nil", errs[0], errs[1])
	}
	ms = e.collect()
	if v, _ := value(t, ms, "db.client.connection.pending_requests", pool); v != 0 {
		t.Errorf("pending = %v once served, want 0", v)
	}
	if v, _ := value(t, ms, "tenantsql.connection.waits", pool); v != 1 {
		t.Errorf("waits = %v, want 1 (the caller served after waiting)", v)
	}
	// The histogram times the served wait only; the one that gave up is
	// the timeout above.
	if v, _ := value(t, ms, "db.client.connection.wait_time", pool); v != 1 {
		t.Errorf("wait_time has %v waits, want 1 (the caller served after waiting)", v)
	}
}

// TestQueryDuration runs exactly K statements and finds K in the
// histogram, with the server and database as the server answered them,
// and no tenant attribute by default.
func TestQueryDuration(t *testing.T) {
	e := newEnv(t, 1, nil)
	const k = 7
	var db string
	for range k {
		if err := e.db.QueryRowContext(e.ctx(0), "SELECT current_database()").Scan(&db); err != nil {
			t.Fatal(err)
		}
	}
	ms := e.collect()
	n, points := value(t, ms, "db.client.operation.duration", attribute.String("db.namespace", db), attribute.String("db.operation.name", "SELECT"))
	if n != k || points != 1 {
		t.Errorf("statements recorded = %v in %d series, want %d in 1", n, points, k)
	}
	hist := ms["db.client.operation.duration"].Data.(metricdata.Histogram[float64])
	for _, p := range hist.DataPoints {
		if _, ok := p.Attributes.Value(telemetry.TenantAttribute); ok {
			t.Errorf("tenant attribute present without WithTenantAttribute: %v", p.Attributes)
		}
		if v, _ := p.Attributes.Value("server.address"); v.AsString() != testHost(t) {
			t.Errorf("server.address = %q, want the test server's %q", v.AsString(), testHost(t))
		}
	}
	if s := ms["db.client.operation.duration"].Unit; s != "s" {
		t.Errorf("unit %q, want s", s)
	}

	// A failing statement: its SQLSTATE as error.type.
	_, err := e.db.ExecContext(e.ctx(0), "SELEC 1")
	if err == nil {
		t.Fatal("a syntax error succeeded")
	}
	ms = e.collect()
	if n, _ := value(t, ms, "db.client.operation.duration", attribute.String("error.type", "42601")); n != 1 {
		t.Errorf("failed statements with error.type 42601 = %v, want 1", n)
	}
}

// TestTenantAttributeCap: with a cap of 2, the first two tenants keep
// their id and the third is recorded as _other.
func TestTenantAttributeCap(t *testing.T) {
	e := newEnv(t, 3, []telemetry.Option{telemetry.WithTenantAttribute(2)})
	for i := range 3 {
		for range i + 1 {
			if _, err := e.db.ExecContext(e.ctx(i), "SELECT 1"); err != nil {
				t.Fatal(err)
			}
		}
	}
	ms := e.collect()
	for want, n := range map[string]float64{e.tenants[0]: 1, e.tenants[1]: 2, telemetry.OtherTenants: 3} {
		if got, _ := value(t, ms, "db.client.operation.duration", telemetry.TenantAttribute.String(want)); got != n {
			t.Errorf("tenant %s: %v statements, want %v", want, got, n)
		}
	}
	if _, series := value(t, ms, "db.client.operation.duration"); series != 3 {
		t.Errorf("%d series, want 3 (two tenants and %s)", series, telemetry.OtherTenants)
	}
	// Each tenant's statements ran one after another on one session (the
	// server has one of each): one dial each, under the same cap.
	for i := range 3 {
		if n := e.sessions(i, ""); n != 1 {
			t.Errorf("tenant %d has %d sessions on the server, want 1", i, n)
		}
	}
	for _, want := range []string{e.tenants[0], e.tenants[1], telemetry.OtherTenants} {
		if got, _ := value(t, ms, "db.client.connection.create_time", telemetry.TenantAttribute.String(want)); got != 1 {
			t.Errorf("tenant %s: %v dials, want 1", want, got)
		}
	}
}

// failingHooks fails the create of the tenants whose id ends in -late.
type failingHooks struct{}

func (failingHooks) HandleChange(_ context.Context, c store.Change, p store.Phase) error {
	if c.Type == store.EventCreate && p == store.PhaseOn && strings.HasSuffix(c.Tenant.ID, "-late") {
		return errors.New("no database for you")
	}
	return nil
}

// TestNotReadyAndHookFailures: a tenant created while the connector runs,
// whose create hooks fail, is not ready, and its failure is counted.
func TestNotReadyAndHookFailures(t *testing.T) {
	e := newEnv(t, 1, nil, driver.WithHooks(failingHooks{}))
	id := e.tenants[0] + "-late"
	url := testenv.DatabaseURL(t, dbs[0], "application_name", id)
	if _, err := e.store.Create(context.Background(), store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: url}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tenantctx.WithTenant(context.Background(), id), deadline)
	defer cancel()
	if _, err := e.db.ExecContext(ctx, "SELECT 1"); !errors.Is(err, driver.ErrTenantNotReady) {
		t.Fatalf("query of a tenant whose hooks failed: %v, want ErrTenantNotReady", err)
	}
	ms := e.collect()
	for name, want := range map[string]float64{"tenantsql.tenants.registered": 2, "tenantsql.tenants.not_ready": 1, "tenantsql.hook.failures": 1} {
		if v, _ := value(t, ms, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	var n int
	if err := e.admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, id).Scan(&n); err != nil || n != 0 {
		t.Errorf("the not-ready tenant has %d sessions on the server (%v), want 0", n, err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	mp := sdkmetric.NewMeterProvider()
	for _, tc := range []struct {
		name string
		opts []telemetry.Option
		want string
	}{
		{"no provider", nil, "WithMeterProvider"},
		{"nil provider", []telemetry.Option{telemetry.WithMeterProvider(nil)}, "WithMeterProvider"},
		{"cap 0", []telemetry.Option{telemetry.WithMeterProvider(mp), telemetry.WithTenantAttribute(0)}, "WithTenantAttribute(0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := telemetry.New(tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if _, err := telemetry.New(); !errors.Is(err, telemetry.ErrNoProvider) {
		t.Errorf("New(): %v, want ErrNoProvider", err)
	}
	m, err := telemetry.New(telemetry.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Register(nil); err == nil || !strings.Contains(err.Error(), "driver.ConnectorOf") {
		t.Errorf("Register(nil): %v, want an error saying where a connector comes from", err)
	}
}

// countingTracer counts the statements it sees.
type countingTracer struct{ n atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) { c.n.Add(1) }

// TestBeforeConnectTracerKeepsMetrics: a tracer WithBeforeConnect sets
// runs besides the query tracer, which still records every statement.
func TestBeforeConnectTracerKeepsMetrics(t *testing.T) {
	own := &countingTracer{}
	e := newEnv(t, 1, nil, driver.WithBeforeConnect(func(_ context.Context, _ string, cc *pgx.ConnConfig) error {
		cc.Tracer = own
		return nil
	}))
	const k = 4
	for range k {
		if _, err := e.db.ExecContext(e.ctx(0), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := value(t, e.collect(), "db.client.operation.duration"); n != k {
		t.Errorf("histogram counted %v statements, want %d", n, k)
	}
	if n := own.n.Load(); n != k {
		t.Errorf("the BeforeConnect tracer saw %d statements, want %d", n, k)
	}
}

// testHost is the host of the test server's URL.
func testHost(t *testing.T) string {
	u, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname()
}

// TestBorrowerCountedOnce: a connector that draws on another's budgets
// (driver.WithBudgetsOf), registered on the same Metrics, adds its
// sessions to the server's figures once: used sessions are what the
// server shows, the budget is the owner's, not twice it.
func TestBorrowerCountedOnce(t *testing.T) {
	e := newEnv(t, 1, nil, driver.WithMaxConns(4))
	borrower, err := driver.NewConnector(e.store, driver.WithHooks(nil), driver.WithBudgetsOf(e.conn), driver.WithQueryTracer(e.m.QueryTracer))
	if err != nil {
		t.Fatal(err)
	}
	bdb := sql.OpenDB(borrower)
	defer bdb.Close()
	stop, err := e.m.Register(borrower)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, db := range []*sql.DB{e.db, bdb} {
		tx, err := db.BeginTx(e.ctx(0), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(e.ctx(0), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	ms := e.collect()
	pool := attribute.String("db.client.connection.pool.name", e.server())
	if used, _ := value(t, ms, "db.client.connection.count", pool, attribute.String("db.client.connection.state", "used")); int(used) != e.sessions(0, "idle in transaction") || used != 2 {
		t.Errorf("used sessions = %v, the server shows %d in a transaction (want 2)", used, e.sessions(0, "idle in transaction"))
	}
	if max, _ := value(t, ms, "db.client.connection.max", pool); max != 4 {
		t.Errorf("budget = %v, want the owner's 4, counted once", max)
	}
}
