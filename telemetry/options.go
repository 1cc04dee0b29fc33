package telemetry

import (
	"fmt"

	"go.opentelemetry.io/otel/metric"
)

// An Option configures New.
type Option func(*config)

type config struct {
	provider   metric.MeterProvider
	maxTenants int  // 0: no tenant attribute
	tenantSet  bool // WithTenantAttribute was given, so 0 is a mistake, not the default
}

// WithMeterProvider sets the MeterProvider the instruments are created
// with. It is required: the package never falls back on the global
// provider, which an application may not mean to feed; pass
// otel.GetMeterProvider() to use it.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.provider = mp }
}

// WithTenantAttribute adds the tenant (TenantAttribute) to the
// histograms (statements, waits, dials), for at most maxTenants distinct
// tenants: the first maxTenants tenants a process sees keep their own
// value, those of any other are recorded under OtherTenants. The pool
// counts stay per server (driver.Connector.TenantStats has them per
// tenant). Without it the tenant is no
// attribute at all, since every distinct value is a time series of its
// own in the backend, and a process may serve tens of thousands of
// tenants.
func WithTenantAttribute(maxTenants int) Option {
	return func(c *config) { c.maxTenants, c.tenantSet = maxTenants, true }
}

func (c *config) validate() error {
	if c.provider == nil {
		return fmt.Errorf("telemetry: %w", ErrNoMeterProvider)
	}
	if c.tenantSet && c.maxTenants < 1 {
		return fmt.Errorf("telemetry: WithTenantAttribute(%d): the cap must be at least 1 (leave the option out to keep the tenant out of the attributes)", c.maxTenants)
	}
	return nil
}
