package store

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tenantsql/tenantsql/internal/clip"
)

// KeyPostgresURL is the deploy_info key that holds a tenant's database URL.
const KeyPostgresURL = "POSTGRES_URL"

// Limits on what a tenant may hold. They keep one bad request from filling a
// store, and keep ids usable as Redis keys, log labels and database names.
const (
	MaxIDLen         = 128
	maxDeployKeys    = 64
	maxDeployKeyLen  = 128
	maxDeployValLen  = 8 << 10
	redactedPassword = "xxxxx" // what url.URL.Redacted writes
	unparsableURL    = "(unparsable URL)"
)

// A Tenant is one customer and where its data lives.
//
// Tenant values returned by a Store are copies: changing one changes nothing
// in the store.
type Tenant struct {
	// ID is 1 to 128 bytes of [a-z0-9._-], starting with a letter or digit,
	// compared byte for byte ("a-b" and "a.b" are different tenants).
	ID string `json:"tenant_id"`
	// DeployInfo holds at least KeyPostgresURL, a postgres:// URL; other
	// keys are kept as given.
	DeployInfo map[string]string `json:"deploy_info"`
	// Version starts at 1 and grows by one with every update. A non-zero
	// Version passed to Update makes it conditional on that version.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// PostgresURL returns the tenant's database URL, password included. Use
// RedactURL before showing it.
func (t Tenant) PostgresURL() string { return t.DeployInfo[KeyPostgresURL] }

// Clone returns a deep copy of t.
func (t Tenant) Clone() Tenant {
	t.DeployInfo = maps.Clone(t.DeployInfo)
	return t
}

// Redacted returns a copy of t that is safe to log or send: passwords in
// URLs are replaced by "xxxxx", and values under keys that name a secret
// (secretKeyWords: PASS, PWD, SECRET, TOKEN, KEY, AUTH, CREDENTIAL,
// PRIVATE, in any case and anywhere in the key) are replaced entirely.
func (t Tenant) Redacted() Tenant {
	t = t.Clone()
	for k, v := range t.DeployInfo {
		t.DeployInfo[k] = redactValue(k, v)
	}
	return t
}

// String describes t without secrets.
func (t Tenant) String() string {
	r := t.Redacted()
	keys := slices.Sorted(maps.Keys(r.DeployInfo))
	var b strings.Builder
	fmt.Fprintf(&b, "tenant %q (version %d", t.ID, t.Version)
	for _, k := range keys {
		fmt.Fprintf(&b, ", %s=%s", k, r.DeployInfo[k])
	}
	b.WriteString(")")
	return b.String()
}

// GoString keeps %#v from printing the password.
func (t Tenant) GoString() string { return t.String() }

// LogValue makes slog print the tenant without secrets.
func (t Tenant) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", t.ID),
		slog.Int64("version", t.Version),
		slog.String("postgres_url", RedactURL(t.PostgresURL())),
	)
}

// secretKeyWords mark a deploy_info key whose value is a secret. Broad on
// purpose: hiding a harmless value costs little, showing a password a lot.
var secretKeyWords = []string{"PASS", "PWD", "SECRET", "TOKEN", "KEY", "AUTH", "CREDENTIAL", "PRIVATE"}

func redactValue(key, v string) string {
	k := strings.ToUpper(key)
	for _, s := range secretKeyWords {
		if strings.Contains(k, s) {
			return redactedPassword
		}
	}
	// A key=value DSN holds its password in plain sight too; RedactURL
	// does not echo it.
	if key == KeyPostgresURL || strings.Contains(v, "://") || strings.Contains(strings.ToLower(v), "password=") {
		return RedactURL(v)
	}
	return v
}

// RedactURL returns rawURL with any password (in the user info or in a
// query parameter such as password= or sslpassword=) replaced by "xxxxx".
// A string that is not an absolute hierarchical URL (scheme://host/... or
// scheme:/path) is not echoed at all: a password may sit anywhere in a
// key=value DSN or in an opaque URL such as "postgres:user:pw@host".
func RedactURL(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	if readDifferently(rawURL) {
		return ambiguousURL
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return unparsableURL
	}
	u.RawQuery = redactQuery(u.RawQuery)
	return maskPasswordValues(u.Redacted())
}

