package keyring

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Static is a KeyProvider holding a fixed list of keys, the first of them
// the primary.
type Static struct {
	keys []Key
}

var _ KeyProvider = (*Static)(nil)

// errNoKeys: a Static without keys, such as its zero value.
var errNoKeys = fmt.Errorf("%w: no keys (make a Static with NewStatic, ParseKeys or ReadKeyFile)", ErrBadKey)

// NewStatic returns a provider of keys, keys[0] the primary. Ids must be
// distinct and every key KeySize bytes. Errors name a key by its position
// (key 1 is keys[0]) and, once it is known to be a valid id, its id.
func NewStatic(keys ...Key) (*Static, error) {
	if len(keys) == 0 {
		return nil, errNoKeys
	}
	s := &Static{keys: make([]Key, len(keys))}
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		if slices.ContainsFunc(keys[:i], func(o Key) bool { return o.ID == k.ID }) {
			return nil, fmt.Errorf("%w: key %d: id %q given twice", ErrBadKey, i+1, k.ID)
		}
		s.keys[i] = Key{ID: k.ID, Secret: slices.Clone(k.Secret)}
	}
	return s, nil
}

// PrimaryKey implements KeyProvider. The key is a copy: changing its
// Secret does not change s. A Static without keys (its zero value)
// returns an error wrapping ErrBadKey.
func (s *Static) PrimaryKey() (Key, error) {
	if s == nil || len(s.keys) == 0 {
		return Key{}, errNoKeys
	}
	return s.keys[0].clone(), nil
}

// Key implements KeyProvider. The key is a copy, as for PrimaryKey.
func (s *Static) Key(id string) (Key, error) {
	if s == nil {
		return Key{}, ErrUnknownKey
	}
	for _, k := range s.keys {
		if k.ID == id {
			return k.clone(), nil
		}
	}
	return Key{}, ErrUnknownKey
}

// IDs returns the ids of the keys, the primary first.
func (s *Static) IDs() []string {
	if s == nil {
		return nil
	}
	ids := make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i] = k.ID
	}
	return ids
}

// ParseKeys reads keys written as the TENANTSQL_KEYS environment variable
// holds them: ID:BASE64KEY entries separated by commas or newlines, the
// first the primary. Each key is 32 bytes in standard or URL base64,
// padded or not (openssl rand -base64 32 makes one). Blank lines and
// lines starting with # are ignored. Errors name the entry by its
// position (entry 1 is the first) and say what is wrong with it, never
// showing any of it: an entry written the wrong way round (KEY:ID) would
// otherwise have its key shown as its id. An id that is itself a key (it
// decodes to KeySize bytes, as in KEYA:KEYB) is refused: ids are written
// in clear into every sealed value.
func ParseKeys(text string) (*Static, error) {
	var keys []Key
	n := 0
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for entry := range strings.SplitSeq(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			n++
			id, b64, ok := strings.Cut(entry, ":")
			if !ok {
				return nil, fmt.Errorf("%w: entry %d is not ID:BASE64KEY", ErrBadKey, n)
			}
			if err := checkEntry(id, b64); err != nil {
				return nil, fmt.Errorf("%w: entry %d: %s", ErrBadKey, n, err)
			}
			secret, _ := decodeKey(b64)
			if i := slices.IndexFunc(keys, func(k Key) bool { return k.ID == id }); i >= 0 {
				return nil, fmt.Errorf("%w: entry %d has the id of entry %d: ids must be distinct", ErrBadKey, n, i+1)
			}
			keys = append(keys, Key{ID: id, Secret: secret})
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys (want ID:BASE64KEY entries, the first the primary)", ErrBadKey)
	}
	return NewStatic(keys...)
}

// checkEntry checks one ID:BASE64KEY entry of ParseKeys. Its error shows
// no part of the entry, as either part may be the key.
func checkEntry(id, b64 string) error {
	secret, keyErr := decodeKey(b64)
	if k, err := decodeKey(id); err == nil && len(k) == KeySize && validID(b64) && (keyErr != nil || len(secret) != KeySize) {
		return errors.New("it reads as KEY:ID, the wrong way round: write ID:BASE64KEY")
	}
	if !validID(id) {
		return errors.New("the id (before the colon) is not 1 to 64 bytes of [A-Za-z0-9_.-]; the format is ID:BASE64KEY")
	}
	if keyErr != nil {
		return errors.New("the key (after the colon) is not base64")
	}
	if len(secret) != KeySize {
		return fmt.Errorf("the key is %d bytes, want %d (AES-256; make one with: openssl rand -base64 32)", len(secret), KeySize)
	}
	// KEYA:KEYB, a key pasted where the id goes: the id is written in
	// clear into every value sealed with the key, so key material there
	// would be at rest beside every ciphertext.
	if k, err := decodeKey(id); err == nil && len(k) == KeySize {
		return errors.New("the id (before the colon) reads as a key: ids are written in clear into every sealed value, so give a short name (k1, 2026-01, ...), as ID:BASE64KEY")
	}
	return nil
}

// ReadKeyFile reads keys from a file in the format of ParseKeys, which
// should be readable by the program's user only.
func ReadKeyFile(path string) (*Static, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: key file: %w", err)
	}
	s, err := ParseKeys(string(data))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return s, nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
