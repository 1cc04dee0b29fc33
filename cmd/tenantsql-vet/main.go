// Command tenantsql-vet reports database/sql calls without a context
// (db.Query, tx.Exec, db.Begin, ...), which fail with driver.ErrNoTenant
// under tenantsql because only a context carries the tenant. It runs the
// analyzer of package github.com/tenantsql/tenantsql/analysis/sqlctx.
//
// Run it on an application being ported, from its module:
//
//	go run github.com/tenantsql/tenantsql/cmd/tenantsql-vet ./...
//
// or install it and let go vet drive it, alone or beside vet's own checks
// (go vet runs only the checks of the tool it is given):
//
//	go install github.com/tenantsql/tenantsql/cmd/tenantsql-vet@latest
//	go vet -vettool=$(which tenantsql-vet) ./...
//
// It exits with status 3 when it reports something (go vet: 1). Flags
// are those of the go/analysis drivers: -test=false leaves out _test.go
// files (run directly; go vet always includes them), -fix applies the
// suggested fixes (-fix -diff prints them as a diff instead), and -json
// prints the findings as JSON. A call gets a fix only when a variable ctx of type
// context.Context is in scope: db.Query(q) becomes db.QueryContext(ctx, q).
// Other calls need a context chosen by hand, one that carries the tenant
// (tenantctx.WithTenant, or the request's context under
// tenantctx.Middleware).
//
// golangci-lint has no built-in entry for it; its module plugin system
// would need a separate module depending on
// github.com/golangci/plugin-module-register, which this module does not
// take on. Run it beside golangci-lint with go vet -vettool as above.
package main

import (
	"golang.org/x/tools/go/analysis/singlechecker"

	"github.com/tenantsql/tenantsql/analysis/sqlctx"
)

func main() { singlechecker.Main(sqlctx.Analyzer) }