// ambiguousURL stands for a URL that pgx and net/url would split
// differently, so that no redaction by net/url's reading can be trusted.
const ambiguousURL = "(ambiguous URL, not shown)"

// readDifferently reports whether pgx and net/url would read a URL
// differently in a way that matters for redaction: its user info (see
// ambiguousUserinfo), or a '#', which pgx reads as part of the query
// ("?a=b#&password=x" has a password) and net/url as the start of a
// fragment that redaction leaves alone.
func readDifferently(raw string) bool {
	return ambiguousUserinfo(raw) || strings.Contains(raw, "#")
}

// ambiguousUserinfo reports whether pgx and net/url would split raw's user
// info differently. pgx, like libpq, ends the user info at the first '@'
// before any '/'; net/url ends the authority at the first '/', '?' or '#'
// and takes the user info up to its last '@'. Where they differ, a
// redacted URL could show what pgx sends as the password.
func ambiguousUserinfo(raw string) bool {
	_, p, ok := strings.Cut(raw, "://")
	if !ok {
		return false
	}
	authEnd := strings.IndexAny(p, "/?#")
	if authEnd < 0 {
		authEnd = len(p)
	}
	at := strings.IndexAny(p, "@/")
	if at < 0 || p[at] != '@' {
		return false // neither sees user info
	}
	return at > authEnd || strings.Contains(p[at+1:authEnd], "@")
}

// maskPasswordValues replaces whatever follows "password=", in any case,
// up to the next '&', ';', '#', '?', '/' or space, by "xxxxx": a string
// that is not quite a URL ("x:/password=...") may hold one outside the
// query, where redactQuery does not look.
func maskPasswordValues(s string) string {
	const key = "password="
	if !strings.Contains(asciiLower(s), key) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(asciiLower(s), key)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := i + len(key)
		end := len(s)
		if k := strings.IndexAny(s[j:], "&;#?/ "); k >= 0 {
			end = j + k
		}
		b.WriteString(s[:j])
		b.WriteString(redactedPassword)
		s = s[end:]
	}
}

// asciiLower lowers ASCII letters only, byte by byte, so byte offsets stay
// those of s. (strings.ToLower and strings.Map change the length of some
// letters and of invalid UTF-8.)
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// redactQuery replaces the value of every query parameter whose name
// mentions a password, or does not unescape. It works on the raw pairs, split
// at '&' and ';', rather than on url.ParseQuery's result: that silently
// drops a pair with a bad escape ("password=50%off") or a ';', which would
// then be shown as it is. The order of the parameters is kept.
func redactQuery(raw string) string {
	var b strings.Builder
	for raw != "" {
		pair, rest, sep := raw, "", ""
		if i := strings.IndexAny(raw, "&;"); i >= 0 {
			pair, sep, rest = raw[:i], raw[i:i+1], raw[i+1:]
		}
		raw = rest
		key, _, hasValue := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(key)
		if hasValue && (err != nil || strings.Contains(strings.ToLower(name), "password")) {
			pair = key + "=" + redactedPassword
		}
		b.WriteString(pair)
		b.WriteString(sep)
	}
	return b.String()
}

// ValidateID reports whether id is a valid tenant id; the error is a
// *ValidationError.
func ValidateID(id string) error {
	switch {
	case id == "":
		return &ValidationError{Field: "tenant_id", Reason: "must not be empty"}
	case len(id) > MaxIDLen:
		return &ValidationError{Field: "tenant_id", Value: shorten(id), Reason: fmt.Sprintf("longer than %d bytes", MaxIDLen)}
	case !isLowerAlnum(id[0]):
		return &ValidationError{Field: "tenant_id", Value: shorten(id), Reason: "must start with a lowercase letter or digit"}
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isLowerAlnum(c) && c != '.' && c != '-' && c != '_' {
			return &ValidationError{Field: "tenant_id", Value: shorten(id), Reason: fmt.Sprintf("character %q at byte %d is not one of [a-z0-9._-]", c, i)}
		}
	}
	return nil
}

