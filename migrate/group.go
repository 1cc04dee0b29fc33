package migrate

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantsql/tenantsql/internal/pgurl"
	"github.com/tenantsql/tenantsql/store"
)

// A unit is what a run migrates with one goose Provider: one tenant, or a
// group of tenants that share their tables, migrated through one of them.
type unit struct {
	tenant string   // the tenant the run goes through
	covers []string // every tenant of a group of several, sorted; nil for one alone
}

// tablesKey says where a tenant's migrations land: the database its URL
// under urlKey (the key the *sql.DB routes by, see urlKeyOf) names once
// its tenant settings are taken out (pgurl.SplitSettings), and its
// search_path, which picks the schema of goose's version table and of the
// tables the migrations create. Tenants with the same key share their
// tables. A URL that is missing or cannot be read gets a key of its own:
// its run fails on its own, naming it (for a missing key, the driver's
// ErrMissingURLKey).
func tablesKey(t store.Tenant, urlKey string) string {
	raw := t.DeployInfo[urlKey]
	own := "\x00tenant\x00" + t.ID
	if raw == "" {
		return own // pgconn would read "" as the environment's defaults
	}
	cfg, err := pgconn.ParseConfig(raw)
	if err != nil {
		return own
	}
	base, _, ok := pgurl.SplitSettings(raw)
	if !ok {
		return own
	}
	key := base + "\x00"
	if sp, ok := cfg.RuntimeParams["search_path"]; ok {
		key += "search_path=" + sp
	}
	return key
}

// urlKeyOf is the deploy_info key of the URLs db routes by: the one its
// tenantsql driver reports (driver.WithURLKey, url_key=), POSTGRES_URL for
// any other driver. Grouping by another key than the one the migrations
// run on would skip tenants whose databases under that key differ, or
// group tenants that do not share their tables.
func urlKeyOf(db *sql.DB) string {
	if k, ok := db.Driver().(interface{ URLKey() string }); ok {
		return k.URLKey()
	}
	return store.KeyPostgresURL
}

// group groups the tenants by tablesKey (of their URLs under urlKey) and keeps the groups with a
// selected tenant, sorted by the tenant each runs through: the first
// selected one. A group of which some tenants are excluded and others
// selected is an error: its tables cannot be migrated for some of its
// tenants and not for the others.
func group(all []store.Tenant, urlKey string, selected, excluded func(id string) bool) ([]unit, error) {
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b store.Tenant) int { return strings.Compare(a.ID, b.ID) })
	var (
		keys    []string
		members = map[string][]string{}
	)
	for _, t := range sorted {
		k := tablesKey(t, urlKey)
		if _, seen := members[k]; !seen {
			keys = append(keys, k)
		}
		members[k] = append(members[k], t.ID)
	}
	var units []unit
	for _, k := range keys {
		ids := members[k]
		var sel, exc []string
		for _, id := range ids {
			switch {
			case excluded(id):
				exc = append(exc, id)
			case selected(id):
				sel = append(sel, id)
			}
		}
		if len(sel) == 0 {
			continue
		}
		if len(exc) > 0 {
			return nil, fmt.Errorf("migrate: excluded tenants %s share their tables (the same database and search_path) with %s, which are selected: exclude all of %s or none",
				strings.Join(exc, ", "), strings.Join(sel, ", "), strings.Join(ids, ", "))
		}
		u := unit{tenant: sel[0]}
		if len(ids) > 1 {
			u.covers = ids
		}
		units = append(units, u)
	}
	slices.SortFunc(units, func(a, b unit) int { return strings.Compare(a.tenant, b.tenant) })
	return units, nil
}
