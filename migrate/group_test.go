package migrate

import (
	"slices"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/store"
)

func TestGroup(t *testing.T) {
	tn := func(id, url string) store.Tenant {
		return store.Tenant{ID: id, DeployInfo: map[string]string{store.KeyPostgresURL: url}}
	}
	all := []store.Tenant{
		tn("r3", "postgres://app:pw@db1/saas?app.tenant_id=3&sslmode=disable"),
		tn("r1", "postgres://app:pw@db1/saas?app.tenant_id=1&sslmode=disable"),
		tn("r2", "postgres://app:pw@db1/saas?sslmode=disable&app.tenant_id=2"),
		tn("s1", "postgres://app:pw@db1/saas?sslmode=disable&search_path=t1"),
		tn("s2", "postgres://app:pw@db1/saas?sslmode=disable&search_path=t2"),
		tn("s2b", "postgres://app:pw@db1/saas?sslmode=disable&search_path=t2&app.tenant_id=9"),
		tn("d1", "postgres://app:pw@db1/one"),
		tn("d2", "postgres://app:pw@db1/two"),
		tn("other-app", "postgres://app:pw@db1/saas?app.tenant_id=4&sslmode=disable&application_name=x"),
		tn("bad", "postgres://app:pw@db1:notaport/saas"),
	}
	everyone := func(string) bool { return true }
	none := func(string) bool { return false }
	got, err := group(all, store.KeyPostgresURL, everyone, none)
	if err != nil {
		t.Fatal(err)
	}
	want := []unit{
		{tenant: "bad"},
		{tenant: "d1"},
		{tenant: "d2"},
		{tenant: "other-app"},
		{tenant: "r1", covers: []string{"r1", "r2", "r3"}},
		{tenant: "s1"},
		{tenant: "s2", covers: []string{"s2", "s2b"}},
	}
	if !slices.EqualFunc(got, want, func(a, b unit) bool { return a.tenant == b.tenant && slices.Equal(a.covers, b.covers) }) {
		t.Fatalf("group:\n got %+v\nwant %+v", got, want)
	}

	// Under a key they lack, the tenants share nothing: each is a unit of
	// its own (whose run fails with the driver's ErrMissingURLKey), not
	// one group of empty URLs, which pgconn would read as the defaults.
	got, err = group(all, "ANALYTICS_URL", everyone, none)
	if err != nil || len(got) != len(all) || slices.ContainsFunc(got, func(u unit) bool { return u.covers != nil }) {
		t.Fatalf("grouped by a key no tenant has: %+v, %v; want %d units of one", got, err, len(all))
	}

	// One tenant of a group selected: the group, through it.
	got, err = group(all, store.KeyPostgresURL, func(id string) bool { return id == "r2" }, none)
	if err != nil || len(got) != 1 || got[0].tenant != "r2" || len(got[0].covers) != 3 {
		t.Fatalf("r2 selected: %+v, %v", got, err)
	}
	// Part of a group excluded: refused, naming the tenants.
	_, err = group(all, store.KeyPostgresURL, everyone, func(id string) bool { return id == "r2" })
	if err == nil || !strings.Contains(err.Error(), "r2") || !strings.Contains(err.Error(), "r1, r3") {
		t.Fatalf("r2 excluded: %v, want a refusal naming r2 and r1, r3", err)
	}
	// The whole group excluded: fine.
	got, err = group(all, store.KeyPostgresURL, everyone, func(id string) bool { return id[0] == 'r' })
	if err != nil || slices.ContainsFunc(got, func(u unit) bool { return u.tenant[0] == 'r' }) {
		t.Fatalf("group excluded: %+v, %v", got, err)
	}
	// Passwords never reach an error: the refusal names tenants only.
	if strings.Contains(err2(all), "pw") {
		t.Fatal("a grouping error shows a password")
	}
}

func err2(all []store.Tenant) string {
	_, err := group(all, store.KeyPostgresURL, func(string) bool { return true }, func(id string) bool { return id == "r1" })
	if err == nil {
		return ""
	}
	return err.Error()
}
