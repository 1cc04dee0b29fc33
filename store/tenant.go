package store

import (
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
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
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
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
// (PASSWORD, SECRET, TOKEN, KEY) are replaced entirely.
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

func redactValue(key, v string) string {
	k := strings.ToUpper(key)
	for _, s := range []string{"PASSWORD", "SECRET", "TOKEN", "KEY"} {
		if strings.Contains(k, s) {
			return redactedPassword
		}
	}
	if strings.Contains(v, "://") {
		return RedactURL(v)
	}
	return v
}

// RedactURL returns rawURL with any password (in the user info or in a
// password= query parameter) replaced by "xxxxx". A string that does not
// parse as a URL is not echoed at all, since it may be a password.
func RedactURL(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", redactedPassword)
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
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
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the input, password and all: keep only the cause.
		var msg string
		if ue, ok := err.(*url.Error); ok {
			msg = ue.Err.Error()
		}
		return &ValidationError{Field: field, Reason: "not a URL: " + msg}
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return &ValidationError{Field: field, Value: RedactURL(raw), Reason: "scheme must be postgres:// or postgresql://"}
	}
	if u.Opaque != "" {
		return &ValidationError{Field: field, Value: RedactURL(raw), Reason: "must be of the form postgres://[user[:password]@]host[:port]/dbname"}
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

// shorten keeps error messages bounded when the input is huge.
func shorten(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
