package hooks

import (
	"context"
	"log/slog"
)

type loggerKey struct{}

// withLogger returns ctx carrying log, the logger a hook run by a
// Registry logs to: the registry's, with the hook's name, kind, tenant
// and store version as attributes.
func withLogger(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, log)
}

// logFrom returns the logger a ready-made hook logs what it provisions
// to: its registry's (withLogger), or, for a hook called directly rather
// than by a Registry, slog.Default() with the tenant as an attribute.
func logFrom(ctx context.Context, tenant string) *slog.Logger {
	if log, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return log
	}
	return slog.Default().With("tenant", tenant)
}
