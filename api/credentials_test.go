package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/store"
)

// serverSecret is the password this machine's environment holds in the
// tests below. Like secret, it must never appear in an answer or a log.
const serverSecret = "SrvPgpass4412"

// pgEnv lists the environment variables through which pgx finds
// credentials or hosts; each test starts with none of them set.
var pgEnv = []string{"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE",
	"PGSSLMODE", "PGSSLCERT", "PGSSLKEY", "PGSSLCERTMODE", "PGSSLPASSWORD", "PGSSLROOTCERT"}

// serverHome makes a fresh HOME with no PG* variables, and returns it.
func serverHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, k := range pgEnv {
		t.Setenv(k, "") // restored when the test ends
		os.Unsetenv(k)  // pgx reads an empty PGSSLCERTMODE as a value
	}
	return home
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeClientCert writes a self-signed certificate and its key.
func writeClientCert(t *testing.T, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "app"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyPath, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
}

// The API does not lend this machine's credentials to a URL that comes
// without its own, unless WithServerCredentials says so.
func TestServerCredentialsOverHTTP(t *testing.T) {
	const (
		noPassword  = "postgres://postgres@10.0.0.7:5432/anydb"
		noPW        = "it gives no password, and pgx would use one from this server's environment"
		clientCert  = "pgx would present this server's TLS client certificate"
		unixSocket  = "is a Unix socket"
		withOption  = "WithServerCredentials"
		pgpassLine  = "10.0.0.7:5432:*:postgres:" + serverSecret + "\n"
		pgpassWild  = "*:*:*:*:" + serverSecret + "\n"
		serviceFile = "[tenant]\nhost=10.0.0.7\npassword=" + serverSecret + "\n"
	)
	type setup func(t *testing.T, home string)
	pgpass := func(content string) setup {
		return func(t *testing.T, home string) { writeFile(t, filepath.Join(home, ".pgpass"), content) }
	}
	env := func(k, v string) setup { return func(t *testing.T, _ string) { t.Setenv(k, v) } }
	homeCert := func(t *testing.T, home string) {
		writeClientCert(t, filepath.Join(home, ".postgresql", "postgresql.crt"), filepath.Join(home, ".postgresql", "postgresql.key"))
	}
	tests := []struct {
		name    string
		setup   []setup
		url     string
		anyHost bool   // no WithAllowedHosts, which refuses sockets itself
		wantErr string // "" if accepted whatever the options
	}{
		{name: "no password, nothing on the server", url: noPassword},
		{name: "no password, ~/.pgpass for the host", setup: []setup{pgpass(pgpassLine)}, url: noPassword, wantErr: noPW},
		{name: "no password, ~/.pgpass for any host", setup: []setup{pgpass(pgpassWild)}, url: "postgres://app@10.9.9.9/other", wantErr: noPW},
		{name: "no password, ~/.pgpass for another host", setup: []setup{pgpass("10.0.0.8:5432:*:postgres:" + serverSecret + "\n")}, url: noPassword},
		{name: "empty password, ~/.pgpass", setup: []setup{pgpass(pgpassLine)}, url: "postgres://postgres:@10.0.0.7:5432/anydb", wantErr: noPW},
		{name: "empty password parameter, ~/.pgpass", setup: []setup{pgpass(pgpassLine)}, url: noPassword + "?password=", wantErr: noPW},
		{name: "own password, ~/.pgpass", setup: []setup{pgpass(pgpassLine)}, url: "postgres://postgres:" + secret + "@10.0.0.7:5432/anydb"},
		{name: "own escaped password, ~/.pgpass", setup: []setup{pgpass(pgpassLine)}, url: "postgres://postgres:" + secret + "%40%20x@10.0.0.7:5432/anydb"},
		{name: "own password parameter, ~/.pgpass", setup: []setup{pgpass(pgpassLine)}, url: noPassword + "?sslmode=disable&password=" + secret + "%3Bx"},
		{name: "own password parameter with a raw semicolon, ~/.pgpass", setup: []setup{pgpass(pgpassLine)}, url: noPassword + "?password=" + secret + ";x"},
		{name: "own password equal to the server's", setup: []setup{pgpass(pgpassLine)}, url: "postgres://postgres:" + serverSecret + "@10.0.0.7:5432/anydb"},
		{name: "PGPASSWORD", setup: []setup{env("PGPASSWORD", serverSecret)}, url: noPassword, wantErr: noPW},
		{name: "PGPASSWORD and an own password", setup: []setup{env("PGPASSWORD", serverSecret)}, url: "postgres://postgres:" + secret + "@10.0.0.7/anydb"},
		{name: "PGPASSFILE", setup: []setup{func(t *testing.T, home string) {
			p := filepath.Join(home, "elsewhere", "pass")
			writeFile(t, p, pgpassLine)
			t.Setenv("PGPASSFILE", p)
		}}, url: noPassword, wantErr: noPW},
		{name: "PGSERVICE", setup: []setup{func(t *testing.T, home string) {
			writeFile(t, filepath.Join(home, ".pg_service.conf"), serviceFile)
			t.Setenv("PGSERVICE", "tenant")
		}}, url: noPassword, wantErr: noPW},
		{name: "client certificate in ~/.postgresql", setup: []setup{homeCert}, url: pgURL("10.0.0.7/anydb"), wantErr: clientCert},
		{name: "client certificate, sslmode=require", setup: []setup{homeCert}, url: pgURL("10.0.0.7/anydb?sslmode=require"), wantErr: clientCert},
		{name: "client certificate, second host", setup: []setup{homeCert}, url: pgURL("10.0.0.7,10.0.0.8/anydb"), wantErr: clientCert},
		{name: "client certificate, sslmode=disable", setup: []setup{homeCert}, url: pgURL("10.0.0.7/anydb?sslmode=disable")},
		{name: "client certificate, sslcertmode=disable", setup: []setup{homeCert}, url: pgURL("10.0.0.7/anydb?sslmode=require&sslcertmode=disable")},
		{name: "client certificate from PGSSLCERT", setup: []setup{func(t *testing.T, home string) {
			c, k := filepath.Join(home, "c.crt"), filepath.Join(home, "c.key")
			writeClientCert(t, c, k)
			t.Setenv("PGSSLCERT", c)
			t.Setenv("PGSSLKEY", k)
		}}, url: pgURL("10.0.0.7/anydb"), wantErr: clientCert},
		{name: "root certificate only", setup: []setup{func(t *testing.T, home string) {
			dir := t.TempDir()
			writeClientCert(t, filepath.Join(home, ".postgresql", "root.crt"), filepath.Join(dir, "root.key"))
		}}, url: pgURL("10.0.0.7/anydb?sslmode=verify-full")},
		{name: "Unix socket", url: pgURL("10.0.0.7/anydb?host=/var/run/postgresql"), anyHost: true, wantErr: unixSocket},
	}
	for _, serverCreds := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			if serverCreds {
				name += " with WithServerCredentials"
			}
			t.Run(name, func(t *testing.T) {
				home := serverHome(t)
				for _, s := range tt.setup {
					s(t, home)
				}
				opts := []Option{WithoutAuth()}
				if !tt.anyHost {
					opts = append(opts, WithAllowedHosts("10.0.0.0/8"))
				}
				if serverCreds {
					opts = append(opts, WithServerCredentials())
				}
				s := store.NewMemory()
				srv, logs := newServer(t, s, opts...)
				header := map[string]string{"Content-Type": "application/json"}
				a := httpDo(t, srv, "POST", "/tenant/", createBody("t1.test", tt.url), header)
				want, wantErr := 201, ""
				if tt.wantErr != "" && !serverCreds {
					want, wantErr = 400, tt.wantErr
				}
				if a.status != want || !strings.Contains(a.err, wantErr) {
					t.Fatalf("POST with %s: %d %q, want %d with an error containing %q", tt.url, a.status, a.err, want, wantErr)
				}
				if want == 400 && !strings.Contains(a.err, withOption) {
					t.Errorf("the error does not name %s: %q", withOption, a.err)
				}
				// PUT is checked the same way.
				mustCreate(t, s, "t2.test", pgURL("10.0.0.1/two"))
				a = httpDo(t, srv, "PUT", "/tenant/t2.test/", `{"deploy_info": {"POSTGRES_URL": "`+tt.url+`"}}`, header)
				if want == 201 {
					want = 200
				}
				if a.status != want || !strings.Contains(a.err, wantErr) {
					t.Fatalf("PUT with %s: %d %q, want %d with an error containing %q", tt.url, a.status, a.err, want, wantErr)
				}
				list := mustList(t, s)
				if (want == 400) != (len(list) == 1) {
					t.Errorf("store holds %d tenants after %d", len(list), a.status)
				}
				for what, text := range map[string]string{"answer": a.body, "log": logs.String()} {
					if strings.Contains(text, serverSecret) {
						t.Errorf("the %s holds the server's password:\n%s", what, text)
					}
				}
			})
		}
	}
}
