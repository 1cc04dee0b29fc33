package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/tenantctx"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// QueryTracer returns the pgx tracer of one pool. Give it to the
// connector: driver.NewConnector(s, driver.WithQueryTracer(m.QueryTracer)).
// With a MeterProvider it records the duration of every statement the
// pool's sessions run (db.client.operation.duration); with a
// TracerProvider it makes a span per statement, per dial (pgx's
// ConnectTracer) and per prepare (PrepareTracer), as otelpgx does. With
// both it does both, in one tracer, so that one option of the connector
// carries all of it.
func (m *Metrics) QueryTracer(p driver.PoolInfo) pgx.QueryTracer {
	attrs := []attribute.KeyValue{systemPostgres, attrPoolName.String(p.Server)}
	spanAttrs := []attribute.KeyValue{systemPostgres}
	if p.Database != "" {
		attrs = append(attrs, attrNamespace.String(p.Database))
		spanAttrs = append(spanAttrs, attrNamespace.String(p.Database))
	}
	// The server's first address (a URL may list fallback hosts): the
	// conventions' server.address and server.port.
	first, _, _ := strings.Cut(p.Server, ",")
	if host, port, err := net.SplitHostPort(first); err == nil {
		attrs = append(attrs, attrAddress.String(host))
		spanAttrs = append(spanAttrs, attrAddress.String(host))
		if n, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, attrPort.Int(n))
			spanAttrs = append(spanAttrs, attrPort.Int(n))
		}
	}
	// The conventions' span name is "{operation} {target}", the target
	// here the database; without a database, the system's name.
	target := p.Database
	if target == "" {
		target = "postgresql"
	}
	return &queryTracer{m: m, base: attrs, spanBase: spanAttrs, target: target, poolTenant: p.Tenant}
}

// queryTracer is one pool's tracer.
type queryTracer struct {
	m    *Metrics
	base []attribute.KeyValue
	// sets caches the attribute set of each combination seen, so that a
	// query costs a map lookup, not a set built anew. The combinations
	// are bounded: command names, SQLSTATE codes, and tenants under
	// WithTenantAttribute's cap.
	sets sync.Map // setKey -> metric.MeasurementOption

	spanBase   []attribute.KeyValue // the spans' attributes the pool's statements share
	target     string               // the spans' target: the database
	poolTenant string               // the pool's tenant, "" for a shared pool
}

type setKey struct {
	tenant, op, code string
	failed           bool
}

type startKey struct{}

// The tracer's other interfaces: a span per dial and per prepare.
var (
	_ pgx.ConnectTracer = (*queryTracer)(nil)
	_ pgx.PrepareTracer = (*queryTracer)(nil)
)

func (t *queryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if t.m.tracer != nil {
		ctx = t.startSpan(ctx, t.target, data.SQL)
	}
	if t.m.meter == nil {
		return ctx
	}
	return context.WithValue(ctx, startKey{}, time.Now())
}

func (t *queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	// The command tag's first word (SELECT, INSERT, CREATE, ...): what
	// the server says it ran, a small fixed set, unlike the SQL.
	var op string
	if data.Err == nil {
		op, _, _ = strings.Cut(data.CommandTag.String(), " ")
	}
	if t.m.tracer != nil {
		// Only a span this tracer started: without a TracerProvider the
		// context's span is the caller's, which is not the tracer's to end.
		span := trace.SpanFromContext(ctx)
		if op != "" {
			span.SetName(op + " " + t.target)
			span.SetAttributes(attrOperation.String(op))
		}
		endSpan(span, data.Err)
	}
	if t.m.meter == nil {
		return
	}
	start, ok := ctx.Value(startKey{}).(time.Time)
	if !ok {
		return
	}
	took := time.Since(start).Seconds()
	k := setKey{op: op}
	if t.m.maxTenants > 0 {
		id, _ := tenantctx.TenantFrom(ctx)
		k.tenant = t.m.tenantValue(id)
	}
	if data.Err != nil {
		k.failed = true
		var pe *pgconn.PgError
		if errors.As(data.Err, &pe) {
			k.code = pe.Code
		}
	}
	t.m.duration.Record(ctx, took, t.attrs(k))
}

// TraceConnectStart starts the span of a dial of one of the pool's
// sessions: under the checkout that needed it, when it has a span.
func (t *queryTracer) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	if t.m.tracer == nil {
		return ctx
	}
	return t.startSpan(ctx, "connect "+t.target, "")
}

func (t *queryTracer) TraceConnectEnd(ctx context.Context, data pgx.TraceConnectEndData) {
	if t.m.tracer != nil {
		endSpan(trace.SpanFromContext(ctx), data.Err)
	}
}

// TracePrepareStart starts the span of a statement's preparation
// (sql.DB.PrepareContext).
func (t *queryTracer) TracePrepareStart(ctx context.Context, _ *pgx.Conn, data pgx.TracePrepareStartData) context.Context {
	if t.m.tracer == nil {
		return ctx
	}
	return t.startSpan(ctx, "prepare "+t.target, data.SQL)
}

func (t *queryTracer) TracePrepareEnd(ctx context.Context, _ *pgx.Conn, data pgx.TracePrepareEndData) {
	if t.m.tracer != nil {
		endSpan(trace.SpanFromContext(ctx), data.Err)
	}
}

// startSpan starts a client span under ctx's span with the pool's
// attributes and the tenant: the context's (tenantctx), or the pool's.
func (t *queryTracer) startSpan(ctx context.Context, name, sql string) context.Context {
	id, ok := tenantctx.TenantFrom(ctx)
	if !ok || id == "" {
		id = t.poolTenant
	}
	attrs := make([]attribute.KeyValue, 0, len(t.spanBase)+2)
	attrs = append(attrs, t.spanBase...)
	if id != "" {
		attrs = append(attrs, TenantAttribute.String(id))
	}
	if t.m.queryText && sql != "" {
		attrs = append(attrs, attrQueryText.String(sql))
	}
	ctx, _ = t.m.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

// endSpan ends span, with err recorded on it: the exception event, the
// error status, and error.type (the SQLSTATE code for an error of the
// server, also in db.response.status_code, or the error's Go type).
func endSpan(span trace.Span, err error) {
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			span.SetAttributes(attrStatus.String(pe.Code), attrErrorType.String(pe.Code))
		} else {
			span.SetAttributes(attrErrorType.String(errorType(err)))
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// errorType is error.type for an error that is not the server's: the
// end of the context, or the error's Go type.
func errorType(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "context.Canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	}
	return fmt.Sprintf("%T", err)
}

func (t *queryTracer) attrs(k setKey) metric.MeasurementOption {
	if o, ok := t.sets.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	kv := append([]attribute.KeyValue(nil), t.base...)
	if t.m.maxTenants > 0 {
		kv = append(kv, TenantAttribute.String(k.tenant))
	}
	if k.op != "" {
		kv = append(kv, attrOperation.String(k.op))
	}
	if k.failed {
		typ := "_OTHER"
		if k.code != "" {
			typ = k.code
			kv = append(kv, attrStatus.String(k.code))
		}
		kv = append(kv, attrErrorType.String(typ))
	}
	o, _ := t.sets.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(kv...)))
	return o.(metric.MeasurementOption)
}
