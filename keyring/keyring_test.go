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
		{"not base64", "k1:%%%%", nil, `"k1": the key is not base64`},
		{"duplicate", "k1:" + b64(1) + ",k1:" + b64(2), nil, `"k1" given twice`},
		{"bad id", "k 1:" + b64(1), nil, "want 1 to 64 bytes"},
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

func TestKeyDoesNotPrint(t *testing.T) {
	k := key("k1", 'A')
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%#v", k), fmt.Sprintf("%v", []keyring.Key{k})} {
		if strings.Contains(s, "AAAA") {
			t.Fatalf("key printed with its secret: %s", s)
		}
	}
}
