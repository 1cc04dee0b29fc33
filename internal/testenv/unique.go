package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// suffix makes the names Unique returns this process's own: two test runs
// side by side on one server (two `go test ./...`, or a package's test
// binary and another's) never share a database.
var suffix = func() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "_" + hex.EncodeToString(b[:])
}()

var (
	uniqueMu sync.Mutex
	uniques  = map[string]bool{}
)

// Unique returns name with a suffix unique to this process, a valid
// database name of at most 63 bytes (name is shortened to fit). The same
// name gives the same result for the whole process. Main drops, after the
// run, every database named Unique(name) or Unique(name) + "_..." (as
// Names(Unique(name), n) gives) that the tests left.
func Unique(name string) string {
	if !dbName.MatchString(name) {
		panic(fmt.Sprintf("testenv.Unique: %q is not a plain lowercase identifier", name))
	}
	// Room for the suffix and for Names' "_NNN".
	if room := 63 - len(suffix) - 4; len(name) > room {
		name = name[:room]
	}
	u := name + suffix
	uniqueMu.Lock()
	uniques[u] = true
	uniqueMu.Unlock()
	return u
}

// Main runs the tests of a package, then stops the PgBouncer they started
// (PgBouncer), drops the databases named by Unique that they left, and
// exits. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	stopPgBouncer()
	if err := dropUniques(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: dropping this run's databases: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// dropUniques drops every database named by Unique, or by Names on a
// Unique name.
func dropUniques() error {
	uniqueMu.Lock()
	names := make([]string, 0, len(uniques))
	for u := range uniques {
		names = append(names, u)
	}
	uniqueMu.Unlock()
	if len(names) == 0 {
		return nil
	}
	u := os.Getenv(EnvPostgres)
	if u == "" {
		u = defaultPostgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := sql.Open("pgx", u)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		if os.Getenv("CI") == "" {
			return nil // no server: the tests skipped and created nothing there
		}
		return fmt.Errorf("the server is unreachable, so this run's databases stay: %w", err)
	}
	rows, err := db.QueryContext(ctx, "SELECT datname FROM pg_database WHERE datname LIKE '%' || $1 || '%'", strings.ReplaceAll(suffix, "_", `\_`))
	if err != nil {
		return err
	}
	var found []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		found = append(found, n)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	var errs []string
	for _, n := range found {
		if !ownedBy(n, names) {
			continue
		}
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+n+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", n, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// ownedBy reports whether database n is one of names, or one of them
// followed by "_" and more.
func ownedBy(n string, names []string) bool {
	for _, u := range names {
		if n == u || strings.HasPrefix(n, u+"_") {
			return dbName.MatchString(n)
		}
	}
	return false
}
