package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tenantsql/tenantsql/internal/testenv"
)

// The operator's page (api.WithUI), driven in headless Chromium against
// the example: the page loads with no console error, asks for the token
// and keeps it in memory only, lists the tenants with what the server
// says of them, draws each server's sessions as they change under load,
// and creates, updates and deletes a tenant through its forms. A
// screenshot is kept (see artifactDir).
func TestOperatorPage(t *testing.T) {
	chromium := chromiumPath(t)
	testenv.PostgresURL(t)
	app := testenv.Unique("hosp_ui")
	dbs := []string{testenv.Unique("tsql_hosp_ui1"), testenv.Unique("tsql_hosp_ui2"), testenv.Unique("tsql_hosp_ui3")}
	// Created by the example through the page's form; dropped after the
	// example has stopped (cleanups run last first).
	t.Cleanup(func() { testenv.DropDatabase(t, dbs[2]) })
	u1, u2, u3 := "tenant-u1.test.com", "tenant-u2.test.com", "tenant-u3.test.com"
	tenants := map[string]string{
		u1: testenv.DatabaseURL(t, dbs[0], "application_name", app),
		u2: testenv.DatabaseURL(t, dbs[1], "application_name", app),
	}
	const budget = 2
	// A request waits as long as the test holds the lock below.
	s := start(t, writeConfig(t, tenants), "--max-conns", strconv.Itoa(budget), "--request-timeout", "10m")
	server := serverName(t)

	b := newBrowser(t, chromium)
	page := s.url + "/api/ui/"
	b.do(chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#token")))

	// The token, typed once; the page keeps it in a variable.
	b.do(chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	row := func(id string) string { return `tr[data-tenant="` + id + `"]` }
	b.waitExact(row(u1)+` td[data-col="ready"]`, "ready")
	b.waitExact(row(u2)+` td[data-col="ready"]`, "ready")
	for _, where := range []string{
		"localStorage.length + ':' + sessionStorage.length",
		"document.cookie", "location.href", "document.documentElement.outerHTML",
		"performance.getEntries().map(e => e.name).join(' ')",
	} {
		if got := b.eval(where); strings.Contains(got, token) || where == "localStorage.length + ':' + sessionStorage.length" && got != "0:0" {
			t.Errorf("the token is kept outside the page's memory: %s = %q", where, got)
		}
	}

	// Health and migrations, as the servers answer them.
	b.do(chromedp.Click(chromedp.CSS("#check-health")))
	want := strconv.Itoa(countRows(t, dbs[0], "SELECT max(version_id)::int FROM goose_db_version"))
	b.waitExact(row(u1)+` td[data-col="health"]`, "ok")
	b.waitExact(row(u1)+` td[data-col="migration"]`, want)
	b.waitText(`#store`, "store ok")

	// The chart under load: a lock on tenant u1's table holds the
	// sessions its requests get and keeps the others waiting for one,
	// until it is let go. How many get one depends on what else holds a
	// session then (u2's last, idle one is not taken from it while it is
	// recent), so the page's figures are compared with the server's.
	card := `[data-server="` + server + `"]`
	b.waitExact(card+` [data-figure="budget"]`, strconv.Itoa(budget))
	canvas := card + ` canvas`
	if n := b.waitingPixels(canvas); n != 0 {
		t.Errorf("before any load, the chart has %d pixels of the waiting line above zero", n)
	}
	unlock := lockTable(t, dbs[0], "hospital")
	const requests = 6
	var wg sync.WaitGroup
	for range requests {
		wg.Go(func() {
			if code, body := s.do("GET", "/hospital/", u1, nil, false); code != http.StatusOK {
				t.Errorf("GET /hospital/ for %s after the lock: %d %v", u1, code, body)
			}
		})
	}
	var seen string
	testenv.Eventually(t, 30*time.Second, "the page to show the sessions the server has waiting on the lock, and the other requests waiting", func() bool {
		locked, all := sessionsOn(t, app)
		inUse := b.eval(`document.querySelector('` + card + ` [data-figure="in_use"]').textContent`)
		waiting := b.eval(`document.querySelector('` + card + ` [data-figure="waiting"]').textContent`)
		sessions := b.eval(`document.querySelector('` + row(u1) + ` td[data-col="sessions"]').textContent`)
		drawn := b.eval(`document.querySelector('` + canvas + `').dataset.last`)
		seen = fmt.Sprintf("page: %s in use, %s waiting, tenant %q, chart's last sample %s; server: %d on the lock (%s)", inUse, waiting, sessions, drawn, locked, all)
		return locked > 0 && inUse == strconv.Itoa(locked) && waiting == strconv.Itoa(requests-locked) &&
			strings.Contains(sessions, fmt.Sprintf("%d in use, %d waiting", locked, requests-locked)) &&
			strings.HasSuffix(drawn, fmt.Sprintf(",%d,%d", locked, requests-locked))
	})
	t.Log(seen)
	// What the chart drew: the waiting line rose above zero.
	if n := b.waitingPixels(canvas); n == 0 {
		t.Error("under load, the chart has no pixel of the waiting line above zero")
	}
	b.screenshot("operator-page-under-load.png")
	unlock()
	wg.Wait()
	b.waitExact(card+` [data-figure="in_use"]`, "0")
	b.waitExact(card+` [data-figure="waiting"]`, "0")

	// Create through the form: the tenant appears, becomes ready, and its
	// database exists, migrated.
	b.do(
		chromedp.SetValue(chromedp.CSS("#f-id"), u3),
		chromedp.SetValue(chromedp.CSS("#f-url"), testenv.DatabaseURL(t, dbs[2], "application_name", app)),
		chromedp.Click(chromedp.CSS("#f-submit")),
	)
	b.waitText("#form-result", "Created "+u3)
	b.waitExact(row(u3)+` td[data-col="ready"]`, "ready")
	if tables := strings.Join(serverTables(t, dbs[2]), ","); !strings.Contains(tables, "hospital") || !strings.Contains(tables, "patient") {
		t.Errorf("the database of the tenant created through the page has tables %q, want hospital and patient (migrated)", tables)
	}

	// Update through the form: passwords are shown masked, and the page
	// will not send the mask back as a password.
	b.do(chromedp.Click(chromedp.CSS(row(u3) + ` button[data-action="edit"]`)))
	b.waitText("#f-submit", "Update")
	if u, _ := url.Parse(tenants[u1]); u != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			if shown := b.eval(`document.getElementById('f-url').value`); !strings.Contains(shown, "xxxxx") {
				t.Errorf("the update form shows POSTGRES_URL %q, want its password masked", shown)
			}
			b.do(chromedp.Click(chromedp.CSS("#f-submit")))
			b.waitText("#form-result", "still holds xxxxx")
		}
	}
	b.do(
		chromedp.SetValue(chromedp.CSS("#f-url"), testenv.DatabaseURL(t, dbs[2], "application_name", app)),
		chromedp.SetValue(chromedp.CSS("#f-more"), `{"PLAN": "gold"}`),
		chromedp.Click(chromedp.CSS("#f-submit")),
	)
	b.waitText("#form-result", "Updated "+u3+" (version 2)")
	if code, body := s.do("GET", "/api/tenant/"+u3+"/", "", nil, true); code != http.StatusOK || body["version"] != float64(2) ||
		body["deploy_info"].(map[string]any)["PLAN"] != "gold" {
		t.Errorf("after the update through the page, the API answers %d %v; want version 2 with PLAN gold", code, body)
	}
	b.waitExact(row(u3)+` td[data-col="version"]`, "2")

	// Delete through the form, in two clicks.
	del := row(u3) + ` button[data-action="delete"]`
	b.do(chromedp.Click(chromedp.CSS(del)))
	b.waitText(del, "Confirm delete")
	b.do(chromedp.Click(chromedp.CSS(del)))
	b.waitText("#form-result", "Deleted "+u3)
	b.do(chromedp.WaitNotPresent(chromedp.CSS(row(u3))))
	if code, body := s.do("GET", "/api/tenant/"+u3+"/", "", nil, true); code != http.StatusNotFound {
		t.Errorf("after the delete through the page, the API answers %d %v; want 404", code, body)
	}

	b.screenshot("operator-page.png")

	// Forgetting the token forgets what was read with it.
	b.do(chromedp.Click(chromedp.CSS("#forget")), chromedp.WaitVisible(chromedp.CSS("#token")))
	if left := b.eval(`document.querySelectorAll('#tenants tbody tr, #servers .server').length`); left != "0" {
		t.Errorf("after the token was forgotten, the page still shows %s tenants and servers", left)
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	b.waitExact(row(u1)+` td[data-col="ready"]`, "ready")

	for _, m := range b.errors() {
		t.Errorf("console: %s", m)
	}
}

// chromiumPath finds Chromium: TENANTSQL_CHROMIUM, else chromium (Debian's
// package, which scripts/services.sh installs as root) or Chrome on PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TENANTSQL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.CannotRun(t, "no Chromium: install Debian's chromium package (make services does, as root), or set TENANTSQL_CHROMIUM to a Chrome or Chromium binary")
	return ""
}

