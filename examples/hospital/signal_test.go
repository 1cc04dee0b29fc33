package main

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// SIGINT (Ctrl-C, which make run-example passes on to the program it
// execs) and SIGTERM (a service manager) shut the example down gracefully:
// it exits 0, and the server has none of its sessions left.
func TestShutdownOnSignal(t *testing.T) {
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			db := testenv.Unique("tsql_hosp_sig")
			testenv.DropDatabase(t, db)
			app := "tsql_hosp_sig_" + strings.ToLower(strings.ReplaceAll(sig.String(), " ", "_"))
			s := start(t, writeConfig(t, map[string]string{"tenant-1.test.com": testenv.DatabaseURL(t, db, "application_name", app)}))
			if code, body := s.do("GET", "/hospital/", "tenant-1.test.com", nil, false); code != http.StatusOK {
				t.Fatalf("GET /hospital/: %d %v", code, body)
			}
			if n := sessions(t, app); n == 0 {
				t.Fatal("no session of the example on the server after a query")
			}

			if err := s.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.cmd.Wait() }()
			select {
			case err := <-done:
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					t.Fatalf("after %v the example exited with %v, want 0:\n%s", sig, exit, s.log())
				}
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second): // only catches a hang
				t.Fatalf("the example did not exit after %v:\n%s", sig, s.log())
			}
			if !strings.Contains(s.log(), "hospital: shutting down") {
				t.Errorf("the example exited without its graceful shutdown:\n%s", s.log())
			}
			// A backend leaves pg_stat_activity a moment after its client
			// has gone; the deadline only catches one that stays.
			testenv.Eventually(t, 10*time.Second, "the example's sessions to end on the server", func() bool { return sessions(t, app) == 0 })
		})
	}
}

// sessions counts the server's sessions with application_name app.
func sessions(t *testing.T, app string) int {
	t.Helper()
	var n int
	if err := testenv.Admin(t).QueryRow("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
