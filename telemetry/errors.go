package telemetry

import "errors"

// ErrNoProvider is returned by New with neither WithMeterProvider nor
// WithTracerProvider (or with nil providers).
var ErrNoProvider = errors.New("no MeterProvider or TracerProvider: pass WithMeterProvider(mp) for metrics, WithTracerProvider(tp) for traces, or otel.GetMeterProvider() and otel.GetTracerProvider() for the global ones")

// ErrNoMeter is returned by Register on a Metrics made without
// WithMeterProvider: there are no instruments to report the pools on.
var ErrNoMeter = errors.New("this Metrics has no MeterProvider (New was given only WithTracerProvider): pass WithMeterProvider(mp) to New to report pools and tenants")
