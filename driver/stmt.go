package driver

import (
	"context"
	"database/sql/driver"
)

// stmt is a prepared statement that holds only its SQL text. database/sql
// caches it per pooled Conn and hands it to later callers of any tenant;
// each execution binds through the Conn like any other operation, so it
// runs on the caller's tenant. A *stdlib.Stmt here would run on whichever
// tenant's session prepared it.
type stmt struct {
	vc    *Conn
	query string
}

var (
	_ driver.StmtExecContext  = (*stmt)(nil)
	_ driver.StmtQueryContext = (*stmt)(nil)
)

// Close implements driver.Stmt. There is nothing to release: the server-side
// statements belong to pgx's per-connection cache.
func (s *stmt) Close() error { return nil }

// NumInput implements driver.Stmt: -1 leaves the argument count to pgx.
func (s *stmt) NumInput() int { return -1 }

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.vc.ExecContext(ctx, s.query, args)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.vc.QueryContext(ctx, s.query, args)
}

// Exec implements driver.Stmt; database/sql uses ExecContext.
func (s *stmt) Exec([]driver.Value) (driver.Result, error) {
	return nil, &noTenantError{why: "Stmt.Exec has no context"}
}

// Query implements driver.Stmt; database/sql uses QueryContext.
func (s *stmt) Query([]driver.Value) (driver.Rows, error) {
	return nil, &noTenantError{why: "Stmt.Query has no context"}
}
