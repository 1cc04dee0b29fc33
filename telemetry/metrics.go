package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tenantsql/tenantsql/driver"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the instruments and spans
// (the meter's and tracer's name).
const ScopeName = "github.com/tenantsql/tenantsql/telemetry"

// Attribute keys beyond OpenTelemetry's database conventions.
const (
	// TenantAttribute carries the tenant id on the query instruments,
	// with WithTenantAttribute only, and on every span.
	TenantAttribute = attribute.Key("tenantsql.tenant")
	// OtherTenants is its value for the tenants beyond the cap.
	OtherTenants = "_other"
	// URLKeyAttribute names, on the tenant instruments, the deploy_info
	// key of the connector (driver.WithURLKey; POSTGRES_URL by default).
	URLKeyAttribute = attribute.Key("tenantsql.url_key")
)

// The conventions' attributes.
const (
	attrSystem    = attribute.Key("db.system.name")
	attrPoolName  = attribute.Key("db.client.connection.pool.name")
	attrState     = attribute.Key("db.client.connection.state")
	attrNamespace = attribute.Key("db.namespace")
	attrAddress   = attribute.Key("server.address")
	attrPort      = attribute.Key("server.port")
	attrOperation = attribute.Key("db.operation.name")
	attrStatus    = attribute.Key("db.response.status_code")
	attrErrorType = attribute.Key("error.type")
	attrQueryText = attribute.Key("db.query.text")
)

var systemPostgres = attrSystem.String("postgresql")

// Metrics holds the instruments and the tracer: it makes the metrics,
// the spans or both, as New was given a MeterProvider, a TracerProvider or
// both. One Metrics serves any number of connectors: Register each, and
// give each WithQueryTracer(m.QueryTracer).
type Metrics struct {
	meter      metric.Meter // nil without WithMeterProvider
	tracer     trace.Tracer // nil without WithTracerProvider
	queryText  bool
	maxTenants int

	duration   metric.Float64Histogram
	waitHist   metric.Float64Histogram // with driver.WithPoolEvents
	createHist metric.Float64Histogram
	eventSets  sync.Map // eventKey -> metric.MeasurementOption

	// pool and process instruments, observed by Register's callbacks
	connCount    metric.Int64ObservableUpDownCounter
	connMax      metric.Int64ObservableUpDownCounter
	pending      metric.Int64ObservableUpDownCounter
	timeouts     metric.Int64ObservableCounter
	waits        metric.Int64ObservableCounter
	waitTime     metric.Float64ObservableCounter
	created      metric.Int64ObservableCounter
	createErrors metric.Int64ObservableCounter
	evictions    metric.Int64ObservableCounter
	checkouts    metric.Int64ObservableCounter
	pools        metric.Int64ObservableUpDownCounter
	registered   metric.Int64ObservableUpDownCounter
	pooled       metric.Int64ObservableUpDownCounter
	notReady     metric.Int64ObservableUpDownCounter
	hookFailures metric.Int64ObservableCounter

	tenantsMu sync.RWMutex
	tenants   map[string]bool // admitted under WithTenantAttribute's cap
}

// durationBuckets are the histogram boundaries OpenTelemetry's database
// conventions advise for db.client.operation.duration, in seconds.
var durationBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}

