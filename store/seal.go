package store

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/tenantsql/tenantsql/keyring"
)

// Secrets at rest: a store given a keyring (WithFileKeys, WithRedisKeys,
// WithKeys, or keys=env / keys_file= in its URL) seals the secret values of
// deploy_info when it writes a tenant and opens them when it reads one, so
// that what is in memory, and what watchers, the driver and hooks see, is
// plaintext, and what is in the file or in Redis is not.
//
// What sealing guarantees: confidentiality of each sealed value, and the
// integrity of each sealed value as a whole, bound to its tenant, its
// field and its key id (AES-GCM with those as authenticated data): it
// cannot be altered, or moved to another tenant or field, without the
// key. What it does not: a value in clear cannot be authenticated, so a
// store is "sealed" once rekey has left no secret in clear (the Redis
// sealed key set to "all"; a file that holds sealed values and no secret
// in clear, as this process read or wrote it), and from then a process
// with keys refuses a secret in clear (ErrPlaintext) rather than use a
// value someone with write access but no key put there. Nor can it tell a
// sealed value from an older one of the same tenant and field: someone
// with write access can put back an earlier sealed value (an old
// password, or an old URL). That takes versioned authenticated data; see
// SECURITY.md.

// ErrNoKeys: the store holds sealed values and this process has no keys.
// A create or update is refused with it, as it would put passwords in
// clear into a store whose other tenants are sealed. A delete is not: it
// writes no secret.
var ErrNoKeys = errors.New("the store holds sealed secrets and this process has no keys: set TENANTSQL_KEYS (store URL option keys=env, or keys_file=PATH)")

// ErrPlaintext: a secret value is in clear in a store whose secrets are
// all sealed (see PlaintextError).
var ErrPlaintext = errors.New("secret in clear in a sealed store")

// PlaintextError says that a tenant read from a store whose secrets are
// all sealed holds one in clear, which a process with keys refuses: only
// a process without keys (which a sealed store refuses), an older
// tenantsql, or someone with write access to the file or to Redis writes
// one so, and the last could thus point a tenant at a server of theirs.
// It names the tenant and the key, not the value, and wraps ErrPlaintext.
type PlaintextError struct {
	Tenant string
	Field  string // the deploy_info key
}

func (e *PlaintextError) Error() string {
	return fmt.Sprintf("tenant %q: deploy_info.%s is in clear in a store whose secrets are sealed: refused, as it may have been put there by someone who can write the store but has no key; "+
		"if an operator wrote it so, seal it with: tenantsql tenants rekey", e.Tenant, e.Field)
}

func (e *PlaintextError) Unwrap() error { return ErrPlaintext }

// checkNoPlaintext returns a *PlaintextError if info, as it is at rest,
// holds a secret value in clear, for the first such key in sorted order.
func checkNoPlaintext(id string, info map[string]string) error {
	var first string
	for k, v := range info {
		if isSecretValue(k, v) && (first == "" || k < first) {
			first = k
		}
	}
	if first == "" {
		return nil
	}
	return &PlaintextError{Tenant: id, Field: first}
}

// isSecretValue reports whether the value of deploy_info key is sealed at
// rest: it is not sealed already, and its key names a secret
// (secretKeyWords), or it is the tenant's POSTGRES_URL, or it is a URL (it
// holds "://", whatever the scheme) or a DSN with a password. The rule
// goes by the key and the form of the value, never by whether a password
// is in it: a URL without one (postgres://app@db/x, its password taken
// from PGPASSWORD or .pgpass) still says where a tenant's connections go,
// so one put in clear in a sealed store by someone without the key would
// otherwise be served, pointing the tenant at a server of theirs. A URL is
// sealed whole, not just its password: its other parts could otherwise be
// changed without the key, and no parser has to agree on where its
// passwords are. What is hidden from logs (redactValue) is a rule of its
// own: a URL without a password is logged as it is.
func isSecretValue(key, v string) bool {
	return !keyring.IsSealed(v) && (secretKey(key) || hidesSecret(key, v))
}

// sealInfo returns info as it is written at rest: the secret values of
// tenant id sealed with kr's primary key. Values already sealed (ones this
// process could not open) are written as they are. Without a keyring info
// is returned as it is.
func sealInfo(kr *keyring.Keyring, id string, info map[string]string) (map[string]string, error) {
	return sealCached(kr, "", id, info, nil, nil)
}

// A sealCache holds the sealed form of secret values a file store read or
// wrote, by tenant id and deploy_info key, so that a write seals only the
// values that changed. Every write rewrites the whole file: sealing every
// tenant again would spend the CPU, and a random nonce of the number a
// GCM key can safely take, on each, and change every ciphertext in the
// file at each write. A File's mu guards its cache.
type sealCache map[string]map[string]sealedValue

// A sealedValue is a value in clear, and its sealed form.
type sealedValue struct{ plain, sealed string }