// sessionsOn counts the sessions of the server with application_name
// app that wait for a lock, and describes them all.
func sessionsOn(t *testing.T, app string) (locked int, all string) {
	t.Helper()
	rows, err := testenv.Admin(t).Query("SELECT datname, state, coalesce(wait_event_type, ''), query FROM pg_stat_activity WHERE application_name = $1", app)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var desc []string
	for rows.Next() {
		var db, state, wait, query string
		if err := rows.Scan(&db, &state, &wait, &query); err != nil {
			t.Fatal(err)
		}
		if wait == "Lock" {
			locked++
		}
		desc = append(desc, fmt.Sprintf("%s %s %s %q", db, state, wait, query))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return locked, strings.Join(desc, "; ")
}

// serverName is how Stats (and so the page) names the test server:
// host:port.
func serverName(t *testing.T) string {
	u, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5432")
	}
	return u.Host
}

// lockTable takes an ACCESS EXCLUSIVE lock on table in db, in a
// transaction of its own, and returns what lets it go.
func lockTable(t *testing.T, db, table string) (unlock func()) {
	t.Helper()
	c, err := sql.Open("pgx", testenv.DatabaseURL(t, db))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	if _, err := tx.Exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE"); err != nil {
		tx.Rollback()
		c.Close()
		t.Fatal(err)
	}
	var once sync.Once
	unlock = func() {
		once.Do(func() {
			tx.Rollback()
			c.Close()
		})
	}
	t.Cleanup(unlock)
	return unlock
}

