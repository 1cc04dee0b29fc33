// Package nofix calls database/sql without a context where no ctx is in
// scope: every call is reported, none gets a fix.
package nofix

import (
	"context"
	"database/sql"
)

func direct(db *sql.DB) error {
	if err := db.Ping(); err != nil { // want `db\.Ping has no context: under tenantsql it checks only the tenant store; use PingContext\(ctx\) with ctx from tenantctx\.WithTenant to ping a tenant's database, or PingContext\(context\.Background\(\)\) to check the store`
		return err
	}
	if _, err := db.Exec("DELETE FROM t"); err != nil { // want `db\.Exec has no context: tenantsql routes by the tenant in the context; use ExecContext\(ctx, \.\.\.\) with ctx from tenantctx\.WithTenant`
		return err
	}
	if _, err := db.Exec("DELETE FROM t"); err != nil { // want `db\.Exec has no context: .* use ExecContext\(ctx, \.\.\.\)`
		return err
	}
	rows, err := db.Query("SELECT 1") // want `db\.Query has no context: .* use QueryContext\(ctx, \.\.\.\)`
	if err != nil {
		return err
	}
	rows.Close()
	var n int
	if err := db.QueryRow("SELECT 1").Scan(&n); err != nil { // want `db\.QueryRow has no context: .* use QueryRowContext\(ctx, \.\.\.\)`
		return err
	}
	stmt, err := db.Prepare("SELECT $1::int") // want `db\.Prepare has no context: .* use PrepareContext\(ctx, \.\.\.\)`
	if err != nil {
		return err
	}
	defer stmt.Close()
	if _, err := stmt.Exec(1); err != nil { // want `stmt\.Exec has no context: .* use ExecContext\(ctx, \.\.\.\)`
		return err
	}
	if err := stmt.QueryRow(1).Scan(&n); err != nil { // want `stmt\.QueryRow has no context`
		return err
	}
	if rows, err := stmt.Query(1); err == nil { // want `stmt\.Query has no context`
		rows.Close()
	}
	return nil
}

func transaction(db *sql.DB, stmt *sql.Stmt) error {
	tx, err := db.Begin() // want `db\.Begin has no context: .* use BeginTx\(ctx, nil\)`
	if err != nil {
		return err
	}
	defer tx.Rollback()                                 // Rollback and Commit have no context sibling: not reported
	if _, err := tx.Exec("DELETE FROM t"); err != nil { // want `tx\.Exec has no context`
		return err
	}
	if rows, err := tx.Query("SELECT 1"); err == nil { // want `tx\.Query has no context`
		rows.Close()
	}
	_ = tx.QueryRow("SELECT 1")                       // want `tx\.QueryRow has no context`
	if s, err := tx.Prepare("SELECT 1"); err == nil { // want `tx\.Prepare has no context`
		s.Close()
	}
	_ = tx.Stmt(stmt) // want `tx\.Stmt has no context: .* use StmtContext\(ctx, \.\.\.\)`
	return tx.Commit()
}

// A *sql.DB embedded in a type of the application: its methods are
// promoted, and reported like direct calls.
type Store struct {
	*sql.DB
	name string
}

func (s *Store) Count() (n int, err error) {
	err = s.QueryRow("SELECT count(*) FROM t").Scan(&n) // want `s\.QueryRow has no context`
	return n, err
}

type nested struct{ Store }

func deep(n nested) {
	n.Exec("DELETE FROM t") // want `n\.Exec has no context`
}

// Method values and method expressions run without a context when called.
func values(db *sql.DB) {
	exec := db.Exec // want `db\.Exec has no context`
	exec("DELETE FROM t")
	run(db.Query)            // want `db\.Query has no context`
	query := (*sql.DB).Query // want `\(\*sql\.DB\)\.Query has no context`
	query(db, "SELECT 1")
}

func run(func(string, ...any) (*sql.Rows, error)) {}

// A ctx that is not a context.Context is no reason for a fix.
func notAContext(db *sql.DB, ctx string) {
	db.Exec(ctx) // want `db\.Exec has no context`
}

// A ctx declared after the call is not in scope at the call.
func declaredLater(db *sql.DB) {
	db.Exec("DELETE FROM t") // want `db\.Exec has no context`
	ctx := context.Background()
	db.ExecContext(ctx, "DELETE FROM t")
}

// A type that shadows a promoted ...Context method: renaming the call
// would call the application's method, so there is no fix.
type Shadow struct{ *sql.DB }

func (Shadow) ExecContext(ctx context.Context, query string) {}

func shadowed(ctx context.Context, s Shadow) {
	s.Exec("DELETE FROM t") // want `s\.Exec has no context`
}

// A long receiver expression is named by its type instead.
func long(open func(string) *sql.DB) {
	open("postgres://db.example.com/tenants").Exec("SELECT 1") // want `\(\*sql\.DB\)\.Exec has no context`
}

// A short one is named as written.
type deeply struct{ conn struct{ pool *sql.DB } }

func short(d deeply) {
	d.conn.pool.Exec("SELECT 1") // want `d\.conn\.pool\.Exec has no context`
}
