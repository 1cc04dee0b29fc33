// Command tenantsql manages tenants in a tenant store.
//
//	tenantsql [--store URL] tenants list [--json]
//	tenantsql [--store URL] tenants get ID [--json]
//	tenantsql [--store URL] tenants add ID POSTGRES_URL|- [KEY=VALUE ...] [--create-database]
//	tenantsql [--store URL] tenants update ID POSTGRES_URL|- [KEY=VALUE ...] [--version N]
//	tenantsql [--store URL] tenants rm ID [--drop-database [--yes]]
//	tenantsql [--store URL] tenants load FILE [--dry-run]
//	tenantsql [--store URL] tenants resync
//	tenantsql [--store URL] migrate up|up-to V|down|down-to V|status --dir DIR [flags]
//	tenantsql migrate create NAME [--dir DIR] [--sql|--go] [--sequential]
//
// The store URL (file:PATH, redis://..., see store.Open) comes from --store
// or the TENANTSQL_STORE environment variable. --store and -v may stand
// anywhere on the line. -v (or TENANTSQL_DEBUG=1) also shows the logs of
// the libraries underneath, such as go-redis's, which are otherwise quiet:
// a failure is then told once, by the command. A POSTGRES_URL given as "-"
// is read from standard input, which keeps its password out of the shell
// history and the process list. Passwords are redacted in all output.
//
// add, update and load check each tenant with store.ValidateUsable, as the
// admin API does, and refuse it with the API's message: a tenant that pgx
// cannot use, or whose URL names a file, is never stored.
//
// add --create-database first creates the tenant's database (and a schema
// tenant's schema) if missing, with hooks.Databases and hooks.Schemas, on
// the tenant's own credentials. rm keeps the tenant's database and data;
// rm --drop-database drops the database after the delete (DROP DATABASE
// ... WITH (FORCE)), unless another tenant still uses it, after asking on
// standard input unless --yes.
//
// migrate runs goose migrations for every tenant (or those named with
// --tenant, less those named with --exclude), a few at a time, and prints a
// summary; see "tenantsql migrate --help". A tenant's failure is printed
// once, after the table: its cause first, then what the run was doing,
// and a hint. migrate create scaffolds a migration file with goose's own
// create, and needs no store. The first Ctrl-C starts no more
// tenants, stops those waiting for a lock, and lets those migrating finish
// (the exit status is then 1); a second one aborts.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "\ntenantsql: interrupted: starting nothing new, letting the work in flight finish (Ctrl-C again to abort)")
		cancel()
		signal.Stop(sig) // the next Ctrl-C kills the process
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	cancel()
	os.Exit(code)
}
