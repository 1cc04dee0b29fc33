package driver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tenantsql/tenantsql/store"
)

// DriverName is the name the driver registers with database/sql.
const DriverName = "tenantsql"

// Driver is the tenantsql database/sql driver. sql.Open("tenantsql", url)
// opens the tenant store at url (see store.Open) and a Connector on it.
type Driver struct {
	c *Connector // set on the Driver a Connector reports; nil on the registered one
}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.DriverContext = (*Driver)(nil)
)

func init() {
	sql.Register(DriverName, &Driver{})
}

// Open implements driver.Driver. database/sql calls OpenConnector instead;
// Open exists for code that uses the driver directly.
func (d *Driver) Open(name string) (driver.Conn, error) {
	if d.c != nil {
		return d.c.Connect(context.Background())
	}
	// Opening a store and its pools per connection would leak them.
	return nil, errors.New("tenantsql: Driver.Open is not supported: use sql.Open, which calls OpenConnector, or NewConnector")
}

// OpenConnector implements driver.DriverContext: name is a store URL.
// The store is opened (and, for a file, read and checked) here, so
// sql.Open reports a missing or malformed tenant file at once.
//
// The store URL may carry options of the driver's own, which it takes out
// before opening the store: url_key=KEY (see WithURLKey):
// "file:tenants.json?url_key=ANALYTICS_URL" routes each tenant to the
// database of its deploy_info key ANALYTICS_URL instead of POSTGRES_URL;
// fleet_budget=on (see WithFleetBudget): "redis://redis:6379?fleet_budget=on"
// shares each server's budget with the other processes on the store.
func (d *Driver) OpenConnector(name string) (driver.Connector, error) {
	name, opts, err := driverOptions(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("tenantsql: %w", err)
	}
	c, err := NewConnector(s, opts...)
	if err != nil {
		s.Close()
		return nil, err
	}
	c.ownStore = true
	return c, nil
}

// URLKey is the deploy_info key whose URLs the Driver's connector routes
// to (WithURLKey), for packages that see only a *sql.DB and must read the
// same URLs (package migrate groups tenants by them): db.Driver() is the
// Driver of db's connector. POSTGRES_URL for the registered Driver.
func (d *Driver) URLKey() string {
	if d.c == nil {
		return store.KeyPostgresURL
	}
	return d.c.URLKey()
}

// ConnectorOf returns the Connector behind db, for its statistics and
// store, if db was opened with this driver.
func ConnectorOf(db *sql.DB) (*Connector, bool) {
	d, ok := db.Driver().(*Driver)
	if !ok || d.c == nil {
		return nil, false
	}
	return d.c, true
}

// urlKeyOption is the store URL option that names the deploy_info key of
// the tenants' database URLs, as WithURLKey does.
const urlKeyOption = "url_key"

// fleetBudgetOption is the store URL option that turns the fleet budget
// on, as WithFleetBudget does: fleet_budget=on.
const fleetBudgetOption = "fleet_budget"

// driverOptions takes the driver's own options (url_key, fleet_budget) out of a store
// URL and returns the URL the store is opened with. The rest of the query
// is left as written, so what the store reads is what the user wrote.
func driverOptions(name string) (string, []Option, error) {
	base, rawQuery, ok := strings.Cut(name, "?")
	if !ok {
		return name, nil, nil
	}
	var keep []string
	var opts []Option
	urlKeySet := false
	for part := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		uk, err := url.QueryUnescape(k)
		if err == nil && uk == fleetBudgetOption {
			switch on, _ := url.QueryUnescape(v); on {
			case "on", "true", "1":
				opts = append(opts, WithFleetBudget())
			case "off", "false", "0":
			default:
				return "", nil, fmt.Errorf("tenantsql: store URL option %s=%q: want on or off", fleetBudgetOption, v)
			}
			continue
		}
		if err != nil || uk != urlKeyOption {
			keep = append(keep, part)
			continue
		}
		key, err := url.QueryUnescape(v)
		if err == nil {
			err = store.ValidateKey(key)
		}
		if err != nil {
			return "", nil, fmt.Errorf("tenantsql: store URL option %s=%q: %w (want the deploy_info key of the tenants' database URLs, such as %s=ANALYTICS_URL)", urlKeyOption, v, err, urlKeyOption)
		}
		if urlKeySet {
			return "", nil, fmt.Errorf("tenantsql: store URL option %s is given twice; give one key per *sql.DB", urlKeyOption)
		}
		urlKeySet = true
		opts = append(opts, WithURLKey(key))
	}
	if len(keep) == 0 {
		return base, opts, nil
	}
	return base + "?" + strings.Join(keep, "&"), opts, nil
}
