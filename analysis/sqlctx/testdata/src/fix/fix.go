// Package fix calls database/sql without a context where a ctx is in
// scope: every call is reported and gets the fix that passes ctx.
package fix

import (
	"context"
	"database/sql"
)

func handler(ctx context.Context, db *sql.DB, stmt *sql.Stmt, args []any) error {
	if err := db.Ping(); err != nil { // want `db\.Ping has no context`
		return err
	}
	if _, err := db.Exec("DELETE FROM t WHERE id = $1", 1); err != nil { // want `db\.Exec has no context`
		return err
	}
	rows, err := (db.Query)("SELECT $1::int", args...) // want `db\.Query has no context`
	if err != nil {
		return err
	}
	rows.Close()
	tx, err := db.Begin() // want `db\.Begin has no context`
	if err != nil {
		return err
	}
	defer tx.Rollback()
	_ = tx.Stmt(stmt).QueryRow(2) // want `tx\.Stmt has no context` `tx\.Stmt\(stmt\)\.QueryRow has no context`
	return tx.Commit()
}

type Store struct{ *sql.DB }

func (s Store) worker() {
	ctx := context.TODO()
	go func() {
		s.Exec("DELETE FROM t") // want `s\.Exec has no context`
	}()
	_ = ctx
}

// Method values get no fix: there is no call to add ctx to.
func values(ctx context.Context, db *sql.DB) {
	exec := db.Exec // want `db\.Exec has no context`
	exec("DELETE FROM t")
}
