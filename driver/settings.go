package driver

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/tenantsql/tenantsql/internal/pgurl"
)

// settings are the session settings of a tenant on a shared target, and
// the statements that apply them. They are set for one transaction
// (set_config(name, value, true)) in the same round trip as each
// statement, so nothing of them stays on the session: behind a
// transaction pooler the next client's transaction, which may run on this
// server connection, never sees them.
type settings struct {
	names  []string
	values []string
	schema string // the first schema of search_path, checked to exist; "" if none
	path   bool   // search_path is one of them: the tenant's tables are its own (shared_stmts.go)

	apply  string   // sets them for the statement's transaction, checks the schema
	clean  string   // the same, first cleaning up after another tenant
	params [][]byte // names and values, then the login user (for clean)
}

// splitTenantURL splits a tenant's URL into its target's URL and its
// settings. A URL without tenant settings, or one whose settings pgx
// reads differently than pgurl.SplitSettings finds them, gets nil
// settings: it dials its own target with the URL as it is, as before
// tenants shared sessions.
func splitTenantURL(dsn string) (base string, set *settings) {
	base, names, ok := pgurl.SplitSettings(dsn)
	if !ok || len(names) == 0 {
		return dsn, nil
	}
	full, err := pgx.ParseConfig(dsn)
	if err != nil {
		return dsn, nil
	}
	bare, err := pgx.ParseConfig(base)
	if err != nil {
		return dsn, nil
	}
	want := maps.Clone(full.RuntimeParams)
	for _, n := range names {
		delete(want, n)
	}
	if !maps.Equal(want, bare.RuntimeParams) || full.Database != bare.Database || full.User != bare.User {
		return dsn, nil
	}
	s := &settings{names: names}
	for _, n := range names {
		s.values = append(s.values, full.RuntimeParams[n])
		if n == "search_path" {
			s.path = true
			s.schema = firstSchema(full.RuntimeParams[n])
		}
	}
	s.build(full.User)
	return base, s
}

// firstSchema returns the schema a search_path names first, as written
// ("tenant_42", `"Tenant 42"`), or "" for "$user" or an empty path.
func firstSchema(path string) string {
	first, _, _ := strings.Cut(path, ",")
	first = strings.TrimSpace(first)
	if first == `"$user"` || first == "$user" {
		return ""
	}
	return first
}

// build writes the statements. Names and values are parameters, never
// SQL text. The clean statement runs when a session goes from one tenant
// to another, after RESET ALL (see shared.go): it releases session-level
// advisory locks, and fails, so that the statement sent with it does not
// run, if the session holds what RESET ALL cannot undo (temporary
// objects, LISTEN, another role or session user).
func (s *settings) build(user string) {
	var sets []string
	for i, n := range s.names {
		s.params = append(s.params, []byte(n), []byte(s.values[i]))
		sets = append(sets, fmt.Sprintf("pg_catalog.set_config($%d, $%d, true)", 2*i+1, 2*i+2))
	}
	next := 2*len(s.names) + 1
	var check string
	if s.schema != "" {
		s.params = append(s.params, []byte(s.schema))
		check = fmt.Sprintf(", case when pg_catalog.to_regnamespace($%d) is null then pg_catalog.current_setting('%s') end", next, errMissingSchema)
		next++
	}
	s.params = append(s.params, []byte(user))
	u := "$" + strconv.Itoa(next)
	s.apply = "select " + strings.Join(sets, ", ") + check
	s.clean = "select pg_catalog.pg_advisory_unlock_all(), " + strings.Join(sets, ", ") + check +
		", case when pg_catalog.pg_my_temp_schema() <> 0 or current_user <> " + u + " or session_user <> " + u +
		" or exists (select from pg_catalog.pg_listening_channels()) then pg_catalog.current_setting('" + errNotCleanSetting + "') end"
}

// The settings statements fail on purpose by asking for these settings,
// which do not exist: current_setting is evaluated per row, after the
// conditions, so the error says which check failed.
const (
	errMissingSchema   = "tenantsql.schema_missing"
	errNotCleanSetting = "tenantsql.session_not_clean"
)

// custom reports whether the settings include a custom one (a name with a
// dot): what row-level security policies read.
func (s *settings) custom() bool {
	if s == nil {
		return false
	}
	for _, n := range s.names {
		if strings.Contains(n, ".") {
			return true
		}
	}
	return false
}
