package keyring_test

import (
	"testing"

	"github.com/tenantsql/tenantsql/keyring"
)

// BenchmarkOpen measures opening one sealed POSTGRES_URL, what a store
// does per secret value when it reads a tenant.
//
//	go test -run '^$' -bench . ./keyring
func BenchmarkOpen(b *testing.B) {
	s, err := keyringFor(b).Seal("tenant-00001.bench.test", "POSTGRES_URL", secret)
	if err != nil {
		b.Fatal(err)
	}
	kr := keyringFor(b)
	for b.Loop() {
		if _, err := kr.Open("tenant-00001.bench.test", "POSTGRES_URL", s); err != nil {
			b.Fatal(err)
		}
	}
}

func keyringFor(b *testing.B) *keyring.Keyring {
	s, err := keyring.NewStatic(key("k1", 1))
	if err != nil {
		b.Fatal(err)
	}
	return keyring.New(s)
}
