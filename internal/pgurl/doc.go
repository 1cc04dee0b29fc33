// Package pgurl knows where a PostgreSQL URL keeps its passwords, as each
// program that reads the URL sees them, so that redaction, secret-free
// copies and checks of query keys all agree.
//
// Redact shows a URL without its passwords; Secrets lists them and
// GivesPassword tells whether a password pgx settled on came from the URL;
// ParseFailure says why pgx cannot parse a URL without quoting them; Keys
// lists the query keys that some reader of the URL may act on; RedactText
// masks passwords (Secrets) in text with no structure, such as an error
// message, so that the message can be shown.
//
// # Readers
//
// A postgres:// URL is read by parsers that split it differently, and a
// password is wherever any of them takes one to be.
//
// pgx (pgconn's URL parser, which follows libpq) reads a string as a URL
// only when it starts with postgres:// or postgresql://, in lowercase;
// anything else is key=value settings. The user info ends at the first
// '@' before any '/', even past a '?' or '#', and the user name at its
// first ':'. The query starts at the first '?' after the hosts (one inside
// an IPv6 "[...]" is host data), is split at '&' only, and runs to the
// end: pgx knows no fragment, so a '#' is data. Keys and values are
// percent-decoded (spaces around them dropped; a '%' not followed by two
// hex digits is an error), and a key that decodes to password or
// sslpassword sets a password.
//
// net/url, which Redact relies on as most logging and URL tools do, ends
// the authority at the first '/', '?' or '#', and takes the user info up
// to the authority's last '@'. The query runs from the first '?' to the
// first '#', which starts a fragment; url.ParseQuery splits it at '&'
// (and at ';' before Go 1.17, as some other servers still do).
//
// # Separator sets
//
// Where a parameter's value ends depends on the reader: pgx and net/url
// split a query at '&' only ("&"); net/url before Go 1.17, and some other
// servers, at ';' too ("&;"). Redact and the secret-free copy mask the
// query as each of them splits it, in turn, so that each reader's value
// is hidden whole: to pgx the password in "password=a;b" is "a;b", not
// "a".
//
// Where a parameter may start is wider: after any of '?', '&', ';' and
// '#', anywhere in the URL ("?&;#"). No reader splits at all four (pgx
// reads the "password" in "?a=b#&password=x", net/url takes it for part of
// a fragment), but every reader's keys start after one of them. So checks
// that must not miss a key read every such piece as a parameter too, up to
// the next of them: Redact (in the query), Secrets, Keys and the copy.
// They hide or refuse one too many, which costs little.
//
// Outside the query, a value that follows "password=" in what Redact
// shows runs to the next of "?&;#", a '/' or a space. This is Redact's
// last resort, for strings that are not quite URLs and keep a password
// in a path ("x:/password=...").
//
// A key names a password when, its valid escapes decoded, it contains
// "password" in any case (sslpassword, PASSWORD, db_password: pgx reads
// only the first, but a server, a proxy or a later pgx may read others), or
// when it holds a '%' not followed by two hex digits, which pgx refuses and
// url.ParseQuery drops along with its value.
//
// # Ambiguity
//
// Where pgx and net/url disagree on the user info, or the URL holds a '#',
// a redaction that follows net/url's reading could show what pgx sends as
// the password (Ambiguous). store.Validate refuses such URLs, and Redact
// does not show them. In a URL that pgx cannot parse, an '@' past the end
// of the user info as pgx sees it may end a password that holds a '/':
// pgx then takes parts of it for a port or a database name, and may quote
// them. ParseFailure quotes nothing of such a URL, nor of one whose user
// info is ambiguous.
package pgurl
