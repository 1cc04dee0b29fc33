package keyring_test

import (
	"fmt"
	"strings"

	"github.com/tenantsql/tenantsql/keyring"
)

func Example() {
	// In production the keys come from TENANTSQL_KEYS or a key file;
	// make one with: openssl rand -base64 32
	keys, err := keyring.ParseKeys("k2:" + strings.Repeat("B", 43) + "=,k1:" + strings.Repeat("A", 43) + "=")
	if err != nil {
		panic(err)
	}
	kr := keyring.New(keys)
	sealed, err := kr.Seal("tenant-1", "POSTGRES_URL", "postgres://app:secret@db/one")
	if err != nil {
		panic(err)
	}
	id, _ := keyring.KeyID(sealed)
	fmt.Println("sealed with", id)
	plain, err := kr.Open("tenant-1", "POSTGRES_URL", sealed)
	fmt.Println(plain, err)
	_, err = kr.Open("tenant-2", "POSTGRES_URL", sealed)
	fmt.Println(err)
	// Output:
	// sealed with k2
	// postgres://app:secret@db/one <nil>
	// tenant "tenant-2": deploy_info.POSTGRES_URL, sealed with key "k2": keyring: sealed value fails authentication (altered, moved, or sealed with another key of that id)
}
