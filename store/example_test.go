package store_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tenantsql/tenantsql/store"
)

func Example() {
	ctx := context.Background()
	s, err := store.Open(ctx, "memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	t, err := s.Create(ctx, store.Tenant{
		ID:         "tenant-1.test.com",
		DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://app:secret@db:5432/one"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created:", t) // String hides the password

	_, err = s.Create(ctx, store.Tenant{
		ID:         "tenant-1.test.com",
		DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://db/other"},
	})
	fmt.Println("again:", errors.Is(err, store.ErrExists))

	t.DeployInfo[store.KeyPostgresURL] = "postgres://app:secret@db:5432/uno"
	if _, err := s.Update(ctx, t); err != nil { // t.Version is 1: update only that
		log.Fatal(err)
	}
	if _, err := s.Update(ctx, t); errors.Is(err, store.ErrConflict) {
		fmt.Println("stale update:", err)
	}

	got, err := s.Get(ctx, "tenant-1.test.com")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("database:", got.PostgresURL()) // the real URL, for connecting

	list, err := s.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tenants:", len(list))
	// Output:
	// created: tenant "tenant-1.test.com" (version 1, POSTGRES_URL=postgres://app:xxxxx@db:5432/one)
	// again: true
	// stale update: store: tenant "tenant-1.test.com": update of version 1, current is 2: tenant version conflict
	// database: postgres://app:secret@db:5432/uno
	// tenants: 1
}

func ExampleOpenFile() {
	dir, err := os.MkdirTemp("", "tenants")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tenant_config.json")

	// A file written by hand needs only the tenants and their deploy info.
	err = os.WriteFile(path, []byte(`{
  "tenants": {
    "tenant-1.test.com": {"deploy_info": {"POSTGRES_URL": "postgres://app:secret@db/one"}}
  }
}`), 0o600)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	s, err := store.OpenFile(ctx, path, store.WithFilePollInterval(0))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(ctx, store.Tenant{
		ID:         "tenant-2.test.com",
		DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://app:secret@db/two"},
	}); err != nil {
		log.Fatal(err)
	}

	// Another store on the file (another process, say) sees both.
	other, err := store.Open(ctx, "file:"+path+"?poll=0")
	if err != nil {
		log.Fatal(err)
	}
	defer other.Close()
	list, err := other.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range list {
		fmt.Println(t)
	}

	// A broken file is an error that says where and what.
	os.WriteFile(path, []byte("{\n  \"tenants\": {\n    \"t1\": {\"deploy-info\": {}}\n  }\n}\n"), 0o600)
	_, err = store.OpenFile(ctx, path)
	fmt.Println(err != nil, errors.Unwrap(err))
	// Output:
	// tenant "tenant-1.test.com" (version 1, POSTGRES_URL=postgres://app:xxxxx@db/one)
	// tenant "tenant-2.test.com" (version 1, POSTGRES_URL=postgres://app:xxxxx@db/two)
	// true invalid JSON: json: unknown field "deploy-info"
}

func ExampleStore_Watch() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := store.NewMemory()
	defer s.Close()
	s.Create(ctx, store.Tenant{ID: "a", DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://db/a"}})

	events, err := s.Watch(ctx)
	if err != nil {
		log.Fatal(err)
	}
	s.Create(ctx, store.Tenant{ID: "b", DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://db/b"}})
	s.Delete(ctx, "a")

	// A consumer keeps its own copy: a sync replaces it, other events
	// change one tenant.
	tenants := map[string]store.Tenant{}
	for ev := range events {
		switch ev.Type {
		case store.EventSync:
			clear(tenants)
			for _, t := range ev.Tenants {
				tenants[t.ID] = t
			}
		case store.EventCreate, store.EventUpdate:
			tenants[ev.Tenant.ID] = ev.Tenant
		case store.EventDelete:
			delete(tenants, ev.Tenant.ID)
		}
		fmt.Printf("%d %s: %d tenants\n", ev.Version, ev.Type, len(tenants))
		if ev.Version == 3 {
			cancel() // the channel is closed and the loop ends
		}
	}
	// Output:
	// 1 sync: 1 tenants
	// 2 create: 2 tenants
	// 3 delete: 1 tenants
}

func ExampleRedactURL() {
	fmt.Println(store.RedactURL("postgres://app:secret@db:5432/app?sslmode=require"))
	fmt.Println(store.RedactURL("postgres://db/app?user=app&password=secret"))
	fmt.Println(store.RedactURL("postgres://app:sec/ret@db/app")) // '/' not escaped: does not parse
	// Output:
	// postgres://app:xxxxx@db:5432/app?sslmode=require
	// postgres://db/app?user=app&password=xxxxx
	// (unparsable URL)
}

func ExampleTenant_Redacted() {
	t := store.Tenant{
		ID: "tenant-1.test.com",
		DeployInfo: map[string]string{
			store.KeyPostgresURL: "postgres://app:secret@db/one",
			"API_TOKEN":          "tok-123",
			"REGION":             "eu-west-1",
		},
	}
	r := t.Redacted()
	fmt.Println(r.DeployInfo[store.KeyPostgresURL], r.DeployInfo["API_TOKEN"], r.DeployInfo["REGION"])

	// slog uses Tenant.LogValue.
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	})
	slog.New(h).Info("tenant added", "tenant", t)
	// Output:
	// postgres://app:xxxxx@db/one xxxxx eu-west-1
	// level=INFO msg="tenant added" tenant.id=tenant-1.test.com tenant.version=0 tenant.postgres_url=postgres://app:xxxxx@db/one
}

func ExampleValidate() {
	for _, t := range []store.Tenant{
		{ID: "Tenant-1", DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://db/one"}},
		{ID: "tenant-1", DeployInfo: map[string]string{store.KeyPostgresURL: "mysql://app:secret@db/one"}},
		{ID: "tenant-1", DeployInfo: map[string]string{store.KeyPostgresURL: "postgres://db/one"}},
	} {
		err := store.Validate(t)
		var ve *store.ValidationError
		if errors.As(err, &ve) {
			fmt.Printf("%s: %v (ErrInvalid: %t)\n", ve.Field, err, errors.Is(err, store.ErrInvalid))
		} else {
			fmt.Println("valid:", err == nil)
		}
	}
	// Output:
	// tenant_id: invalid tenant_id "Tenant-1": must start with a lowercase letter or digit (ErrInvalid: true)
	// deploy_info.POSTGRES_URL: invalid deploy_info.POSTGRES_URL "mysql://app:xxxxx@db/one": scheme must be postgres:// or postgresql:// (ErrInvalid: true)
	// valid: true
}
