package tenantctx

import "context"

// ctxKey is unexported so no other package can read or overwrite the tenant
// except through WithTenant and TenantFrom.
type ctxKey struct{}

// WithTenant returns a copy of ctx that carries the tenant id.
//
// An empty id means "no tenant": TenantFrom on the result reports false, so a
// blank header or a zero value can never select a database by accident.
func WithTenant(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// TenantFrom reports the tenant id carried by ctx, and whether there is one.
func TenantFrom(ctx context.Context) (string, bool) {
	if ctx == nil {
		return "", false
	}
	id, _ := ctx.Value(ctxKey{}).(string)
	return id, id != ""
}
