package hooks

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/store"
)

// scrub returns err, or, if its text holds one of secrets, an error whose
// text is err's with every occurrence of them masked (pgurl.RedactText).
// pgx's connect errors name the user, host and database, not the
// password, but a server's message may quote anything it was sent; the
// cause stays readable either way.
func scrub(err error, secrets []string) error {
	msg := err.Error()
	if red := pgurl.RedactText(msg, secrets); red != msg {
		return &redactedError{msg: red, orig: err}
	}
	return err
}

// redactedError is an error whose text quoted a password, with the
// password masked. It does not unwrap to the original error: that one's
// text, and the fields of a *pgconn.PgError in it, still hold the
// password. But errors.Is still matches what the original matches
// (context.Canceled on a shutdown, driver.ErrTenantNotReady), and
// SQLState reports the server's code, which hold no secret: a caller must
// still be able to tell a cancellation, or a unique violation, from a
// failure.
type redactedError struct {
	msg  string
	orig error
}

func (e *redactedError) Error() string { return e.msg }

// Is reports whether the original error matches target.
func (e *redactedError) Is(target error) bool { return errors.Is(e.orig, target) }

// SQLState returns the SQLSTATE of the server's error in the original
// chain, or "" (the interface pgconn.PgError and pgx's users check).
func (e *redactedError) SQLState() string {
	var pe *pgconn.PgError
	if errors.As(e.orig, &pe) {
		return pe.Code
	}
	return ""
}

// scrubTenant masks t's secrets (store.Secrets: every password and the
// values of keys that name a secret) in err's whole text, the tenant's
// redacted URL included: where a password is also the user name
// (postgres:postgres), that URL shows it as the user. Masking the name too
// costs the reader a name they can find in their own URL; showing it
// would show the password. It returns nil for nil.
func scrubTenant(err error, t store.Tenant) error {
	if err == nil {
		return nil
	}
	return scrub(err, store.Secrets(t.DeployInfo))
}
