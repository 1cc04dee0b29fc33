package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantsql/tenantsql/internal/clip"
	"github.com/tenantsql/tenantsql/store"
)

const urlField = "deploy_info." + store.KeyPostgresURL

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
// checks: the URL must mean the same to pgx as to everyone else, name no
// file, parse with pgx, point only at allowed hosts, and, unless
// WithServerCredentials, bring its own credentials.
func (h *handler) checkTenant(ctx context.Context, t store.Tenant) *apiError {
	raw := t.PostgresURL()
	// store.Validate first: it refuses URLs that pgx and net/url read
	// differently before anything echoes them.
	if err := store.Validate(t); err != nil {
		if e, ok := fromStore(err, t.ID); ok {
			return e
		}
		return errorf(http.StatusBadRequest, "invalid tenant")
	}
	// store.Validate has also checked the scheme as pgx reads it
	// (lowercase postgres:// or postgresql://).
	shown := showURL(raw)
	if k := fileOption(raw); k != "" {
		return errorf(http.StatusBadRequest, "invalid %s %q: option %q reads a file on the server and is not accepted through the API", urlField, shown, k)
	}
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid %s %q: pgx cannot use it: %s", urlField, shown, parseFailure(raw))
	}
	for k := range cfg.RuntimeParams {
		if slices.Contains(fileOptions, strings.ToLower(k)) {
			return errorf(http.StatusBadRequest, "invalid %s %q: option %q reads a file on the server and is not accepted through the API", urlField, shown, k)
		}
	}
	if h.allow != nil {
		if e := h.allow.check(ctx, cfg.Config.Host, cfg.Config.Fallbacks); e != nil {
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
	if cfg.Password != "" && !ownPassword(raw, cfg.Password) {
		return "it gives no password, and pgx would use one from this server's environment (PGPASSWORD, a password file such as ~/.pgpass, or a service); put the password in the URL"
	}
	for _, tc := range tlsConfigs {
		if tc != nil && (len(tc.Certificates) > 0 || tc.GetClientCertificate != nil) {
			return "pgx would present this server's TLS client certificate (PGSSLCERT and PGSSLKEY, or ~/.postgresql/postgresql.crt and .key); add sslcertmode=disable to connect without one"
		}
	}
	return ""
}

// ownPassword reports whether pw, the password pgx settled on for raw, is
// one raw gives: in its user info or in a password parameter, as pgx
// decodes them (percent escapes, spaces around trimmed) or as written.
// pgx takes a password from elsewhere only when the URL gives none, so a
// match means the URL's own.
func ownPassword(raw, pw string) bool {
	candidates := secretsOf(raw)
	// pgx splits the query at '&' only; secretsOf also at ';' and '#'.
	if _, query, ok := strings.Cut(raw, "?"); ok {
		for pair := range strings.SplitSeq(query, "&") {
			if k, v, ok := strings.Cut(pair, "="); ok && strings.Contains(strings.ToLower(percentDecode(k)), "password") {
				candidates = append(candidates, v)
			}
		}
	}
	for _, c := range candidates {
		if c == pw || strings.Trim(c, " ") == pw || percentDecode(strings.Trim(c, " ")) == pw {
			return true
		}
	}
	return false
}

// showURL is raw as messages show it.
func showURL(raw string) string { return store.RedactURL(raw) }

// fileOption returns the first of fileOptions among raw's query keys, or
// "". It looks at every piece after a '?', '&', ';' or '#', so that it
// sees every key pgx's own parser sees (which splits the query at '&'
// only and knows no fragment), plus a few more: a refusal too many is
// better than a file read.
func fileOption(raw string) string {
	for i := 0; i < len(raw); i++ {
		if !strings.ContainsRune("?&;#", rune(raw[i])) {
			continue
		}
		seg := raw[i+1:]
		if j := strings.IndexAny(seg, "?&;#"); j >= 0 {
			seg = seg[:j]
		}
		key, _, _ := strings.Cut(seg, "=")
		key = strings.ToLower(strings.Trim(percentDecode(key), " "))
		if slices.Contains(fileOptions, key) {
			return key
		}
	}
	return ""
}

// percentDecode decodes the valid %XX escapes of s and leaves the rest as
// it is, as pgx does for keys.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// parseFailure says why pgx cannot parse raw, without the password. pgx
// redacts passwords from its messages only "best effort", so the message
// shown is that of parsing raw with its secrets taken out: it cannot
// contain what is not there. If that copy parses, the password itself is
// what is wrong.
func parseFailure(raw string) string {
	_, err := pgx.ParseConfig(withoutSecrets(raw))
	if err == nil {
		return "the password is malformed (percent-encode reserved characters, and do not use %00)"
	}
	msg := err.Error()
	// Drop pgx's "cannot parse `<the URL>`: " prefix.
	if rest, ok := strings.CutPrefix(msg, "cannot parse `"); ok {
		if _, after, ok := strings.Cut(rest, "`: "); ok {
			msg = after
		}
	}
	if leaks(msg, secretsOf(raw)) {
		return "it does not parse"
	}
	return clip.String(msg)
}

// withoutSecrets returns raw without the password of its user info (as
// pgx splits it) and with the values of query keys that name a password
// replaced.
func withoutSecrets(raw string) string {
	scheme, p, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	if at := strings.IndexAny(p, "@/"); at >= 0 && p[at] == '@' {
		user, _, _ := strings.Cut(p[:at], ":")
		p = user + p[at:]
	}
	var b strings.Builder
	b.WriteString(scheme + "://")
	for p != "" {
		i := strings.IndexAny(p, "?&")
		if i < 0 {
			b.WriteString(p)
			break
		}
		b.WriteString(p[:i+1])
		p = p[i+1:]
		seg := p
		if j := strings.IndexAny(p, "?&"); j >= 0 {
			seg = p[:j]
		}
		if key, _, hasValue := strings.Cut(seg, "="); hasValue && strings.Contains(strings.ToLower(percentDecode(key)), "password") {
			b.WriteString(key + "=x")
			p = p[len(seg):]
		}
	}
	return b.String()
}

// secretsOf returns the passwords raw may hold, raw and decoded, as pgx
// and as net/url read them.
func secretsOf(raw string) []string {
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if _, p, ok := strings.Cut(raw, "://"); ok {
		if at := strings.IndexAny(p, "@/"); at >= 0 && p[at] == '@' {
			if _, pw, ok := strings.Cut(p[:at], ":"); ok {
				add(pw)
				add(percentDecode(pw))
			}
		}
	}
	if u, err := url.Parse(raw); err == nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
	}
	for seg := range strings.FieldsFuncSeq(raw, func(r rune) bool { return strings.ContainsRune("?&;#", r) }) {
		if key, v, ok := strings.Cut(seg, "="); ok && strings.Contains(strings.ToLower(percentDecode(key)), "password") {
			add(v)
			add(percentDecode(v))
		}
	}
	return out
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
	const max = 300
	if len(msg) > max {
		msg = msg[:max] + "..."
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