// browser is a headless Chromium with one page, and what its console
// said.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
}

func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1100),
		// As root (CI), Chromium refuses to start with its sandbox.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// No connection of its own to anywhere: this machine's network is
		// closed, and refusals would only add noise.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		chromedp.Cancel(cctx)
		ccancel()
		cancel()
		cancelAlloc()
	})
	// The browser starts here, so that the console is read from the
	// page's first line on.
	if err := chromedp.Do(ctx); err != nil {
		testenv.CannotRun(t, "Chromium at %s does not start: %v", path, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.messages = append(b.messages, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// hang bounds each step; it only catches a page that never gets there.
const hang = 60 * time.Second

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, hang)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\nconsole:\n%s", err, b.console())
	}
}

// eval returns a JavaScript expression's value, as a string.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, hang)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string]("String("+expr+")"))
	if err != nil {
		b.t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return v
}

// waitText waits until the text of the element sel selects contains
// want, as the operator reads it.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	b.wait(sel, want, strings.Contains)
}

// waitExact waits until the text of the element sel selects is want,
// spaces around aside: "not ready" is not "ready".
func (b *browser) waitExact(sel, want string) {
	b.t.Helper()
	b.wait(sel, want, func(got, want string) bool { return strings.TrimSpace(got) == want })
}