// add records that sealed is plain sealed for key k of tenant id.
func (c sealCache) add(id, k, plain, sealed string) {
	m := c[id]
	if m == nil {
		m = make(map[string]sealedValue)
		c[id] = m
	}
	m[k] = sealedValue{plain, sealed}
}

// sealCached is sealInfo, reusing the sealed form that old holds of a
// value that has not changed, if it was sealed with primary (the primary
// key's id), and adding the sealed form of every value to next. old and
// next may be nil.
func sealCached(kr *keyring.Keyring, primary, id string, info map[string]string, old, next sealCache) (map[string]string, error) {
	if kr == nil {
		return info, nil
	}
	out, cloned := info, false // info may be the store's: copy before changing
	for k, v := range info {
		if !isSecretValue(k, v) {
			continue
		}
		s := ""
		if c, ok := old[id][k]; ok && c.plain == v {
			if keyID, _ := keyring.KeyID(c.sealed); keyID == primary {
				s = c.sealed
			}
		}
		if s == "" {
			var err error
			if s, err = kr.Seal(id, k, v); err != nil {
				return nil, fmt.Errorf("tenant %q: seal deploy_info.%s: %w", id, k, err)
			}
		}
		if next != nil {
			next.add(id, k, v, s)
		}
		if !cloned {
			out, cloned = maps.Clone(info), true
		}
		out[k] = s
	}
	return out, nil
}

// openInfo returns info as it is held in memory: its sealed values opened.
// A value that cannot be opened (no keys, an unknown key, a value altered
// or moved) stays sealed, which makes the tenant unusable: the driver
// refuses a sealed URL with an error naming the tenant and the key. err,
// a *keyring.OpenError, says why, for the first such key in sorted order.
func openInfo(kr *keyring.Keyring, id string, info map[string]string) (map[string]string, error) {
	var sealed []string
	for k, v := range info {
		if keyring.IsSealed(v) {
			sealed = append(sealed, k)
		}
	}
	if len(sealed) == 0 {
		return info, nil
	}
	slices.Sort(sealed)
	out := maps.Clone(info)
	var first error
	for _, k := range sealed {
		var err error
		if kr == nil {
			keyID, _ := keyring.KeyID(info[k])
			err = &keyring.OpenError{Tenant: id, Field: k, KeyID: keyID, Err: errNoKeysToOpen}
		} else {
			var plain string
			if plain, err = kr.Open(id, k, info[k]); err == nil {
				out[k] = plain
			}
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return out, first
}

var errNoKeysToOpen = errors.New("this process has no keys (set TENANTSQL_KEYS, or the store URL option keys=env or keys_file=PATH)")

// logUnopened logs the tenants whose secrets could not be opened, in one
// line however many: a process without a key would otherwise log every
// tenant at every resync. The line names each tenant's key id and why, up
// to maxLoggedUnopened of them, and never a value.
func logUnopened(log *slog.Logger, store string, errs []error) {
	if len(errs) == 0 {
		return
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	shown := make([]string, 0, min(len(errs), maxLoggedUnopened))
	for _, err := range errs[:min(len(errs), maxLoggedUnopened)] {
		shown = append(shown, err.Error())
	}
	log.Error("tenantsql: store: tenants whose secrets cannot be opened; each is unusable until its key is configured or it is written again",
		"store", store, "tenants", len(errs), "errors", shown)
}

const maxLoggedUnopened = 10

// hasSealed reports whether a value of info is sealed.
func hasSealed(info map[string]string) bool {
	for _, v := range info {
		if keyring.IsSealed(v) {
			return true
		}
	}
	return false
}

// IsSealed reports whether t holds a value this process could not open
// (see OpenFile and OpenRedis on keys): the tenant is unusable until the
// key that sealed it is configured, or it is written again.
func (t Tenant) IsSealed() bool { return hasSealed(t.DeployInfo) }

// keysFromURL reads the keys a store URL names: keys=env takes them from
// the TENANTSQL_KEYS environment variable, keys_file=PATH from a file (see
// keyring.ParseKeys for the format). It returns nil if the URL names none.
func keysFromURL(keys, keysFile string, hasKeys, hasFile bool) (*keyring.Keyring, error) {
	switch {
	case hasKeys && hasFile:
		return nil, errors.New("options keys and keys_file: give one")
	case hasKeys && keys != "env":
		return nil, fmt.Errorf("option keys=%q: want keys=env (the keys in TENANTSQL_KEYS) or keys_file=PATH", shorten(keys))
	case hasKeys:
		env := os.Getenv("TENANTSQL_KEYS")
		if env == "" {
			return nil, errors.New("option keys=env: TENANTSQL_KEYS is empty (want ID:BASE64KEY[,ID:BASE64KEY...], the first the primary)")
		}
		s, err := keyring.ParseKeys(env)
		if err != nil {
			return nil, fmt.Errorf("TENANTSQL_KEYS: %w", err)
		}
		return keyring.New(s), nil
	case hasFile:
		s, err := keyring.ReadKeyFile(keysFile)
		if err != nil {
			return nil, err
		}
		return keyring.New(s), nil
	}
	return nil, nil
}
