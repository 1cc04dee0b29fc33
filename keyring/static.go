package keyring

import (
	"encoding/base64"
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

// NewStatic returns a provider of keys, keys[0] the primary. Ids must be
// distinct and every key KeySize bytes.
func NewStatic(keys ...Key) (*Static, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrBadKey)
	}
	s := &Static{keys: make([]Key, len(keys))}
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(keys[:i], func(o Key) bool { return o.ID == k.ID }) {
			return nil, fmt.Errorf("%w: id %q given twice", ErrBadKey, k.ID)
		}
		s.keys[i] = Key{ID: k.ID, Secret: slices.Clone(k.Secret)}
	}
	return s, nil
}

// PrimaryKey implements KeyProvider.
func (s *Static) PrimaryKey() (Key, error) { return s.keys[0], nil }

// Key implements KeyProvider.
func (s *Static) Key(id string) (Key, error) {
	for _, k := range s.keys {
		if k.ID == id {
			return k, nil
		}
	}
	return Key{}, ErrUnknownKey
}

// IDs returns the ids of the keys, the primary first.
func (s *Static) IDs() []string {
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
// lines starting with # are ignored. Errors name the entry by its id or
// position, never its key.
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
			secret, err := decodeKey(b64)
			if err != nil {
				return nil, fmt.Errorf("%w %q: the key is not base64", ErrBadKey, clip(id))
			}
			keys = append(keys, Key{ID: id, Secret: secret})
		}
	}
	return NewStatic(keys...)
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
