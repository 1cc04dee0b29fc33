package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantsql/tenantsql/hooks"
)

// createDatabase is the hook that creates a new tenant's database, or the
// one an update moves it to, if it does not exist (ensureDatabase). For
// tenants in schemas of a shared database, that is the shared database.
func createDatabase(ctx context.Context, ev hooks.Event) error {
	if ev.Kind == hooks.OnUpdate && ev.Old.PostgresURL() == ev.Tenant.PostgresURL() {
		return nil
	}
	return ensureDatabase(ctx, ev.Tenant.PostgresURL())
}

// ensureDatabase creates the database a tenant's URL names if it does not
// exist, connecting with the same credentials to the server's "postgres"
// database; the tutorial then needs no manual createdb. The role must be
// allowed to create databases.
func ensureDatabase(ctx context.Context, rawURL string) error {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return errors.New("cannot parse the tenant's POSTGRES_URL")
	}
	name := cfg.Database
	if name == "" || name == "postgres" {
		return nil
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to create database %q: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Every instance that receives the create runs this hook. Two CREATE
	// DATABASE at once fail in ways other than "already exists" (a unique
	// violation on pg_database, or the template being in use), so the
	// instances take turns, on an advisory lock of the maintenance
	// database; the lock ends with the session at the latest.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext('tenantsql example: create database'))"); err != nil {
		return fmt.Errorf("lock to create database %q: %w", name, err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext('tenantsql example: create database'))")
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look for database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P04" || pe.Code == "23505") {
		return nil // created meanwhile by something that does not take the lock
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}
