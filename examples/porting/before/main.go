// Command before is the notes application on one PostgreSQL database.
// It is the example of the README's "Porting an application": ../before
// and ../after differ only in what porting to tenantsql takes. Its table is
// notes (id serial, body text).
package main

import (
	"database/sql"
	"encoding/json"
	"flag"
	"log"
	"net/http"

	_ "github.com/jackc/pgx/v5/stdlib"
)

func main() {
	dsn := flag.String("dsn", "postgres://postgres:postgres@127.0.0.1:5432/notes", "PostgreSQL URL")
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	db, err := sql.Open("pgx", *dsn)
	if err == nil {
		err = db.Ping()
	}
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe(*addr, newHandler(db)))
}

// newHandler serves POST /notes?body=... (add a note, answer how many there
// are) and GET /notes (the database's name and its notes).
func newHandler(db *sql.DB) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /notes", func(w http.ResponseWriter, r *http.Request) {
		tx, err := db.Begin()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer tx.Rollback()
		var n int
		_, err = tx.Exec("INSERT INTO notes (body) VALUES ($1)", r.FormValue("body"))
		if err == nil {
			err = tx.QueryRow("SELECT count(*) FROM notes").Scan(&n)
		}
		if err == nil {
			err = tx.Commit()
		}
		reply(w, map[string]int{"notes": n}, err)
	})
	mux.HandleFunc("GET /notes", func(w http.ResponseWriter, r *http.Request) {
		var database string
		if err := db.QueryRow("SELECT current_database()").Scan(&database); err != nil {
			reply(w, nil, err)
			return
		}
		rows, err := db.Query("SELECT body FROM notes ORDER BY id")
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
	return mux
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
