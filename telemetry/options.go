package telemetry

import (
	"fmt"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// An Option configures New.
type Option func(*config)

type config struct {
	provider   metric.MeterProvider
	tracers    trace.TracerProvider
	queryText  bool
	maxTenants int  // 0: no tenant attribute
	tenantSet  bool // WithTenantAttribute was given, so 0 is a mistake, not the default
}

// WithMeterProvider sets the MeterProvider the instruments are created
// with. The package never falls back on the global provider, which an
// application may not mean to feed; pass otel.GetMeterProvider() to use
// it. Without it (and with WithTracerProvider) New makes no instruments:
// the query tracer makes spans only.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.provider = mp }
}

// WithTracerProvider sets the TracerProvider the spans are made with: a
// span per statement, dial and prepare of the connector given
// QueryTracer, and, through HookObserver and MigrateObserver, per hook
// run and per tenant's migration. As with WithMeterProvider, nothing
// global is used unless given (otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracers = tp }
}

// WithQueryText puts each statement's SQL on its span (db.query.text). It
// is off by default: a statement built with literals instead of
// parameters carries its values (a name, an e-mail address, a token) and
// the spans would ship them to the tracing backend. The conventions ask
// for the text to be sanitized; the package does not parse SQL to do so,
// so it leaves the choice to the application, which knows whether its
// statements are parameterized.
func WithQueryText(on bool) Option {
	return func(c *config) { c.queryText = on }
}

// WithTenantAttribute adds the tenant (TenantAttribute) to the
// histograms (statements, waits, dials), for at most maxTenants distinct
// tenants: the first maxTenants tenants a process sees keep their own
// value, those of any other are recorded under OtherTenants. The pool
// counts stay per server (driver.Connector.TenantStats has them per
// tenant). A tenant keeps its place for the life of the Metrics, even
// once deleted: its series may still be read, and a place that moved to
// another tenant would mix the two. Without it the tenant is no attribute
// at all, since every distinct value is a time series of its own in the
// backend, and a process may serve tens of thousands of tenants. Spans always carry the tenant: a span is one event, not a
// series, so its attributes cost no cardinality.
func WithTenantAttribute(maxTenants int) Option {
	return func(c *config) { c.maxTenants, c.tenantSet = maxTenants, true }
}

func (c *config) validate() error {
	if c.provider == nil && c.tracers == nil {
		return fmt.Errorf("telemetry: %w", ErrNoProvider)
	}
	if c.tenantSet && c.maxTenants < 1 {
		return fmt.Errorf("telemetry: WithTenantAttribute(%d): the cap must be at least 1 (leave the option out to keep the tenant out of the attributes)", c.maxTenants)
	}
	return nil
}
