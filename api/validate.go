package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantsql/tenantsql/internal/clip"
	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/store"
)

// fileOptions are connection parameters that make pgx (or libpq, for a
// program that hands it the same URL) read or write a file on this
// machine: a private key, a password file, a service file that may also
// redirect the connection. A client of the API has no business naming a
// file of the server, so they are refused whatever their case.
var fileOptions = []string{
	"passfile",
	"service",
	"servicefile",
	"sslcert",
	"sslcrl",
	"sslcrldir",
	"sslkey",
	"sslkeylogfile",
	"sslrootcert",
}

// checkTenant validates a tenant given to POST or PUT beyond what the store
// checks: each URL must mean the same to pgx as to everyone else, name no
// file, parse with pgx, point only at allowed hosts, and, unless
// WithServerCredentials, bring its own credentials. That is POSTGRES_URL
// and every other deploy_info value that is a postgres:// URL, whatever
// its key: a *sql.DB can route by any key (driver.WithURLKey), and the
// driver dials nothing else (a value that is not a postgres:// URL fails
// its queries), so no key is a way around these checks.
func (h *handler) checkTenant(ctx context.Context, t store.Tenant) *apiError {
	// store.Validate first: it refuses URLs that pgx and net/url read
	// differently before anything echoes them.
	if err := store.Validate(t); err != nil {
		if e, ok := fromStore(err, t.ID); ok {
			return e
		}
		return errorf(http.StatusBadRequest, "invalid tenant")
	}
	for _, k := range urlKeys(t.DeployInfo) {
		if k != store.KeyPostgresURL {
			// As store.Validate checked POSTGRES_URL.
			if err := store.ValidateURL(k, t.DeployInfo[k]); err != nil {
				e, _ := fromStore(err, t.ID)
				return e
			}
		}
		if e := h.checkURL(ctx, k, t.DeployInfo[k]); e != nil {
			return e
		}
	}
	return nil
}

// urlKeys returns the keys of info whose values are postgres:// URLs:
// POSTGRES_URL first, then the others in order, so that answers do not
// depend on map order.
func urlKeys(info map[string]string) []string {
	keys := []string{store.KeyPostgresURL}
	for k, v := range info {
		if k != store.KeyPostgresURL && pgurl.IsURL(v) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys[1:])
	return keys
}

// checkURL checks raw, the value of deploy_info key, which store.ValidateURL
// has accepted (so its scheme is postgres:// or postgresql:// as pgx
// reads it).
func (h *handler) checkURL(ctx context.Context, key, raw string) *apiError {
	urlField := "deploy_info." + key
	shown := store.RedactURL(raw)
	if k := fileOption(raw); k != "" {
		return errorf(http.StatusBadRequest, "invalid %s %q: option %q reads a file on the server and is not accepted through the API", urlField, shown, k)
	}
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid %s %q: pgx cannot use it: %s", urlField, shown, clip.String(pgurl.ParseFailure(raw, pgxParse)))
	}
	for k := range cfg.RuntimeParams {
		if slices.Contains(fileOptions, strings.ToLower(k)) {
			return errorf(http.StatusBadRequest, "invalid %s %q: option %q reads a file on the server and is not accepted through the API", urlField, shown, k)
		}
	}
	if h.allow != nil {
		if e := h.allow.check(ctx, urlField, cfg.Config.Host, cfg.Config.Fallbacks); e != nil {
			return e
		}
	}
	if !h.serverCredentials {
		if why := serverCredential(raw, cfg); why != "" {
			return errorf(http.StatusBadRequest, "invalid %s %q: %s (this API lends no credentials of its server unless built with WithServerCredentials)", urlField, shown, why)
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

// fileOption returns the first of fileOptions among raw's query keys, or
// "". It looks at every key that any reader of the URL may see
// (pgurl.Keys), more than pgx's own parser sees: a refusal too many is
// better than a file read.
func fileOption(raw string) string {
	for k := range pgurl.Keys(raw) {
		if k = strings.ToLower(k); slices.Contains(fileOptions, k) {
			return k
		}
	}
	return ""
}

// pgxParse is pgx's reading of a URL, as pgurl.ParseFailure takes it.
func pgxParse(raw string) error {
	_, err := pgx.ParseConfig(raw)
	return err
}

// leaks reports whether text holds one of secrets.
func leaks(text string, secrets []string) bool {
	for _, s := range secrets {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// safeErrorText is err's message if it holds none of secrets, shortened;
// else a note that it was withheld. It is for errors of pgx and the
// driver, whose messages are not promised to be free of passwords.
func safeErrorText(err error, secrets []string) string {
	// pgx spreads the attempts at several addresses over lines.
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if leaks(msg, secrets) {
		return "failed (the error message is withheld because it contains a secret)"
	}
	const maxLen = 300 // enough for a cause; an answer does not grow with it
	if len(msg) > maxLen {
		msg = msg[:maxLen] + "..."
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
