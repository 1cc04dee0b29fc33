// Package api is the admin HTTP API of tenantsql: create, read, update and
// delete tenants, check their health, and read connection statistics.
//
// New returns an http.Handler. Its routes are relative to where it is
// mounted:
//
//	h, err := api.New(s, api.WithToken(os.Getenv("TENANTSQL_ADMIN_TOKEN")),
//		api.WithAllowedHosts("10.0.0.0/8"),
//		api.WithHealth(db))
//	mux.Handle("/api/", http.StripPrefix("/api", h))
//
// It is meant for an internal network: it answers no CORS requests, sends
// no cookies, and refuses what a browser could send for another site's
// page (see Browsers).
//
// # Routes
//
// Every route answers with or without its trailing slash (/ui redirects
// to /ui/).
//
//	POST   /tenant/          {"tenant_id": ID, "deploy_info": {"POSTGRES_URL": URL, ...}}
//	                         201 {"tenant_id": ID, "lifecycle_event": "tenant_create", "version": 1}
//	PUT    /tenant/{id}/     {"deploy_info": {...}, "tenant_id": ID (optional), "version": N (optional)}
//	                         200 {"tenant_id": ID, "lifecycle_event": "tenant_update", "version": N+1}
//	DELETE /tenant/{id}/     200 {"tenant_id": ID, "lifecycle_event": "tenant_delete"}
//	GET    /tenant/          200 {"tenants": [tenant, ...]}, sorted by id
//	GET    /tenant/{id}/     200 tenant
//	GET    /health-check/    200 or 503 {"status", "store": {...}, "tenants": {ID: {...}}}
//	GET    /stats/           200 what the WithStats function returns (404 without WithStats)
//	GET    /ui/              the operator's page, with WithUI (its files need no token; see WithUI)
//
// A tenant is shown as store.Tenant encodes it, after Tenant.Redacted:
// passwords in URLs read "xxxxx", and values of keys that name a secret
// are replaced. A non-zero "version" in a PUT makes the update
// conditional: if the tenant changed since that version, the answer is
// 409 and nothing changes.
//
// The health check pings the store and, for a store that follows a
// remote source such as Redis, adds its status (connected, version,
// last_sync, last_error, data_loss). With WithHealth it also checks every
// tenant through the tenantsql *sql.DB given, a few at a time
// (WithHealthConcurrency) and each within a time limit
// (WithHealthTimeout): a ping of the tenant's database, then the highest
// version in goose's table (WithMigrationTable). Each tenant gets
// {"result": true|false, "msg": "ok" or why not, "migration_version": N
// or null}; null means the table is missing or empty. The answer is 200
// when the store and every tenant are fine, else 503.
//
// # Authentication
//
// Every route, the health check included, requires
// "Authorization: Bearer TOKEN" with the token given to WithToken; New
// fails without one unless WithoutAuth asks for no authentication, which
// is for local development. Tokens are compared in constant time, on
// their SHA-256 digests, so the time an answer takes tells nothing about
// the token, not even its length. A missing or wrong token gets 401 with
// a WWW-Authenticate: Bearer header, whatever the route, so routes cannot
// be probed without the token.
//
// The one exception is the operator's page of WithUI: its files under
// /ui/ (and /ui/auth.json, which tells the page whether to ask for a
// token) are served to anyone, since a browser loads a page without an
// Authorization header. They hold no data, but they do tell whoever asks
// that the page is on. The page sends the token with each API request it
// makes, and those are checked as any other.
//
// # Browsers
//
// A web page the operator visits can make the browser send requests to
// the API. With a token that is harmless: the page cannot add the header.
// Without one, two rules keep pages out:
//
//   - POST and PUT must carry Content-Type: application/json (parameters
//     such as charset=utf-8 are fine), else 415, with the token or
//     without. A page can send a POST with no Content-Type, or a form or
//     text/plain one, without asking the browser first; application/json
//     needs a CORS preflight, which the API never grants (it sends no
//     Access-Control-* header). A page's PUT or DELETE always needs one.
//   - With WithoutAuth, a request is refused with 403 if its
//     Sec-Fetch-Site header is there and is neither same-origin nor none,
//     or, without Sec-Fetch-Site (older browsers), if its Origin header is
//     there and does not name the request's Host (host and port; the
//     scheme is not compared, as a proxy in front may change it). same-site is refused too: to a browser every port of
//     localhost is the same site. Programs such as curl send neither
//     header and are not affected.
//
// This does not stop DNS rebinding: a page whose own host name is made to
// resolve to the API's address, a loopback one included, sends same-origin
// requests, and they pass. WithoutAuth is for tests and local development;
// use a token anywhere else.
//
// # Errors
//
// Errors are JSON, {"error": "what is wrong"}:
//
//	400  malformed JSON (with line and column), an unknown or repeated
//	     field, an empty body, data after the object, a missing or invalid
//	     tenant_id, a missing or unusable POSTGRES_URL, a refused option or
//	     host, a credential of the server (see Security)
//	401  no token, or a wrong one
//	403  WithoutAuth only: a browser request from another origin
//	404  unknown tenant, unknown route
//	405  method not allowed here (with an Allow header)
//	409  the tenant exists already (POST); its version changed (PUT)
//	413  body larger than WithMaxBodyBytes (default 64 KiB)
//	415  POST or PUT without Content-Type: application/json
//	503  the store failed; the cause goes to the log, not to the client
//
// Bad input never causes a 500. Field names are case-sensitive and may
// appear once; deploy_info must be an object of strings.
//
// # Security
//
// No password appears in an answer or a log line. Tenants are shown
// redacted; messages about a POSTGRES_URL show it through
// store.RedactURL; errors of pgx and of the network are not passed on,
// since their redaction is only "best effort": a parse error is described
// by parsing a copy of the URL without its secrets, and a failed health
// check shows the error with every occurrence of the tenant's passwords
// masked as "xxxxx" ("*****" or "#####" for a password with an x in it,
// so that no mask can spell it; a user or database name equal to the
// password is masked too).
// Redaction follows net/url, so a URL that pgx reads differently is
// refused: one whose user info holds a raw '@', '?' or '#', and one with a
// raw '#' anywhere (pgx reads on past it, net/url takes the rest for a
// fragment that is shown as it is).
//
// POSTGRES_URL is checked beyond what the store checks. It must start
// with postgres:// or postgresql:// (pgx reads anything else as a
// key=value string). Options by which the URL would name a file of the
// server are refused in any case: sslkey, sslcert, sslrootcert, sslcrl,
// sslcrldir, sslkeylogfile, passfile, servicefile and service. The URL
// must parse with pgx. These checks are store.ValidateUsable's, which the
// tenantsql command runs too, so that both refuse the same tenants with
// the same message; WithAllowedHosts and the server credentials below
// are this API's own.
//
// Every other deploy_info value that starts with postgres:// or
// postgresql:// is checked the same way, whatever its key (all the checks
// here, WithAllowedHosts and WithServerCredentials included): a *sql.DB
// can route by any key (driver.WithURLKey, such as ANALYTICS_URL for a
// tenant's second database), and the driver dials nothing that is not
// such a URL, so no key is a way around the checks.
//
// That does not stop pgx from reading this machine's own defaults, as it
// does for every program: the PG* environment variables (PGHOST, PGUSER,
// PGPASSWORD, PGSSLMODE, PGSERVICE, ...), the password file (PGPASSFILE
// or ~/.pgpass), the service file, the client certificate and key
// (PGSSLCERT and PGSSLKEY, or ~/.postgresql/postgresql.crt and .key) and
// the root certificates (PGSSLROOTCERT or ~/.postgresql/root.crt). What
// they fill in is judged on the result: unless WithServerCredentials is
// given, a URL is refused when pgx would connect with a credential it did
// not bring, that is with a password that is not the URL's own, with a
// client certificate (the URL cannot name one), or over a Unix socket,
// where the database may know the program by its operating-system user
// (peer authentication); a URL with no host means the local socket when
// one exists. See WithServerCredentials for why that is the default.
// Settings that are no credentials still come from the environment: a
// user, database, host or port the URL leaves out, sslmode, root
// certificates. WithAllowedHosts checks the hosts pgx settled on,
// environment included. The API cannot see two other kinds of authority:
// a Kerberos ticket, if the program registers a GSS provider with pgx,
// and authentication the database grants by address (trust or ident in
// pg_hba.conf); WithAllowedHosts is the guard against the latter.
//
// WithAllowedHosts limits the hosts a URL may point at, against server-side
// request forgery: without it a client of the API can make the program
// connect anywhere it can reach. The rule: every host of the URL as pgx
// reads it (a list "h1,h2", a host= parameter, or the default when there
// is none) must be a TCP host, not a Unix socket, and every address it
// resolves to now must be in an allowed prefix. Entries are IP addresses,
// CIDR prefixes or host names; a name entry is resolved once, when New
// runs, and allows the addresses it had then, not the name: a name is no
// promise about where it will point later. Names in URLs are resolved
// with WithResolver's resolver when the tenant is created or updated; the
// driver resolves them again when it connects, so only IP literals in
// URLs are immune to a DNS answer that changes in between.
//
// Bodies are read through http.MaxBytesReader (WithMaxBodyBytes). Answers
// carry Cache-Control: no-store.
//
// Every create, update and delete, allowed or refused, is logged at
// level Info (WithLogger): the action, the tenant id, the client's
// address, the outcome and status, and the error answered or the redacted
// URL stored. Refused authentication is logged at level Warn.
package api
