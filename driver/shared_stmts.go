package driver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Named statements on a shared session.
//
// Parsing and planning a statement afresh costs the server more than the
// statement itself when the statement is small, so a shared session keeps
// its statements prepared, by name, as pgx does for a session of its own:
//
//   - the settings statements (RESET ALL, settings.apply, settings.clean),
//     whose text depends only on the names of a tenant's settings, are
//     prepared in the pipeline of their first use, with no round trip of
//     their own;
//   - a user's statement is prepared only for tenants whose settings do
//     not include search_path (row-level-security tenants): their tables
//     are the same for every tenant, so one plan serves all. Schema
//     tenants' statements stay unnamed: each tenant's tables are others,
//     so a plan cannot be shared, and a description prepared for one
//     tenant's tables would be wrong for another's at another version.
//
// Only when the session's URL lets pgx keep statements
// (default_query_exec_mode cache_statement, the default, and a non-zero
// statement_cache_capacity): behind PgBouncer in transaction mode a
// named statement prepared on one server connection is not on the next.

// maxSharedStmts bounds the user statements a shared session keeps
// prepared; past it, new statements are sent unnamed.
const maxSharedStmts = 256

// namedStmts are the statements prepared on one shared session. Owned by
// the checkout that holds the session, like physConn.owner.
type namedStmts struct {
	byName map[string]*namedStmt // by SQL text
	user   int                   // how many of them are users' statements
}

type namedStmt struct {
	name string
	sd   *pgconn.StatementDescription // a user statement's; nil for a settings statement
	sent bool                         // its Parse was sent in a pipeline whose result is not read yet
}

// stmts returns the session's named statements, or nil if its URL does not
// allow them.
func (pc *physConn) stmts(conn *pgx.Conn) *namedStmts {
	if pc.named == nil {
		cfg := conn.Config()
		if cfg.DefaultQueryExecMode != pgx.QueryExecModeCacheStatement || cfg.StatementCacheCapacity <= 0 {
			return nil
		}
		pc.named = &namedStmts{byName: make(map[string]*namedStmt)}
	}
	return pc.named
}

func stmtName(sql string) string {
	sum := sha256.Sum256([]byte(sql))
	return "tenantsql_" + hex.EncodeToString(sum[:16])
}

// expected lists the results of a pipeline's settings statements, in
// order: nil for a statement's result, the statement for its Parse.
type expected struct {
	n    int
	what [4]*namedStmt
}

// sendSettings adds a settings statement to the pipeline, preparing it
// first if the session does not have it yet.
func (ns *namedStmts) sendSettings(p *pgconn.Pipeline, sql string, params [][]byte, e *expected) {
	if ns == nil {
		p.SendQueryParams(sql, params, nil, nil, nil)
		e.n++
		return
	}
	st := ns.byName[sql]
	if st == nil {
		st = &namedStmt{name: stmtName(sql), sent: true}
		ns.byName[sql] = st
		p.SendPrepare(st.name, sql, nil)
		e.what[e.n] = st
		e.n++
	}
	p.SendQueryPrepared(st.name, params, nil, nil)
	e.n++
}

// forget drops the statements whose Parse was sent but whose outcome is
// unknown (their pipeline failed first), and reports whether there were
// any: the session may or may not hold them, and must not be used again.
func (ns *namedStmts) forget() bool {
	if ns == nil {
		return false
	}
	unknown := false
	for sql, st := range ns.byName {
		if st.sent {
			unknown = true
			delete(ns.byName, sql)
		}
	}
	return unknown
}

// userStmt returns the description of a user's statement prepared on the
// session, preparing it (one round trip, as pgx does) on first use; nil
// when it is to be sent unnamed.
//
// It prepares only outside a transaction block, and a statement that
// fails to prepare is sent unnamed: its error then comes from the
// statement run with the tenant's settings, not from a Parse made with
// whatever the session's last user left (a failed Parse in a transaction
// would also abort it).
func (ns *namedStmts) userStmt(ctx context.Context, conn *pgx.Conn, sql string) *pgconn.StatementDescription {
	if ns == nil {
		return nil
	}
	if st := ns.byName[sql]; st != nil {
		return st.sd // nil for a settings statement or one dropped
	}
	pgc := conn.PgConn()
	if ns.user >= maxSharedStmts || pgc.TxStatus() != 'I' {
		return nil
	}
	name := stmtName(sql)
	sd, err := pgc.Prepare(ctx, name, sql, nil)
	if err != nil {
		return nil
	}
	ns.byName[sql] = &namedStmt{name: name, sd: sd}
	ns.user++
	return sd
}

// drop stops using a user's statement whose plan changed under it (a
// migration changed its tables): it is sent unnamed until the session,
// marked dirty by the caller, is closed.
func (ns *namedStmts) drop(sql string) {
	if st := ns.byName[sql]; st != nil {
		st.sd = nil
	}
}

// isPlanChanged reports PostgreSQL's "cached plan must not change result
// type": a prepared statement whose tables changed under it (a migration).
func isPlanChanged(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "0A000" && strings.Contains(pgErr.Message, "cached plan")
}