// Validate checks t.ID and t.DeployInfo: it must hold KeyPostgresURL, a
// postgres:// or postgresql:// URL; keys are 1 to 128 bytes of
// [A-Za-z0-9_] not starting with a digit; at most 64 keys of at most 8 KiB
// each. The error is a *ValidationError.
func Validate(t Tenant) error {
	if err := ValidateID(t.ID); err != nil {
		return err
	}
	if len(t.DeployInfo) == 0 {
		return &ValidationError{Field: "deploy_info", Reason: "must hold " + KeyPostgresURL}
	}
	if len(t.DeployInfo) > maxDeployKeys {
		return &ValidationError{Field: "deploy_info", Reason: fmt.Sprintf("more than %d keys", maxDeployKeys)}
	}
	for k, v := range t.DeployInfo {
		if !validKey(k) {
			return &ValidationError{Field: "deploy_info", Value: shorten(k), Reason: "keys are 1 to 128 bytes of [A-Za-z0-9_], not starting with a digit"}
		}
		if len(v) > maxDeployValLen {
			return &ValidationError{Field: "deploy_info." + k, Reason: fmt.Sprintf("longer than %d bytes", maxDeployValLen)}
		}
	}
	return validatePostgresURL(t.DeployInfo[KeyPostgresURL])
}

func validatePostgresURL(raw string) error {
	const field = "deploy_info." + KeyPostgresURL
	if raw == "" {
		return &ValidationError{Field: field, Reason: "is missing"}
	}
	// Before anything echoes the URL: redaction relies on net/url's
	// reading of it, and pgx reads these differently.
	if ambiguousUserinfo(raw) {
		return &ValidationError{Field: field, Reason: "the user name or password holds a raw '@', '?' or '#', which pgx and URL parsers read differently; percent-encode them (%40, %3F, %23)"}
	}
	if strings.Contains(raw, "#") {
		return &ValidationError{Field: field, Reason: "it holds a raw '#', which pgx reads as part of the query and URL parsers as a fragment; percent-encode it (%23)"}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return &ValidationError{Field: field, Reason: "not a URL: " + urlErrorReason(err)}
	}
	// RedactURL shows only what it can make safe.
	value := RedactURL(raw)
	if value == unparsableURL {
		value = ""
	}
	value = shorten(value)
	if !isPostgresURL(raw) {
		return &ValidationError{Field: field, Value: value, Reason: "scheme must be postgres:// or postgresql://"}
	}
	if u.Opaque != "" {
		return &ValidationError{Field: field, Value: value, Reason: "must be of the form postgres://[user[:password]@]host[:port]/dbname"}
	}
	return nil
}

// isPostgresURL reports whether pgx reads raw as a URL. net/url lowercases
// the scheme; pgx does not, and reads anything but these two prefixes as a
// key=value string.
func isPostgresURL(raw string) bool {
	return strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://")
}

// urlErrorReason says why url.Parse failed without repeating the input. The
// url.Error wrapper quotes all of it, and the cause may quote part of it:
// `invalid port ":pw" after host` for a password holding a '/'. Quoted
// parts are dropped.
func urlErrorReason(err error) string {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return "unknown error"
	}
	msg := ue.Err.Error()
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			b.WriteString(msg)
			break
		}
		b.WriteString(msg[:i])
		q, err := strconv.QuotedPrefix(msg[i:])
		if err != nil {
			break
		}
		msg = msg[i+len(q):]
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func validKey(k string) bool {
	if k == "" || len(k) > maxDeployKeyLen || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// shorten is clip.String, under the name the store's files call it by.
func shorten(s string) string { return clip.String(s) }
