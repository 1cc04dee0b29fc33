package keyring_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/keyring"
)

func key(id string, b byte) keyring.Key {
	return keyring.Key{ID: id, Secret: bytes.Repeat([]byte{b}, keyring.KeySize)}
}

func ring(t *testing.T, keys ...keyring.Key) *keyring.Keyring {
	t.Helper()
	s, err := keyring.NewStatic(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return keyring.New(s)
}

const secret = "postgres://app:s3cr3t-pw@db.internal:5432/tenant_one"

func TestSealOpen(t *testing.T) {
	k1, k2 := key("k1", 1), key("k2", 2)
	sealed, err := ring(t, k1).Seal("t1", "POSTGRES_URL", secret)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "s3cr3t") || strings.Contains(sealed, "db.internal") {
		t.Fatalf("sealed value shows the plaintext: %s", sealed)
	}
	if !strings.HasPrefix(sealed, "enc:v1:k1:") {
		t.Fatalf("sealed = %s, want the prefix enc:v1:k1:", sealed)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(sealed, keyring.Prefix), ":")
	body := sealed[len(keyring.Prefix)+len(id)+1:]
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-1] ^= 1
	tampered := keyring.Prefix + "k1:" + base64.RawURLEncoding.EncodeToString(flipped)

	tests := []struct {
		name          string
		ring          *keyring.Keyring
		tenant, field string
		value         string
		want          error // nil: opens to secret
	}{
		{"round trip", ring(t, k1), "t1", "POSTGRES_URL", sealed, nil},
		{"rotation: old key still opens", ring(t, k2, k1), "t1", "POSTGRES_URL", sealed, nil},
		{"unknown key id", ring(t, k2), "t1", "POSTGRES_URL", sealed, keyring.ErrUnknownKey},
		{"wrong key under the same id", ring(t, key("k1", 9)), "t1", "POSTGRES_URL", sealed, keyring.ErrTampered},
		{"tampered ciphertext", ring(t, k1), "t1", "POSTGRES_URL", tampered, keyring.ErrTampered},
		{"moved to another tenant", ring(t, k1), "t2", "POSTGRES_URL", sealed, keyring.ErrTampered},
		{"moved to another field", ring(t, k1), "t1", "API_TOKEN", sealed, keyring.ErrTampered},
		{"relabelled key id", ring(t, k1, key("k3", 1)), "t1", "POSTGRES_URL", strings.Replace(sealed, ":k1:", ":k3:", 1), keyring.ErrTampered},
		{"truncated", ring(t, k1), "t1", "POSTGRES_URL", sealed[:len(keyring.Prefix)+10], keyring.ErrMalformed},
		{"not base64", ring(t, k1), "t1", "POSTGRES_URL", "enc:v1:k1:!!!!", keyring.ErrMalformed},
		{"no key id", ring(t, k1), "t1", "POSTGRES_URL", "enc:v1:", keyring.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ring.Open(tt.tenant, tt.field, tt.value)
			if tt.want == nil {
				if err != nil || got != secret {
					t.Fatalf("Open = %q, %v; want the secret", got, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			var oe *keyring.OpenError
			if !errors.As(err, &oe) || oe.Tenant != tt.tenant || oe.Field != tt.field {
				t.Fatalf("error %#v does not name tenant %q and field %q", err, tt.tenant, tt.field)
			}
			if msg := err.Error(); strings.Contains(msg, "s3cr3t") || strings.Contains(msg, body[:20]) {
				t.Fatalf("error shows the secret or the ciphertext: %s", msg)
			}
			if got != "" {
				t.Fatalf("Open returned %q with an error", got)
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	r := ring(t, key("k1", 1))
	a, _ := r.Seal("t1", "F", "same")
	b, _ := r.Seal("t1", "F", "same")
	if a == b {
		t.Fatal("two seals of one value are equal: the nonce is not fresh")
	}
}

func TestErrorNamesKey(t *testing.T) {
	sealed, _ := ring(t, key("old-2025", 1)).Seal("acme", "POSTGRES_URL", secret)
	_, err := ring(t, key("new", 2)).Open("acme", "POSTGRES_URL", sealed)
	want := `tenant "acme": deploy_info.POSTGRES_URL, sealed with key "old-2025": keyring: unknown key`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
}

func TestParseKeys(t *testing.T) {
	b64 := func(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }
	url := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))
	tests := []struct {
		name, in string
		ids      []string
		err      string // substring; "" for success
	}{
		{"one", "k1:" + b64(1), []string{"k1"}, ""},
		{"primary first", "k2:" + b64(2) + ", k1:" + b64(1), []string{"k2", "k1"}, ""},
		{"lines and comments", "# keys\nk2:" + b64(2) + "\n\nk1:" + b64(1) + "\n", []string{"k2", "k1"}, ""},
		{"url base64", "k1:" + url, []string{"k1"}, ""},
		{"empty", " ", nil, "no keys"},
		{"no colon", b64(1), nil, "entry 1 is not ID:BASE64KEY"},
		{"short key", "k1:" + base64.StdEncoding.EncodeToString([]byte("short")), nil, "5 bytes, want 32"},
		{"not base64", "k1:%%%%", nil, "entry 1: the key (after the colon) is not base64"},
		{"duplicate", "k1:" + b64(1) + ",k1:" + b64(2), nil, "entry 2 has the id of entry 1"},
		{"bad id", "k 1:" + b64(1), nil, "entry 1: the id (before the colon) is not 1 to 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := keyring.ParseKeys(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, keyring.ErrBadKey) {
					t.Fatalf("error = %v, want ErrBadKey containing %q", err, tt.err)
				}
				if strings.Contains(err.Error(), b64(1)) {
					t.Fatalf("error shows a key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(s.IDs()); got != fmt.Sprint(tt.ids) {
				t.Fatalf("ids = %s, want %v", got, tt.ids)
			}
		})
	}
}

// TestParseKeysErrorsHideKeys: an entry written the wrong way round, or
// otherwise malformed, is named by its position, and no part of its key
// is in the error.
func TestParseKeysErrorsHideKeys(t *testing.T) {
	raw := bytes.Repeat([]byte{0x5a, 0xa5, 0x3c}, 11)[:32]
	std := base64.StdEncoding.EncodeToString(raw)    // WqU8WqU8...: letters and digits only, a valid id
	url := base64.RawURLEncoding.EncodeToString(raw) // likewise, unpadded
	plus := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xef}, 16))
	good := "k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	tests := []struct {
		name, in, want string
	}{
		{"key before id", good + "," + std + ":k2", "entry 2: it reads as KEY:ID, the wrong way round"},
		{"unpadded key before id", good + "\n" + url + ":k2", "entry 2: it reads as KEY:ID, the wrong way round"},
		{"key with + / before id", plus + ":k1", "entry 1: it reads as KEY:ID, the wrong way round"},
		{"key as the id, short key", url + ":" + base64.StdEncoding.EncodeToString([]byte("short")), "entry 1: the key is 5 bytes, want 32"},
		{"key as the id, key not base64", "k1:" + std + "," + url + ":%%", "entry 2: the key (after the colon) is not base64"},
		{"key as the id", good + "," + url + ":" + std, "entry 2: the id (before the colon) reads as a key"},
		{"padded key as the id", good + "," + std + ":" + url, "entry 2: the id (before the colon) is not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := keyring.ParseKeys(strings.ReplaceAll(tt.in, "\\n", "\n"))
			if !errors.Is(err, keyring.ErrBadKey) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want ErrBadKey containing %q", err, tt.want)
			}
			for _, k := range []string{std, url, plus} {
				// Any 8 characters of the key would be too many.
				for i := 0; i+8 <= len(k); i++ {
					if strings.Contains(err.Error(), k[i:i+8]) {
						t.Fatalf("error shows part of a key (%q): %v", k[i:i+8], err)
					}
				}
			}
		})
	}
}

