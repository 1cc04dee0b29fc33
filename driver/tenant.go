package driver

import (
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/store"
)

// tenant is this process's view of one tenant at one configuration. A new
// POSTGRES_URL makes a new tenant value; the old one is retired, so a pool
// never mixes connections of two configurations.
type tenant struct {
	id      string
	version atomic.Int64
	dsn     string    // the raw POSTGRES_URL, password included: never log it
	tg      *target   // what its sessions dial
	set     *settings // its session settings, on a shared target; nil otherwise
	gate    atomic.Pointer[gate]
}

// parseDSN parses a tenant URL. pgx's parse errors mask passwords only
// "best effort", and what they give as the cause may quote any part of the
// URL, so the error is written anew: the URL as store.RedactURL shows it,
// and the cause as pgurl.ParseFailure gives it. pgx's error is not
// wrapped.
func parseDSN(id, dsn string) (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err == nil {
		return cc, nil
	}
	return nil, fmt.Errorf("%w: tenant %q: POSTGRES_URL: cannot parse `%s`: %s", ErrTenantConfig, id, store.RedactURL(dsn), pgurl.ParseFailure(dsn, pgxParse))
}

// pgxParse is pgx's reading of a URL, as pgurl.ParseFailure takes it.
func pgxParse(dsn string) error {
	_, err := pgx.ParseConfig(dsn)
	return err
}
