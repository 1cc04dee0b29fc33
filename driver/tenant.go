package driver

import (
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/keyring"
	"github.com/tenantsql/tenantsql/store"
)

// tenant is this process's view of one tenant at one configuration. A new
// URL (POSTGRES_URL, or the connector's WithURLKey) makes a new tenant
// value; the old one is retired, so a pool never mixes connections of two
// configurations.
type tenant struct {
	id      string
	version atomic.Int64
	dsn     string    // the raw URL, password included: never log it
	tg      *target   // what its sessions dial; nil when err is set
	err     error     // set when it has no usable URL for this connector: every query fails with it
	set     *settings // its session settings, on a shared target; nil otherwise
	gate    atomic.Pointer[gate]
}

// parseDSN parses a tenant URL. pgx's parse errors mask passwords only
// "best effort", and what they give as the cause may quote any part of the
// URL, so the error is written anew: the URL as store.RedactURL shows it,
// and the cause as pgurl.ParseFailure gives it. pgx's error is not
// wrapped.
func parseDSN(id, key, dsn string) (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err == nil {
		return cc, nil
	}
	return nil, fmt.Errorf("%w: tenant %q: %s: cannot parse `%s`: %s", ErrTenantConfig, id, key, store.RedactURL(dsn), pgurl.ParseFailure(dsn, pgxParse))
}

// urlError says why a tenant has no usable URL under key, or nil. The
// stores guarantee POSTGRES_URL is a postgres:// URL; any other key is
// whatever the tenant's deploy_info holds. Only a postgres:// or
// postgresql:// URL is dialled: pgx also reads "host=... sslkey=..."
// keyword strings, and an empty string as "the local defaults", neither of
// which the admin API checks as it checks URLs. The error does not echo
// the value, which may hold a password in a form RedactURL cannot mask.
func urlError(id, key, dsn string) error {
	keyID, sealed := keyring.KeyID(dsn)
	switch {
	case dsn == "":
		return &MissingURLKeyError{Tenant: id, Key: key}
	case sealed:
		// The store could not open it, and logged why.
		return fmt.Errorf("%w: tenant %q: deploy_info.%s is sealed with key %q, which this process could not open "+
			"(the key is not among its keys, or the value was altered or moved; the store's log says which): "+
			"configure the key (TENANTSQL_KEYS, store URL option keys=env or keys_file=PATH), or write the tenant again", ErrTenantConfig, id, key, keyID)
	case !pgurl.IsURL(dsn):
		return fmt.Errorf("%w: tenant %q: deploy_info.%s is not a postgres:// or postgresql:// URL: set it to one", ErrTenantConfig, id, key)
	}
	return nil
}

// pgxParse is pgx's reading of a URL, as pgurl.ParseFailure takes it.
func pgxParse(dsn string) error {
	_, err := pgx.ParseConfig(dsn)
	return err
}
