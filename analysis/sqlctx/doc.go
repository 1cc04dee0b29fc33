// Package sqlctx defines an Analyzer that reports database/sql calls that
// take no context.Context, so that porting an application to tenantsql
// finds every call that would fail with driver.ErrNoTenant at run time.
//
// tenantsql routes each operation by the tenant in its context
// (tenantctx.WithTenant). The database/sql methods without a context,
// such as db.Query or tx.Exec, pass context.Background(), which names no
// tenant, so they compile, and fail only when they run. The analyzer
// reports every call, and every method value, of a method of *sql.DB,
// *sql.Tx, *sql.Stmt or *sql.Conn that has a context-taking sibling:
// Query, QueryRow, Exec, Prepare and Ping (QueryContext, ...), Begin
// (BeginTx) and Tx.Stmt (StmtContext). The list is derived from
// database/sql's own types, so a future M with an MContext is reported
// too. Methods promoted from an embedded *sql.DB (or Tx, Stmt, Conn) are
// reported like direct calls.
//
// A call gets a suggested fix only when it is safe: when a variable
// named ctx of type context.Context is in scope at the call, the fix
// renames Query to QueryContext and passes ctx first (Begin() becomes
// BeginTx(ctx, nil)). Without such a ctx there is no fix, since only the
// application knows which context carries the tenant.
//
// The analyzer cannot see through interfaces: a call through an interface
// of your own that *sql.DB satisfies (a "Querier") is not reported.
//
// The command github.com/tenantsql/tenantsql/cmd/tenantsql-vet runs it:
//
//	go run github.com/tenantsql/tenantsql/cmd/tenantsql-vet ./...
//	go vet -vettool=$(which tenantsql-vet) ./...
package sqlctx
