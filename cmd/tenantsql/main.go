// Command tenantsql manages tenants in a tenant store.
//
//	tenantsql [--store URL] tenants list [--json]
//	tenantsql [--store URL] tenants get ID [--json]
//	tenantsql [--store URL] tenants add ID POSTGRES_URL|- [KEY=VALUE ...]
//	tenantsql [--store URL] tenants update ID POSTGRES_URL|- [KEY=VALUE ...] [--version N]
//	tenantsql [--store URL] tenants rm ID
//	tenantsql [--store URL] tenants load FILE [--dry-run]
//	tenantsql [--store URL] tenants resync
//
// The store URL (file:PATH, redis://..., see store.Open) comes from --store
// or the TENANTSQL_STORE environment variable. A POSTGRES_URL given as "-"
// is read from standard input, which keeps its password out of the shell
// history and the process list. Passwords are redacted in all output.
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}
