// Command after is the notes application on tenantsql: a database per tenant.
// It is the example of the README's "Porting an application": ../before
// and ../after differ only in what porting to tenantsql takes. Its table is
// notes (id serial, body text).
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"log"
	"net/http"

	_ "github.com/tenantsql/tenantsql/driver"
	"github.com/tenantsql/tenantsql/tenantctx"
)

func main() {
	storeURL := flag.String("store", "file:tenant_config.json", "tenant store URL")
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	db, err := sql.Open("tenantsql", *storeURL)
	if err == nil {
		err = db.PingContext(context.Background()) // no tenant: checks the tenant store
	}
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe(*addr, newHandler(db)))
}

// newHandler serves POST /notes?body=... (add a note, answer how many there
// are) and GET /notes (the database's name and its notes), each on the
// database of the tenant named by the x-tenant-id header.
func newHandler(db *sql.DB) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /notes", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context() // carries the tenant, put there by tenantctx.Middleware
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer tx.Rollback()
		var n int
		_, err = tx.ExecContext(ctx, "INSERT INTO notes (body) VALUES ($1)", r.FormValue("body"))
		if err == nil {
			err = tx.QueryRowContext(ctx, "SELECT count(*) FROM notes").Scan(&n)
		}
		if err == nil {
			err = tx.Commit()
		}
		reply(w, map[string]int{"notes": n}, err)
	})
	mux.HandleFunc("GET /notes", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var database string
		if err := db.QueryRowContext(ctx, "SELECT current_database()").Scan(&database); err != nil {
			reply(w, nil, err)
			return
		}
		rows, err := db.QueryContext(ctx, "SELECT body FROM notes ORDER BY id")
		if err != nil {
			reply(w, nil, err)
			return
		}
		defer rows.Close()
		notes := []string{}
		for rows.Next() {
			var body string
			if err := rows.Scan(&body); err != nil {
				reply(w, nil, err)
				return
			}
			notes = append(notes, body)
		}
		reply(w, map[string]any{"database": database, "notes": notes}, rows.Err())
	})
	return tenantctx.Middleware(mux) // a request without x-tenant-id gets a 400
}

// reply writes v as JSON, or err as a 500.
func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
