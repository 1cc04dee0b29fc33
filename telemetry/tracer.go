package telemetry

import (
	"context"
	"errors"
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
	"go.opentelemetry.io/otel/metric"
)

// QueryTracer returns the pgx tracer that records the duration of every
// statement a pool's sessions run (db.client.operation.duration). Give it
// to the connector: driver.NewConnector(s, driver.WithQueryTracer(m.QueryTracer)).
// It is a pgx.QueryTracer so that traces (spans per query, as otelpgx
// makes them) can come through the same tracer later.
func (m *Metrics) QueryTracer(p driver.PoolInfo) pgx.QueryTracer {
	attrs := []attribute.KeyValue{systemPostgres, attrPoolName.String(p.Server)}
	if p.Database != "" {
		attrs = append(attrs, attrNamespace.String(p.Database))
	}
	// The server's first address (a URL may list fallback hosts): the
	// conventions' server.address and server.port.
	first, _, _ := strings.Cut(p.Server, ",")
	if host, port, err := net.SplitHostPort(first); err == nil {
		attrs = append(attrs, attrAddress.String(host))
		if n, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, attrPort.Int(n))
		}
	}
	return &queryTracer{m: m, base: attrs}
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
}

type setKey struct {
	tenant, op, code string
	failed           bool
}

type startKey struct{}

func (t *queryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, startKey{}, time.Now())
}

func (t *queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	start, ok := ctx.Value(startKey{}).(time.Time)
	if !ok {
		return
	}
	took := time.Since(start).Seconds()
	var k setKey
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
	} else {
		// The command tag's first word (SELECT, INSERT, CREATE, ...): a
		// small fixed set, unlike the SQL.
		k.op, _, _ = strings.Cut(data.CommandTag.String(), " ")
	}
	t.m.duration.Record(ctx, took, t.attrs(k))
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
