package driver_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/internal/testenv"
	"github.com/tenantsql/tenantsql/keyring"
	"github.com/tenantsql/tenantsql/store"
)

// A tenant sealed with a key this process lacks fails its queries with an
// error naming the tenant and the key; a tenant it can open is served.
func TestSealedTenantUnusable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "tenants.json")
	pgURL := testenv.PostgresURL(t)
	keyOf := func(b byte) []byte { return bytes.Repeat([]byte{b}, keyring.KeySize) }
	write := func(k keyring.Key, id, url string) {
		ks, err := keyring.NewStatic(k)
		if err != nil {
			t.Fatal(err)
		}
		s, err := store.OpenFile(ctx, path, store.WithFileCreate(true), store.WithFilePollInterval(0), store.WithFileKeys(keyring.New(ks)))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Create(ctx, store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: url}}); err != nil {
			t.Fatal(err)
		}
	}
	write(keyring.Key{ID: "old", Secret: keyOf(1)}, "sealed.test", pgURL)
	write(keyring.Key{ID: "new", Secret: keyOf(2)}, "open.test", pgURL)

	keyFile := filepath.Join(dir, "keys")
	if err := os.WriteFile(keyFile, []byte("new:"+base64.StdEncoding.EncodeToString(keyOf(2))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("tenantsql", "file:"+path+"?poll=0&keys_file="+keyFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	var name string
	if err := db.QueryRowContext(tenantCtx("open.test"), "SELECT current_database()").Scan(&name); err != nil || name != "postgres" {
		t.Fatalf("open.test: current_database() = %q, %v; want postgres", name, err)
	}
	err = db.QueryRowContext(tenantCtx("sealed.test"), "SELECT current_database()").Scan(&name)
	if !errors.Is(err, driver.ErrTenantConfig) {
		t.Fatalf("sealed.test: %v, want ErrTenantConfig", err)
	}
	mustContain(t, err, "sealed.test", `key "old"`)
}
