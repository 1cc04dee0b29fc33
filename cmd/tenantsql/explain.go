package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"

	"github.com/tenantsql/tenantsql/migrate"
	"github.com/tenantsql/tenantsql/store"
)

// explainStore adds to a store error what to do about it, as the admin
// API's answers do.
func explainStore(err error, id string) error {
	switch {
	case errors.Is(err, store.ErrConflict):
		// The store's message says which version is current.
		return fmt.Errorf("%w; read the tenant again (tenantsql tenants get %s) and retry with --version set to its current version, "+
			"or leave --version out to replace it whatever its version", err, id)
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("%w; use tenants update %s to change it", err, id)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w; use tenants add %s to create it", err, id)
	}
	return err
}

// failure is a tenant's migration failure as the command prints it: the
// cause first, then what the run was doing, and a hint when there is one.
type failure struct {
	msg  string
	hint string
}

// explainMigrate turns the error of a tenant's migration into a failure.
// The error arrives wrapped layer after layer (migrate's "migrate up:
// tenant ...", then the step, then the driver's "tenantsql: tenant ...",
// then pgx's "failed to connect to ..."), which puts the cause last and
// makes it read as a migration problem when the database could not even
// be reached. Here the cause comes first, then the step, once.
func explainMigrate(err error) failure {
	tenant := ""
	var te *migrate.TenantError
	if errors.As(err, &te) {
		tenant, err = te.Tenant, te.Err
	}
	prefix := ""
	if tenant != "" {
		prefix = fmt.Sprintf("tenant %q: ", tenant)
	}
	var pme *goose.PartialError
	if errors.As(err, &pme) && pme.Failed != nil && pme.Failed.Source != nil {
		// A migration ran and failed: its own error first, then which
		// one; those before it stay applied (the table's RAN).
		src := pme.Failed.Source
		f := failure{msg: fmt.Sprintf("%s%s (migration %s, %s, version %d)", prefix, oneLine(pme.Err), filepath.Base(src.Path), pme.Failed.Direction, src.Version)}
		if len(pme.Applied) > 0 {
			f.msg += "; those that ran before it stay applied (RAN)"
		}
		f.hint = "fix the migration, then run migrate again: it goes on from the last one applied (a migration without a transaction may have left part of its work)"
		return f
	}
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		return failure{msg: prefix + trimLayers(oneLine(err), tenant)}
	}
	cause := lastAttempt(ce)
	step := strings.TrimSuffix(oneLine(err), oneLine(ce))
	step = strings.TrimSuffix(strings.TrimSpace(trimLayers(step, tenant)), ":")
	f := failure{msg: prefix + "cannot connect: " + cause}
	if step != "" {
		f.msg += " (while trying to " + step + ")"
	}
	id := tenant
	if id == "" {
		id = "ID"
	}
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "3D000": // invalid_catalog_name
		f.hint = fmt.Sprintf("the tenant's database does not exist: create it (CREATE DATABASE, or hooks.Databases in the application); "+
			"a tenant added with tenantsql tenants add ID POSTGRES_URL --create-database has it created first. "+
			"Check the database name in its POSTGRES_URL: tenantsql tenants get %s", id)
	case errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000"): // invalid_password, invalid_authorization_specification
		f.hint = fmt.Sprintf("the server refused the user or password of the tenant's POSTGRES_URL: check them (tenantsql tenants get %s) "+
			"and change them with tenantsql tenants update", id)
	default:
		f.hint = fmt.Sprintf("check the host and port of the tenant's POSTGRES_URL (tenantsql tenants get %s) and that its server is running; "+
			"a database that does not exist yet can be created with tenantsql tenants add --create-database", id)
	}
	return f
}

// trimLayers takes out of msg the prefixes that only say which layer
// wrapped the error: "migrate: " and the driver's "tenantsql: tenant
// "ID": ", which repeat what the line already says.
func trimLayers(msg, tenant string) string {
	msg = strings.ReplaceAll(msg, fmt.Sprintf("tenantsql: tenant %q: ", tenant), "")
	msg = strings.ReplaceAll(msg, "migrate: ", "")
	return msg
}

// lastAttempt is the cause of ce's last attempt. pgx tries each address
// and, with sslmode=prefer (the default), with and without TLS, and
// reports every attempt on a line of its own: the last one says why the
// last hope failed (the server's FATAL, a refused dial), and the earlier
// ones are mostly "server refused TLS connection".
func lastAttempt(ce *pgconn.ConnectError) string {
	inner := errors.Unwrap(ce)
	if inner == nil {
		return oneLine(ce)
	}
	lines := strings.Split(strings.TrimSpace(inner.Error()), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
