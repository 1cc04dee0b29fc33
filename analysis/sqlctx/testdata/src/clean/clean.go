// Package clean uses database/sql as tenantsql needs it, and has other
// methods named Query or Exec: nothing here is reported.
package clean

import (
	"context"
	"database/sql"
)

func handler(ctx context.Context, db *sql.DB) error {
	if err := db.PingContext(ctx); err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, "SELECT $1::int")
	if err != nil {
		return err
	}
	defer stmt.Close()
	var n int
	if err := stmt.QueryRowContext(ctx, 1).Scan(&n); err != nil {
		return err
	}
	if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, 2); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, "SELECT 1")
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	rows.Close()
	return tx.Commit()
}

// *sql.Conn has only methods with a context (Close and Raw have no
// sibling).
func conn(ctx context.Context, db *sql.DB) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "SELECT 1"); err != nil {
		return err
	}
	return c.Raw(func(any) error { return nil })
}

// Methods without a context that have no sibling: not reported.
func others(db *sql.DB) {
	db.SetMaxOpenConns(4)
	_ = db.Stats()
	_ = db.Driver()
	db.Close()
}

// Types of the application's own, and interfaces: their Query and Exec
// are not database/sql's.
type Querier interface {
	Query(query string, args ...any) (*sql.Rows, error)
}

type cache struct{}

func (cache) Query(string) int { return 0 }
func (cache) Exec()            {}

func own(q Querier, c cache) {
	q.Query("SELECT 1") // through an interface: not seen (documented limit)
	c.Query("x")
	c.Exec()
	f := c.Exec
	f()
}

// Context methods passed as values are fine.
func values(db *sql.DB) func(context.Context, string, ...any) (*sql.Rows, error) {
	return db.QueryContext
}