// TestStaticCopies: the keys a Static hands out are copies, and a zero
// Static is an error, not a panic.
func TestStaticCopies(t *testing.T) {
	s, err := keyring.NewStatic(key("k1", 1))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := s.PrimaryKey()
	k.Secret[0] = 99
	k, _ = s.Key("k1")
	k.Secret[1] = 99
	if k, _ := s.PrimaryKey(); !bytes.Equal(k.Secret, bytes.Repeat([]byte{1}, 32)) {
		t.Fatal("changing a key handed out changed the Static's")
	}
	var zero keyring.Static
	if _, err := zero.PrimaryKey(); !errors.Is(err, keyring.ErrBadKey) {
		t.Fatalf("zero Static: PrimaryKey error = %v, want ErrBadKey", err)
	}
	if _, err := keyring.New(&zero).Seal("t1", "POSTGRES_URL", secret); !errors.Is(err, keyring.ErrBadKey) {
		t.Fatalf("Seal with a zero Static: %v, want ErrBadKey", err)
	}
	if _, err := zero.Key("k1"); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Fatalf("zero Static: Key error = %v, want ErrUnknownKey", err)
	}
}

// liar answers every request with its one key, whatever the id asked for.
type liar struct{ k keyring.Key }

func (l liar) PrimaryKey() (keyring.Key, error) { return l.k, nil }
func (l liar) Key(string) (keyring.Key, error)  { return l.k, nil }

// TestProviderWrongKey: a provider that answers with a key of another id
// is an error naming both ids, not a key used under the wrong id.
func TestProviderWrongKey(t *testing.T) {
	sealed, err := ring(t, key("k1", 1)).Seal("t1", "POSTGRES_URL", secret)
	if err != nil {
		t.Fatal(err)
	}
	_, err = keyring.New(liar{key("k2", 1)}).Open("t1", "POSTGRES_URL", sealed)
	if !errors.Is(err, keyring.ErrBadKey) || !strings.Contains(err.Error(), `"k1" with key "k2"`) {
		t.Fatalf("Open with a provider that returns k2 for k1: %v, want ErrBadKey naming both", err)
	}
}

func TestKeyDoesNotPrint(t *testing.T) {
	k := key("k1", 'A')
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%#v", k), fmt.Sprintf("%v", []keyring.Key{k})} {
		if strings.Contains(s, "AAAA") {
			t.Fatalf("key printed with its secret: %s", s)
		}
	}
}
