package store

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantsql/tenantsql/internal/clip"
	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/keyring"
)

// KeyPostgresURL is the deploy_info key that holds a tenant's database URL.
const KeyPostgresURL = "POSTGRES_URL"

// Limits on what a tenant may hold. They keep one bad request from filling a
// store, and keep ids usable as Redis keys, log labels and database names.
const (
	MaxIDLen        = 128
	maxDeployKeys   = 64
	maxDeployKeyLen = 128
	maxDeployValLen = 8 << 10
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
	// A value this process could not open: its key id helps, and
	// nothing else of it is worth showing.
	if id, ok := keyring.KeyID(v); ok {
		return keyring.Prefix + id + ":" + pgurl.Mask
	}
	if secretKey(key) {
		return pgurl.Mask
	}
	if hidesSecret(key, v) {
		return RedactURL(v)
	}
	return v
}

// secretKey reports whether a deploy_info key names a secret
// (secretKeyWords).
func secretKey(key string) bool {
	k := strings.ToUpper(key)
	for _, s := range secretKeyWords {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// hidesSecret reports whether v may hold a password: a URL, or a
// key=value DSN, which holds its password in plain sight too.
func hidesSecret(key, v string) bool {
	return key == KeyPostgresURL || strings.Contains(v, "://") || dsnPassword.MatchString(v)
}

// dsnPassword matches a DSN's password setting and its value: pgx and
// libpq allow spaces around the '=' ("password = pw"), and quotes around
// the value ("password='p w'").
var dsnPassword = regexp.MustCompile(`(?i)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)?`)

// Secrets returns the secrets in info that Redacted hides: the values of
// keys that name a secret, and the passwords of URLs and DSNs. Masking
// them in a text (an error a hook returned, a server's message) hides
// what Redacted would, whatever the key.
func Secrets(info map[string]string) []string {
	var out []string
	for k, v := range info {
		switch {
		case secretKey(k):
			if v != "" {
				out = append(out, v)
			}
		case hidesSecret(k, v):
			out = append(out, pgurl.Secrets(v)...)
			out = append(out, dsnPasswords(v)...)
		}
	}
	return out
}

// dsnPasswords returns the passwords of a key=value DSN ("host=h
// password=pw"), which pgurl.Secrets, made for URLs, does not read: as
// pgx reads them, and as written, in case pgx cannot read the rest.
func dsnPasswords(v string) []string {
	var out []string
	if cfg, err := pgx.ParseConfig(v); err == nil && !pgurl.IsURL(v) && cfg.Password != "" {
		out = append(out, cfg.Password)
	}
	for _, m := range dsnPassword.FindAllStringSubmatch(v, -1) {
		if val := m[1]; val != "" {
			out = append(out, val, strings.Trim(val, "'"))
		}
	}
	return out
}

// RedactURL returns rawURL with any password (in the user info or in a
// query parameter such as password= or sslpassword=) replaced by "xxxxx".
// A string that is not an absolute hierarchical URL (scheme://host/... or
// scheme:/path) is not echoed at all: a password may sit anywhere in a
// key=value DSN or in an opaque URL such as "postgres:user:pw@host".
// Nor is a URL that pgx and URL parsers split differently.
func RedactURL(rawURL string) string { return pgurl.Redact(rawURL) }

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
		if keyring.IsSealed(v) {
			return &ValidationError{Field: "deploy_info." + k, Reason: "starts with " + keyring.Prefix + ", which marks a value the store sealed and could not open; give the plaintext (a store with keys seals it)"}
		}
	}
	return ValidateURL(KeyPostgresURL, t.DeployInfo[KeyPostgresURL])
}

// validateRead checks a tenant read from a store. One whose sealed values
// could not be opened (openErr) is checked for what can be checked, its
// id and its keys, and kept: it is unusable until its key is configured,
// which is better than dropping a tenant nobody deleted.
func validateRead(t Tenant, openErr error) error {
	if openErr == nil {
		return Validate(t)
	}
	if err := ValidateID(t.ID); err != nil {
		return err
	}
	for k := range t.DeployInfo {
		if !validKey(k) {
			return &ValidationError{Field: "deploy_info", Value: shorten(k), Reason: "keys are 1 to 128 bytes of [A-Za-z0-9_], not starting with a digit"}
		}
	}
	return nil
}

// ValidateURL checks raw, the value of deploy_info key, as Validate checks
// POSTGRES_URL: a postgres:// or postgresql:// URL that pgx and URL
// parsers read alike, so that its redacted form hides its password. The
// admin API checks with it every value of deploy_info that is a postgres
// URL, whatever its key: the driver can be told to route by any key
// (driver.WithURLKey). The error is a *ValidationError naming
// deploy_info.KEY.
func ValidateURL(key, raw string) error {
	field := "deploy_info." + key
	if raw == "" {
		return &ValidationError{Field: field, Reason: "is missing"}
	}
	// Before anything echoes the URL: redaction relies on net/url's
	// reading of it, and pgx reads these differently.
	if pgurl.AmbiguousUserinfo(raw) {
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
	if value == pgurl.UnparsableText {
		value = ""
	}
	value = shorten(value)
	if !pgurl.IsURL(raw) {
		return &ValidationError{Field: field, Value: value, Reason: "scheme must be postgres:// or postgresql://"}
	}
	if u.Opaque != "" {
		return &ValidationError{Field: field, Value: value, Reason: "must be of the form postgres://[user[:password]@]host[:port]/dbname"}
	}
	return nil
}

// isPostgresURL is pgurl.IsURL, under the name redis.go calls it by.
func isPostgresURL(raw string) bool { return pgurl.IsURL(raw) }

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

// ValidateKey checks a deploy_info key name as Validate checks the keys of
// a tenant: 1 to 128 bytes of [A-Za-z0-9_], not starting with a digit.
// Code that is told which key to read (the driver's WithURLKey) checks it
// with this, so a key no tenant can hold is refused at start-up instead
// of failing every query. The error is a *ValidationError.
func ValidateKey(key string) error {
	if !validKey(key) {
		return &ValidationError{Field: "deploy_info key", Value: shorten(key), Reason: "keys are 1 to 128 bytes of [A-Za-z0-9_], not starting with a digit"}
	}
	return nil
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
