package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tenantsql/tenantsql/internal/clip"
	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/store"
)

// checkTenant validates a tenant given to POST or PUT. store.ValidateUsable
// checks what any writer of a tenant must respect (the tenantsql command
// checks with it too, so both refuse the same tenants with the same
// message): every postgres:// value of deploy_info, whatever its key, is
// a URL that pgx and everyone else read alike, names no file and parses
// with pgx. On top, each such URL must point only at allowed hosts and,
// unless WithServerCredentials, bring its own credentials: a *sql.DB can
// route by any key (driver.WithURLKey), and the driver dials nothing else
// (a value that is not a postgres:// URL fails its queries), so no key is
// a way around these checks.
func (h *handler) checkTenant(ctx context.Context, t store.Tenant) *apiError {
	if err := store.ValidateUsable(t); err != nil {
		if e, ok := fromStore(err, t.ID); ok {
			return e
		}
		// Not a store error (ValidateUsable returns none but
		// *ValidationError): still the client's tenant that was refused,
		// not the store that failed.
		return errorf(http.StatusBadRequest, "invalid tenant %q", t.ID)
	}
	for _, k := range store.URLKeys(t.DeployInfo) {
		if e := h.checkURL(ctx, k, t.DeployInfo[k]); e != nil {
			return e
		}
	}
	return nil
}

// checkURL checks raw, the value of deploy_info key, which
// store.ValidateUsable has accepted (so pgx parses it), against this
// API's own rules: allowed hosts and server credentials.
func (h *handler) checkURL(ctx context.Context, key, raw string) *apiError {
	urlField := "deploy_info." + key
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		// ValidateUsable parsed it; only a change of the environment
		// between the two parses gets here.
		return errorf(http.StatusBadRequest, "invalid %s %q: pgx cannot use it", urlField, store.RedactURL(raw))
	}
	if h.allow != nil {
		if e := h.allow.check(ctx, urlField, cfg.Config.Host, cfg.Config.Fallbacks); e != nil {
			return e
		}
	}
	if !h.serverCredentials {
		if why := serverCredential(raw, cfg); why != "" {
			return errorf(http.StatusBadRequest, "invalid %s %q: %s (this API lends no credentials of its server unless built with WithServerCredentials)", urlField, store.RedactURL(raw), why)
		}
	}
	return nil
}

// serverCredential says which credential of this machine, not given in
// raw, pgx would use to connect with cfg, the parse of raw; or "".
//
// It judges the outcome, not the sources: whatever pgx read (PGPASSWORD,
// PGPASSFILE or ~/.pgpass, a service named by PGSERVICE, PGSSLCERT and
// PGSSLKEY or ~/.postgresql/postgresql.crt and .key), a password that is
// not the URL's own or a client certificate is refused. The URL cannot
// name a certificate itself (sslcert and sslkey are file options), so any
// certificate is the server's. A Unix socket is refused too: there the
// database may take the program for its operating-system user (peer
// authentication), and pgx uses a socket when the URL names no host.
func serverCredential(raw string, cfg *pgx.ConnConfig) string {
	hosts := []string{cfg.Host}
	tlsConfigs := []*tls.Config{cfg.TLSConfig}
	for _, fb := range cfg.Fallbacks {
		hosts = append(hosts, fb.Host)
		tlsConfigs = append(tlsConfigs, fb.TLSConfig)
	}
	for _, host := range hosts {
		if strings.HasPrefix(host, "/") {
			return fmt.Sprintf("host %q is a Unix socket, where the database may know this program by its operating-system user (a URL without a host uses the local socket too); name a TCP host", clip.String(host))
		}
	}
	if cfg.Password != "" && !pgurl.GivesPassword(raw, cfg.Password) {
		return "it gives no password, and pgx would use one from this server's environment (PGPASSWORD, a password file such as ~/.pgpass, or a service); put the password in the URL"
	}
	for _, tc := range tlsConfigs {
		if tc != nil && (len(tc.Certificates) > 0 || tc.GetClientCertificate != nil) {
			return "pgx would present this server's TLS client certificate (PGSSLCERT and PGSSLKEY, or ~/.postgresql/postgresql.crt and .key); add sslcertmode=disable to connect without one"
		}
	}
	return ""
}

// safeErrorText is err's message with every occurrence of secrets
// masked (pgurl.RedactText), on one line and shortened. It is for errors
// of pgx and the driver, whose messages are not promised to be free of
// passwords: the cause is shown, the password is not. Where the password
// is also the user or database name (postgres:postgres), those are masked
// too.
func safeErrorText(err error, secrets []string) string {
	// Masked before pgx's lines (attempts at several addresses) are
	// joined into one: joining collapses whitespace, and a password with
	// spaces or tabs in it would no longer match.
	msg := strings.Join(strings.Fields(pgurl.RedactText(err.Error(), secrets)), " ")
	const maxLen = 300 // enough for a cause; an answer does not grow with it
	if len(msg) > maxLen {
		cut := maxLen
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut-- // not inside a character
		}
		// Masked again: the cut and the "..." could form a short secret
		// anew.
		msg = pgurl.RedactText(msg[:cut]+"...", secrets)
	}
	return msg
}

// checkTableName accepts "table" or "schema.table" of plain identifiers
// of at most 63 bytes, the PostgreSQL limit.
func checkTableName(name string) error {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return errors.New("want table or schema.table")
	}
	for _, p := range parts {
		if p == "" || len(p) > 63 || strings.ContainsRune(p, 0) {
			return fmt.Errorf("want table or schema.table, each part 1 to 63 bytes")
		}
	}
	return nil
}

// quoteTable quotes a name checkTableName accepted, so that it is always
// read as an identifier, never as SQL.
func quoteTable(name string) string { return pgx.Identifier(strings.Split(name, ".")).Sanitize() }
