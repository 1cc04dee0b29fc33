package telemetry

import (
	"context"

	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/migrate"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys of the hook and migration spans.
const (
	HookNameAttribute       = attribute.Key("tenantsql.hook.name")
	HookKindAttribute       = attribute.Key("tenantsql.hook.kind")
	StoreVersionAttribute   = attribute.Key("tenantsql.store.version")
	MigrateOpAttribute      = attribute.Key("tenantsql.migrate.operation")
	MigrateTargetAttribute  = attribute.Key("tenantsql.migrate.target")
	MigrateBeforeAttribute  = attribute.Key("tenantsql.migrate.version.before")
	MigrateAfterAttribute   = attribute.Key("tenantsql.migrate.version.after")
	MigrateAppliedAttribute = attribute.Key("tenantsql.migrate.applied")
	MigratePendingAttribute = attribute.Key("tenantsql.migrate.pending")
)

// HookObserver makes a span of each hook run, named "hook" and the kind
// ("hook on_tenant_create"), under the change's context, with the hook's
// name, its kind, the tenant and the store version, and its error. Give
// it to the registry that runs the hooks:
// hooks.Default().SetObserver(m.HookObserver). The hook's statements are
// its children. Without a TracerProvider it makes none.
func (m *Metrics) HookObserver(ctx context.Context, run hooks.HookRun) (context.Context, func(error)) {
	if m.tracer == nil {
		return ctx, noErr
	}
	ctx, span := m.tracer.Start(ctx, "hook "+run.Kind.String(), trace.WithAttributes(
		TenantAttribute.String(run.Tenant),
		HookNameAttribute.String(run.Hook),
		HookKindAttribute.String(run.Kind.String()),
		StoreVersionAttribute.Int64(run.Version),
	))
	return ctx, func(err error) { endSpan(span, err) }
}

func noErr(error) {}

// MigrateObserver makes a span of each tenant's migration, named
// "migrate" and the operation ("migrate up"), under the run's context,
// with the tenant, the operation, its target version (UpTo, DownTo), the
// versions before and after, those applied (or rolled back) and those
// left pending, and the error. Give it to the Migrator:
// migrate.New(db, s, fsys, migrate.WithObserver(m.MigrateObserver)). The
// migration's statements are its children. Without a TracerProvider it
// makes none.
func (m *Metrics) MigrateObserver(ctx context.Context, tenant string, op migrate.Op, version int64) (context.Context, func(migrate.TenantResult)) {
	if m.tracer == nil {
		return ctx, noResult
	}
	attrs := []attribute.KeyValue{TenantAttribute.String(tenant), MigrateOpAttribute.String(op.String())}
	if op == migrate.UpTo || op == migrate.DownTo {
		attrs = append(attrs, MigrateTargetAttribute.Int64(version))
	}
	ctx, span := m.tracer.Start(ctx, "migrate "+op.String(), trace.WithAttributes(attrs...))
	return ctx, func(res migrate.TenantResult) {
		applied := make([]int64, len(res.Applied))
		for i, a := range res.Applied {
			applied[i] = a.Version
		}
		span.SetAttributes(
			MigrateBeforeAttribute.Int64(res.Before),
			MigrateAfterAttribute.Int64(res.After),
			MigrateAppliedAttribute.Int64Slice(applied),
			MigratePendingAttribute.Int64Slice(res.Pending),
		)
		endSpan(span, res.Err)
	}
}

func noResult(migrate.TenantResult) {}
