package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

// Prefix starts every sealed value.
const Prefix = "enc:v1:"

// Sentinel errors, wrapped by *OpenError and by the errors of
// ParseKeys and NewStatic.
var (
	// ErrUnknownKey: the value was sealed with a key the provider does not
	// hold.
	ErrUnknownKey = errors.New("keyring: unknown key")
	// ErrTampered: the value does not authenticate under its key: it was
	// altered, moved to another tenant or field, or its key id relabelled.
	ErrTampered = errors.New("keyring: sealed value fails authentication (altered, moved, or sealed with another key of that id)")
	// ErrMalformed: the value starts as a sealed value but is not one.
	ErrMalformed = errors.New("keyring: malformed sealed value")
	// ErrBadKey: a key given to the keyring is not usable.
	ErrBadKey = errors.New("keyring: bad key")
)

// A Key is one AES-256 key and its id. The id is written in every value
// sealed with the key; it must never be reused for other key material.
type Key struct {
	ID     string // 1 to 64 bytes of [A-Za-z0-9_.-]
	Secret []byte // KeySize bytes
}

// clone returns k with a copy of its secret.
func (k Key) clone() Key { return Key{ID: k.ID, Secret: slices.Clone(k.Secret)} }

// String shows the id only.
func (k Key) String() string { return "key " + k.ID }

// GoString keeps %#v from printing the secret.
func (k Key) GoString() string { return k.String() }

// A KeyProvider hands out the keys of a Keyring. Implementations are safe
// for concurrent use. A Keyring asks for a key the first time it needs it
// and keeps it, so a key id must always name the same key material.
type KeyProvider interface {
	// PrimaryKey returns the key new values are sealed with.
	PrimaryKey() (Key, error)
	// Key returns the key with that id, or an error wrapping
	// ErrUnknownKey.
	Key(id string) (Key, error)
}

// A Keyring seals and opens values. It is safe for concurrent use.
type Keyring struct {
	p KeyProvider

	mu    sync.Mutex             // guards aeads
	aeads map[string]cipher.AEAD // by key id: built once per key
}

// New returns a keyring with the keys of p.
func New(p KeyProvider) *Keyring {
	return &Keyring{p: p, aeads: make(map[string]cipher.AEAD)}
}

// PrimaryID returns the id of the key Seal seals with.
func (k *Keyring) PrimaryID() (string, error) {
	key, err := k.p.PrimaryKey()
	if err != nil {
		return "", err
	}
	return key.ID, nil
}

// aead returns the cipher of key, building it at first use.
func (k *Keyring) aead(key Key) (cipher.AEAD, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if a, ok := k.aeads[key.ID]; ok {
		return a, nil
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(key.Secret)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadKey, key.ID, err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadKey, key.ID, err)
	}
	k.aeads[key.ID] = a
	return a, nil
}

// aad binds a sealed value to its tenant, its field and its key. The parts
// cannot hold a NUL byte (tenant ids, deploy_info keys and key ids are
// checked), so the encoding is unambiguous.
func aad(tenant, field, keyID string) []byte {
	return []byte("tenantsql/v1\x00" + tenant + "\x00" + field + "\x00" + keyID)
}

// Seal returns plaintext sealed with the primary key for the field of the
// tenant.
func (k *Keyring) Seal(tenant, field, plaintext string) (string, error) {
	key, err := k.p.PrimaryKey()
	if err != nil {
		return "", err
	}
	a, err := k.aead(key)
	if err != nil {
		return "", err
	}
	buf := make([]byte, a.NonceSize(), a.NonceSize()+len(plaintext)+a.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("keyring: nonce: %w", err)
	}
	buf = a.Seal(buf, buf, []byte(plaintext), aad(tenant, field, key.ID))
	return Prefix + key.ID + ":" + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open returns the plaintext of a value Seal sealed for the field of the
// tenant, with any key the provider holds. The error is an *OpenError.
func (k *Keyring) Open(tenant, field, sealed string) (string, error) {
	fail := func(id string, err error) (string, error) {
		return "", &OpenError{Tenant: tenant, Field: field, KeyID: id, Err: err}
	}
	id, body, ok := split(sealed)
	if !ok {
		return fail(id, ErrMalformed)
	}
	key, err := k.p.Key(id)
	if err != nil {
		return fail(id, err)
	}
	if key.ID != id {
		// The cipher is cached by key.ID and id is in the authenticated
		// data: a key under another id would be cached under the wrong
		// one, or fail as if the value had been tampered with.
		return fail(id, fmt.Errorf("%w: the key provider answered the request for key %q with key %q", ErrBadKey, id, key.ID))
	}
	a, err := k.aead(key)
	if err != nil {
		return fail(id, err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < a.NonceSize()+a.Overhead() {
		return fail(id, ErrMalformed)
	}
	n := a.NonceSize()
	out, err := a.Open(nil, raw[:n], raw[n:], aad(tenant, field, id))
	if err != nil {
		return fail(id, ErrTampered)
	}
	return string(out), nil
}

// IsSealed reports whether v is a sealed value (or is written like one).
func IsSealed(v string) bool { return strings.HasPrefix(v, Prefix) }

// KeyID returns the id of the key v says it was sealed with, and whether
// v is a sealed value.
func KeyID(v string) (string, bool) {
	id, _, ok := split(v)
	return id, ok
}

// split cuts a sealed value into its key id and body. The id is returned
// even when the rest is malformed, if it is a valid id, for the error.
func split(v string) (id, body string, ok bool) {
	rest, ok := strings.CutPrefix(v, Prefix)
	if !ok {
		return "", "", false
	}
	id, body, ok = strings.Cut(rest, ":")
	if !validID(id) {
		return "", "", false
	}
	return id, body, ok && body != ""
}

// OpenError says which sealed value could not be opened, and why. It
// holds neither the value nor a key.
type OpenError struct {
	Tenant string
	Field  string
	KeyID  string // empty if the value is too malformed to name one
	Err    error  // ErrUnknownKey, ErrTampered, ErrMalformed, or the provider's error
}

func (e *OpenError) Error() string {
	key := "an unnamed key"
	if e.KeyID != "" {
		key = fmt.Sprintf("key %q", e.KeyID)
	}
	return fmt.Sprintf("tenant %q: deploy_info.%s, sealed with %s: %v", e.Tenant, e.Field, key, e.Err)
}

func (e *OpenError) Unwrap() error { return e.Err }

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func checkKey(key Key) error {
	if !validID(key.ID) {
		// Not shown: an id that is not one may be key material given
		// in its place.
		return fmt.Errorf("%w: the id is not 1 to 64 bytes of [A-Za-z0-9_.-]", ErrBadKey)
	}
	if len(key.Secret) != KeySize {
		return fmt.Errorf("%w %q: %d bytes, want %d (AES-256; make one with: openssl rand -base64 32)", ErrBadKey, key.ID, len(key.Secret), KeySize)
	}
	return nil
}
