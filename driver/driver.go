package driver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
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
func (d *Driver) OpenConnector(name string) (driver.Connector, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("tenantsql: %w", err)
	}
	c, err := NewConnector(s)
	if err != nil {
		s.Close()
		return nil, err
	}
	c.ownStore = true
	return c, nil
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