// New creates the instruments on the provider WithMeterProvider gives,
// and the tracer on the one WithTracerProvider gives; it needs at least
// one of them. Nothing is measured until a connector is registered
// (Register) or given the query tracer
// (driver.WithQueryTracer(m.QueryTracer)).
func New(opts ...Option) (*Metrics, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Metrics{maxTenants: cfg.maxTenants, queryText: cfg.queryText, tenants: map[string]bool{}}
	if cfg.tracers != nil {
		m.tracer = cfg.tracers.Tracer(ScopeName)
	}
	if cfg.provider == nil {
		return m, nil
	}
	m.meter = cfg.provider.Meter(ScopeName)
	mt := m.meter
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	m.duration, err = mt.Float64Histogram("db.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of the statements sent to the tenants' databases; its count is the number of statements."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	m.waitHist, err = mt.Float64Histogram("db.client.connection.wait_time", metric.WithUnit("s"),
		metric.WithDescription("Time a checkout waited in the queue for a session, for each checkout that waited and was served (driver.WithPoolEvents)."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	m.createHist, err = mt.Float64Histogram("db.client.connection.create_time", metric.WithUnit("s"),
		metric.WithDescription("Time each successful dial of a session took (driver.WithPoolEvents)."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	m.connCount, err = mt.Int64ObservableUpDownCounter("db.client.connection.count", metric.WithUnit("{connection}"),
		metric.WithDescription("Sessions open to the server, by state: used (checked out, being dialled or being closed) or idle."))
	check(err)
	m.connMax, err = mt.Int64ObservableUpDownCounter("db.client.connection.max", metric.WithUnit("{connection}"),
		metric.WithDescription("The server's connection budget: the most sessions the process keeps open to it."))
	check(err)
	m.pending, err = mt.Int64ObservableUpDownCounter("db.client.connection.pending_requests", metric.WithUnit("{request}"),
		metric.WithDescription("Checkouts waiting for a session of the server."))
	check(err)
	m.timeouts, err = mt.Int64ObservableCounter("db.client.connection.timeouts", metric.WithUnit("{timeout}"),
		metric.WithDescription("Checkouts whose context ended while they waited for a session."))
	check(err)
	m.waits, err = mt.Int64ObservableCounter("tenantsql.connection.waits", metric.WithUnit("{wait}"),
		metric.WithDescription("Checkouts that had to wait for a session."))
	check(err)
	m.waitTime, err = mt.Float64ObservableCounter("tenantsql.connection.wait_time", metric.WithUnit("s"),
		metric.WithDescription("Total time checkouts spent waiting for a session."))
	check(err)
	m.created, err = mt.Int64ObservableCounter("tenantsql.connection.created", metric.WithUnit("{connection}"),
		metric.WithDescription("Sessions dialled."))
	check(err)
	m.createErrors, err = mt.Int64ObservableCounter("tenantsql.connection.create_errors", metric.WithUnit("{error}"),
		metric.WithDescription("Dials that failed."))
	check(err)
	m.evictions, err = mt.Int64ObservableCounter("tenantsql.connection.evictions", metric.WithUnit("{connection}"),
		metric.WithDescription("Idle sessions closed to make room for another tenant's."))
	check(err)
	m.checkouts, err = mt.Int64ObservableCounter("tenantsql.connection.checkouts", metric.WithUnit("{checkout}"),
		metric.WithDescription("Checkouts served."))
	check(err)
	m.pools, err = mt.Int64ObservableUpDownCounter("tenantsql.connection.pools", metric.WithUnit("{pool}"),
		metric.WithDescription("Pools of the server: tenants (or groups of tenants sharing a database) that used it within the idle timeout."))
	check(err)
	m.registered, err = mt.Int64ObservableUpDownCounter("tenantsql.tenants.registered", metric.WithUnit("{tenant}"),
		metric.WithDescription("Tenants the process knows."))
	check(err)
	m.pooled, err = mt.Int64ObservableUpDownCounter("tenantsql.tenants.pooled", metric.WithUnit("{pool}"),
		metric.WithDescription("Pools over all servers."))
	check(err)
	m.notReady, err = mt.Int64ObservableUpDownCounter("tenantsql.tenants.not_ready", metric.WithUnit("{tenant}"),
		metric.WithDescription("Tenants whose create (or move) hooks are running or failed in this process: their queries wait or fail."))
	check(err)
	m.hookFailures, err = mt.Int64ObservableCounter("tenantsql.hook.failures", metric.WithUnit("{failure}"),
		metric.WithDescription("Runs of a tenant change's lifecycle hooks that failed or panicked."))
	check(err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("telemetry: create instruments: %w", err)
	}
	return m, nil
}

// Register reports c's pools and tenants through m's instruments, at each
// collection, from c.Stats(). Call the function it returns to stop.
//
// Several connectors may be registered on one Metrics (or on Metrics of
// one MeterProvider, which share instruments): their figures add up. A
// connector that draws on another's budgets (driver.WithBudgetsOf)
// reports no server figures, which are its owner's, so a server's
// sessions and budget are counted once; the tenant figures carry the
// connector's deploy_info key (tenantsql.url_key), so a tenant of the
// POSTGRES_URL and the ANALYTICS_URL *sql.DB is counted once under each.
func (m *Metrics) Register(c *driver.Connector) (stop func() error, err error) {
	if c == nil {
		return nil, errors.New("telemetry: Register: nil *driver.Connector (driver.ConnectorOf(db) gives the one of a *sql.DB)")
	}
	if m.meter == nil {
		return nil, fmt.Errorf("telemetry: Register: %w", ErrNoMeter)
	}
	reg, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		m.observe(c.Stats(), c.URLKey(), o)
		return nil
	}, m.connCount, m.connMax, m.pending, m.timeouts, m.waits, m.waitTime, m.created, m.createErrors,
		m.evictions, m.checkouts, m.pools, m.registered, m.pooled, m.notReady, m.hookFailures)
	if err != nil {
		return nil, fmt.Errorf("telemetry: register callback: %w", err)
	}
	return reg.Unregister, nil
}

// RegisterMetrics is New and Register in one, for a connector without
// the query tracer (one opened with sql.Open): the pool and tenant
// instruments, without the queries' durations.
func RegisterMetrics(c *driver.Connector, opts ...Option) (stop func() error, err error) {
	m, err := New(opts...)
	if err != nil {
		return nil, err
	}
	return m.Register(c)
}

func (m *Metrics) observe(s driver.Stats, urlKey string, o metric.Observer) {
	pooled := 0
	for server, ss := range s.Servers {
		pooled += ss.Pools
		if s.BorrowedBudgets {
			continue // the owner's figures, which the owner reports
		}
		pool := attrPoolName.String(server)
		all := metric.WithAttributeSet(attribute.NewSet(systemPostgres, pool))
		o.ObserveInt64(m.connCount, int64(ss.InUse), metric.WithAttributeSet(attribute.NewSet(systemPostgres, pool, attrState.String("used"))))
		o.ObserveInt64(m.connCount, int64(ss.Idle), metric.WithAttributeSet(attribute.NewSet(systemPostgres, pool, attrState.String("idle"))))
		o.ObserveInt64(m.connMax, int64(ss.Budget), all)
		o.ObserveInt64(m.pending, int64(ss.Waiting), all)
		o.ObserveInt64(m.timeouts, ss.Timeouts, all)
		o.ObserveInt64(m.waits, ss.Waits, all)
		o.ObserveFloat64(m.waitTime, ss.WaitDuration.Seconds(), all)
		o.ObserveInt64(m.created, ss.NewConns, all)
		o.ObserveInt64(m.createErrors, ss.ConnectErrors, all)
		o.ObserveInt64(m.evictions, ss.Evictions, all)
		o.ObserveInt64(m.checkouts, ss.Acquires, all)
		o.ObserveInt64(m.pools, int64(ss.Pools), all)
	}
	key := metric.WithAttributeSet(attribute.NewSet(URLKeyAttribute.String(urlKey)))
	o.ObserveInt64(m.registered, int64(s.Registered), key)
	o.ObserveInt64(m.pooled, int64(pooled), key)
	o.ObserveInt64(m.notReady, int64(s.NotReady), key)
	o.ObserveInt64(m.hookFailures, s.HookFailures, key)
}

// tenantValue is the tenant attribute's value for id: id itself while
// the cap has room or id is in, OtherTenants beyond it.
func (m *Metrics) tenantValue(id string) string {
	if id == "" {
		return "" // a statement without a tenant takes no place under the cap
	}
	m.tenantsMu.RLock()
	in, full := m.tenants[id], len(m.tenants) >= m.maxTenants
	m.tenantsMu.RUnlock()
	if in {
		return id
	}
	if full {
		return OtherTenants
	}
	m.tenantsMu.Lock()
	defer m.tenantsMu.Unlock()
	if m.tenants[id] || len(m.tenants) < m.maxTenants {
		m.tenants[id] = true
		return id
	}
	return OtherTenants
}

// PoolEvent records a wait or a dial in the db.client.connection.wait_time
// and create_time histograms. Give it to the connector:
// driver.WithPoolEvents(m.PoolEvent). Waits that ended in a timeout and
// failed dials are counted by Register (db.client.connection.timeouts,
// tenantsql.connection.create_errors), not timed.
func (m *Metrics) PoolEvent(ev driver.PoolEvent) {
	if ev.Err != nil || m.meter == nil {
		return
	}
	var h metric.Float64Histogram
	switch ev.Kind {
	case driver.PoolWait:
		h = m.waitHist
	case driver.PoolDial:
		h = m.createHist
	default:
		return
	}
	k := eventKey{server: ev.Server}
	if m.maxTenants > 0 {
		k.tenant = m.tenantValue(ev.Tenant)
	}
	h.Record(context.Background(), ev.Duration.Seconds(), m.eventAttrs(k))
}

type eventKey struct{ server, tenant string }

func (m *Metrics) eventAttrs(k eventKey) metric.MeasurementOption {
	if o, ok := m.eventSets.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	kv := []attribute.KeyValue{systemPostgres, attrPoolName.String(k.server)}
	if m.maxTenants > 0 {
		kv = append(kv, TenantAttribute.String(k.tenant))
	}
	o, _ := m.eventSets.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(kv...)))
	return o.(metric.MeasurementOption)
}
