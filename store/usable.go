package store

import (
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantsql/tenantsql/internal/pgurl"
)

// fileParams are the connection parameters that make pgx (or libpq, for
// a program handed the same URL) read or write a file of the machine that
// connects: a private key, a password file, a service file that may also
// redirect the connection. ValidateUsable refuses a tenant URL that names
// one, whatever its case: whoever writes a tenant has no business naming
// the files of the servers that will serve it.
var fileParams = []string{
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

// ValidateUsable checks t as Validate does, then every value of its
// deploy_info that is a postgres:// URL, POSTGRES_URL first and the
// others by key: each must pass ValidateURL, name no file (sslkey=,
// sslrootcert=, passfile=, service=, ...) and parse with pgx, which
// refuses, for example, a port above 65535.
// A tenant that fails here would be stored but never served, so both the
// admin API and the tenantsql command check with it before they write.
// What depends on who writes (the admin API's allowed hosts, its refusal
// of the server's own credentials) is checked by them on top.
//
// The error is a *ValidationError naming the field (deploy_info.KEY),
// with the URL redacted.
func ValidateUsable(t Tenant) error {
	// Validate first: it refuses URLs that pgx and net/url read
	// differently before anything echoes them.
	if err := Validate(t); err != nil {
		return err
	}
	if err := refusePlaceholders(t.DeployInfo); err != nil {
		return err
	}
	for _, k := range URLKeys(t.DeployInfo) {
		if err := validateUsableURL(k, t.DeployInfo[k]); err != nil {
			return err
		}
	}
	return nil
}

// refusePlaceholders refuses a deploy_info that holds what Redacted shows
// in place of a secret: "xxxxx" as a password or as the value of a key
// that names a secret, or a whole value withheld ("(unparsable URL)",
// "(ambiguous URL, not shown)"). Such a value was copied from an answer
// (an update form filled from GET, a tenant listed and written back):
// stored, it would replace the real secret with the mask.
func refusePlaceholders(info map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(info)) {
		v := info[k]
		switch {
		case v == pgurl.UnparsableText || v == pgurl.AmbiguousText:
			return &ValidationError{Field: "deploy_info." + k, Value: v,
				Reason: "this is what answers show in place of a value they withhold; give the value itself"}
		case secretKey(k) && v == pgurl.Mask:
			return &ValidationError{Field: "deploy_info." + k, Value: v,
				Reason: "this is what answers show in place of a secret; give the secret itself"}
		case !secretKey(k) && slices.Contains(pgurl.Secrets(v), pgurl.Mask):
			return &ValidationError{Field: "deploy_info." + k, Value: shorten(redactValue(k, v)),
				Reason: "its password is " + pgurl.Mask + ", what answers show in place of a password; give the password itself"}
		}
	}
	return nil
}

// URLKeys returns the keys of info whose values are postgres:// URLs,
// KeyPostgresURL first (when it is one), then the others sorted, so that the first error
// found does not depend on map order. A *sql.DB can route by any key
// (driver.WithURLKey), and the driver dials nothing that is not such a
// URL, so these are the values worth checking.
func URLKeys(info map[string]string) []string {
	var keys []string
	for k, v := range info {
		if k != KeyPostgresURL && pgurl.IsURL(v) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if pgurl.IsURL(info[KeyPostgresURL]) {
		keys = slices.Insert(keys, 0, KeyPostgresURL)
	}
	return keys
}

func validateUsableURL(key, raw string) error {
	if err := ValidateURL(key, raw); err != nil {
		return err
	}
	field := "deploy_info." + key
	shown := shorten(RedactURL(raw)) // ValidateURL accepted it: it redacts
	if k := fileParam(raw); k != "" {
		return &ValidationError{Field: field, Value: shown, Reason: fileParamReason(k)}
	}
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return &ValidationError{Field: field, Value: shown, Reason: "pgx cannot use it: " + shorten(pgurl.ParseFailure(raw, pgxParse))}
	}
	for k := range cfg.RuntimeParams {
		if slices.Contains(fileParams, strings.ToLower(k)) {
			return &ValidationError{Field: field, Value: shown, Reason: fileParamReason(k)}
		}
	}
	return nil
}

func fileParamReason(k string) string {
	return `option "` + k + `" reads a file on the server that connects, which a tenant may not name; ` +
		"set it in the environment of the servers that connect instead (for example PGSSLROOTCERT)"
}

// fileParam returns the first of fileParams among raw's query keys, or
// "". It looks at every key that any reader of the URL may see
// (pgurl.Keys), more than pgx's own parser sees: a refusal too many is
// better than a file read.
func fileParam(raw string) string {
	for k := range pgurl.Keys(raw) {
		if k = strings.ToLower(k); slices.Contains(fileParams, k) {
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
