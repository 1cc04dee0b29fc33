package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tenantsql/tenantsql/telemetry"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// The exporters live here, in the example, and not in package telemetry:
// a program that uses the library chooses its own (or none), and does not
// compile Prometheus' or OTLP's client for ours.

// otlpEndpointVars are the standard variables that name where OTLP
// metrics go. The exporter would fall back on localhost:4318 without
// them; the example exports only when one is set, so that a program run
// without them opens no connection and starts no goroutine for OTLP.
var otlpEndpointVars = []string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"}

// otlpProtocolVars choose the OTLP protocol; the example speaks
// http/protobuf only.
var otlpProtocolVars = []string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"}

// observability is the example's metrics: the MeterProvider the
// connector's instruments report to, the Prometheus text at /metrics,
// and OTLP when its variables are set.
type observability struct {
	metrics  *telemetry.Metrics
	provider *sdkmetric.MeterProvider
	handler  http.Handler // GET /metrics
}

// newObservability sets up the exporters; getenv reads the environment
// (os.Getenv), the OTEL_* variables the choice of OTLP depends on.
func newObservability(ctx context.Context, getenv func(string) string, log *slog.Logger) (*observability, error) {
	// A registry of our own, not prometheus.DefaultRegisterer: /metrics
	// shows the connector's instruments and nothing a library registered
	// globally behind the program's back.
	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	opts := []sdkmetric.Option{sdkmetric.WithReader(prom)}

	o := &observability{}
	if endpoint := otlpEndpoint(getenv); endpoint != "" {
		if err := checkOTLPProtocol(getenv); err != nil {
			return nil, err
		}
		// The exporter reads the OTEL_EXPORTER_OTLP_* variables itself
		// (endpoint, headers, TLS, timeout, compression), and the
		// periodic reader OTEL_METRIC_EXPORT_INTERVAL (60s by default).
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP metrics exporter (%s): %w", endpoint, err)
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
		log.Info("hospital: exporting metrics over OTLP (http/protobuf)", "endpoint", endpoint)
	}
	o.provider = sdkmetric.NewMeterProvider(opts...)
	o.metrics, err = telemetry.New(telemetry.WithMeterProvider(o.provider))
	if err != nil {
		o.provider.Shutdown(ctx)
		return nil, err
	}
	o.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
	return o, nil
}

// otlpEndpoint returns the variable that sets the OTLP endpoint, with
// its value (a password in it masked, since this is logged), or "" when
// none does.
func otlpEndpoint(getenv func(string) string) string {
	for _, v := range otlpEndpointVars {
		val := getenv(v)
		if val == "" {
			continue
		}
		if u, err := url.Parse(val); err == nil {
			val = u.Redacted()
		}
		return v + "=" + val
	}
	return ""
}

// errOTLPProtocol reports an OTLP protocol the example does not speak.
var errOTLPProtocol = errors.New("the example exports OTLP metrics over http/protobuf only")

func checkOTLPProtocol(getenv func(string) string) error {
	for _, v := range otlpProtocolVars {
		switch p := getenv(v); p {
		case "":
			continue
		case "http/protobuf":
			return nil
		default:
			return fmt.Errorf("%s=%q: %w: set it to http/protobuf (or unset it) and point the endpoint at the collector's HTTP port, 4318 by default", v, p, errOTLPProtocol)
		}
	}
	return nil
}

// shutdown flushes the OTLP exporter, if any, one last time and stops it.
func (o *observability) shutdown(ctx context.Context) error {
	return o.provider.Shutdown(ctx)
}