func (b *browser) wait(sel, want string, match func(got, want string) bool) {
	b.t.Helper()
	var last string
	deadline := time.Now().Add(hang)
	for {
		last = b.eval(`(document.querySelector('` + sel + `') || {textContent: '(no element)'}).textContent`)
		if match(last, want) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("browser: %s says %q, want %q\nconsole:\n%s", sel, last, want, b.console())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitingPixels counts the pixels of the chart's waiting line (its colour,
// #cf222e) above the zero line of the canvas sel selects.
func (b *browser) waitingPixels(sel string) int {
	b.t.Helper()
	n, err := strconv.Atoi(b.eval(`(() => {
		const c = document.querySelector('` + sel + `');
		const top = Math.max(0, Number(c.dataset.baseline) - 3);
		if (top === 0) return 0;
		const d = c.getContext('2d').getImageData(0, 0, c.width, top).data;
		let n = 0;
		for (let i = 0; i < d.length; i += 4) {
			if (Math.abs(d[i] - 0xcf) < 24 && Math.abs(d[i + 1] - 0x22) < 24 && Math.abs(d[i + 2] - 0x2e) < 24) n++;
		}
		return n;
	})()`))
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

func (b *browser) console() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s strings.Builder
	for _, m := range b.messages {
		fmt.Fprintf(&s, "  %s %s %s\n", m.Type, m.Source, m.Text)
	}
	return s.String()
}

// errors returns the console's errors: exceptions, console.error, and
// the browser's own (a refused Content-Security-Policy, a failed load).
// The one expected kind is the health check's 503, its answer when a
// tenant is unhealthy: while the lock above holds the budget, a check
// that the page makes on its own may find no session in time.
func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.messages {
		if m.Type != chromedp.ConsoleError && !m.IsException() {
			continue
		}
		if m.Source == "network" && strings.HasSuffix(m.URL, "/health-check/") && strings.Contains(m.Text, "503") {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %s (%s:%d)", m.Type, m.Source, m.Text, m.URL, m.Line))
	}
	return out
}

// screenshot keeps a PNG of the whole page in artifactDir.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, hang)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		b.t.Fatalf("browser: the screenshot is not a PNG")
	}
	dir := artifactDir(b.t)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

// artifactDir is where tests keep what a person may want to look at
// after a run: TENANTSQL_TEST_ARTIFACTS, else .artifacts at the root of
// the repository (ignored by git).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TENANTSQL_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ".artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// Without authentication (--insecure-no-auth) the page asks for no token
// and works: its requests are same-origin, which the API lets through. On
// the Redis store, it shows the store's connection, and a tenant created
// through another instance appears.
func TestOperatorPageWithoutAuth(t *testing.T) {
	chromium := chromiumPath(t)
	testenv.PostgresURL(t)
	redisURL := testenv.WithQuery(testenv.RedisURL(t), "prefix", testenv.RedisPrefix(t))
	db := testenv.Unique("tsql_hosp_uin")
	t.Cleanup(func() { testenv.DropDatabase(t, db) })
	a := start(t, redisURL, "--insecure-no-auth")
	other := start(t, redisURL, "--insecure-no-auth")

	b := newBrowser(t, chromium)
	b.do(chromedp.Navigate(a.url + "/api/ui/"))
	b.waitText("#tenant-count", "(0)")
	if hidden := b.eval(`document.getElementById('login').hidden`); hidden != "true" {
		t.Error("the page asks for a token of an API that needs none")
	}
	const id = "tenant-un.test.com"
	if code, body := other.do("POST", "/api/tenant/", "", map[string]any{"tenant_id": id, "deploy_info": map[string]string{"POSTGRES_URL": tenantURL(t, db)}}, false); code != http.StatusCreated {
		t.Fatalf("create through the other instance: %d %v", code, body)
	}
	b.waitExact(`tr[data-tenant="`+id+`"] td[data-col="ready"]`, "ready")
	b.do(chromedp.Click(chromedp.CSS("#check-health")))
	b.waitExact(`tr[data-tenant="`+id+`"] td[data-col="health"]`, "ok")
	b.waitText("#store", "store ok: connected")
	for _, m := range b.errors() {
		t.Errorf("console: %s", m)
	}
}
