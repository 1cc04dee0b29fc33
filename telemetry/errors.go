package telemetry

import "errors"

// ErrNoMeterProvider is returned by New without WithMeterProvider (or
// with a nil provider).
var ErrNoMeterProvider = errors.New("no MeterProvider: pass WithMeterProvider(mp), or WithMeterProvider(otel.GetMeterProvider()) for the global one")
