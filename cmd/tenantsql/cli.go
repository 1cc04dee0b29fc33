package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenantsql/tenantsql/hooks"
	"github.com/tenantsql/tenantsql/keyring"
	"github.com/tenantsql/tenantsql/store"
)

const usage = `usage: tenantsql [--store URL] [-v] COMMAND ...

Commands:
  tenants list [--json]                              list tenants (passwords redacted)
  tenants get ID [--json]                            show one tenant
  tenants add ID POSTGRES_URL|- [KEY=VALUE ...]      create a tenant ("-": read the URL from stdin)
        [--create-database]                          first create its database (and schema) if missing
  tenants update ID POSTGRES_URL|- [KEY=VALUE ...]   replace a tenant's deploy info [--version N]
                                                     (only if at store version N, tenants get shows it)
  tenants rm ID [--drop-database [--yes]]            delete a tenant; its database and data are kept
                                                     unless --drop-database (asks first unless --yes),
                                                     and kept while another tenant uses the database
  tenants load FILE [--dry-run]                      import a tenant_config.json (create or update)
  tenants resync                                     Redis: make every process drop tenants the store lost
  tenants rekey                                      seal every tenant's secrets with the primary key of
                                                     $TENANTSQL_KEYS (idempotent; rerun after a crash)
  migrate up|up-to V|down|down-to V|status --dir DIR run goose migrations for every tenant
                                                     (see tenantsql migrate --help)
  migrate create NAME [--dir DIR] [--sql|--go]       write a new goose migration file

The store URL (file:PATH, redis://HOST:PORT/DB, ...) comes from --store or $TENANTSQL_STORE.
$TENANTSQL_KEYS (ID:BASE64KEY[,ID:BASE64KEY...], the first the primary) seals tenants'
secrets at rest in the store, and opens them.
-v (or TENANTSQL_DEBUG=1) also shows the logs of the libraries underneath, such as the
Redis client's. --store and -v may come anywhere on the line, before or after the command.
`

// exit codes
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	storeURL       string
	keys           string // $TENANTSQL_KEYS: never shown
	verbose        bool   // -v or TENANTSQL_DEBUG=1: the libraries' own logs too
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	g, rest, err := splitGlobal(args)
	if err != nil {
		fmt.Fprintf(stderr, "tenantsql: %v\n\n%s", err, usage)
		return exitUsage
	}
	c.storeURL = getenv("TENANTSQL_STORE")
	if g.store != nil {
		c.storeURL = *g.store
	}
	c.keys = getenv("TENANTSQL_KEYS")
	c.verbose = g.verbose || getenv("TENANTSQL_DEBUG") == "1"
	quietRedis(!c.verbose)
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch {
	case rest[0] == "tenants":
		return c.tenants(ctx, rest[1:])
	case rest[0] == "migrate":
		return c.migrate(ctx, rest[1:])
	case isHelp(rest[0]):
		fmt.Fprint(stdout, usage)
		return exitOK
	case strings.HasPrefix(rest[0], "-") && rest[0] != "-":
		return c.usageError("flag provided but not defined: %s", rest[0])
	}
	fmt.Fprintf(stderr, "tenantsql: unknown command %q\n\n%s", rest[0], usage)
	return exitUsage
}

// parseError ends a command whose flags did not parse. Asking for help
// (-h, --help) is not an error: the usage text goes to stdout, where it
// can be paged or searched, and the exit status is 0. Otherwise the flag
// package has said what was wrong, and the usage follows on stderr.
func (c *cli) parseError(err error, text string) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(c.stdout, text)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "\n%s", text)
	return exitUsage
}

// isHelp reports an argument that asks for help where a subcommand is
// expected.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

func (c *cli) fail(err error) int {
	fmt.Fprintf(c.stderr, "tenantsql: %v\n", err)
	return exitError
}

func (c *cli) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "tenantsql: "+format+"\n\n%s", append(args, usage)...)
	return exitUsage
}

func (c *cli) open(ctx context.Context, opts ...store.OpenOption) (store.Store, error) {
	if c.storeURL == "" {
		return nil, errors.New("no tenant store: give --store URL or set TENANTSQL_STORE")
	}
	kr, err := c.keyring()
	if err != nil {
		return nil, err
	}
	if kr != nil {
		opts = append(opts, store.WithKeys(kr))
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return store.Open(octx, c.storeURL, opts...)
}

// keyring returns the keys of $TENANTSQL_KEYS, or nil if it is not set.
func (c *cli) keyring() (*keyring.Keyring, error) {
	if c.keys == "" {
		return nil, nil
	}
	ks, err := keyring.ParseKeys(c.keys)
	if err != nil {
		return nil, fmt.Errorf("TENANTSQL_KEYS: %w", err)
	}
	return keyring.New(ks), nil
}

// parseArgs separates flags, which may come anywhere, from positional
// arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (c *cli) tenants(ctx context.Context, args []string) int {
	if len(args) == 0 {
		return c.usageError("tenants: missing subcommand")
	}
	sub, args := args[0], args[1:]
	if isHelp(sub) {
		fmt.Fprint(c.stdout, usage)
		return exitOK
	}
	fs := flag.NewFlagSet("tenants "+sub, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {}
	asJSON := fs.Bool("json", false, "print JSON")
	version := fs.Int64("version", 0, "update only if the tenant is at this store version (tenants get shows it)")
	dryRun := fs.Bool("dry-run", false, "show what load would do without doing it")
	createDB := fs.Bool("create-database", false, "add: create the tenant's database (and schema) if missing, before adding it")
	dropDB := fs.Bool("drop-database", false, "rm: drop the tenant's database, with all its data, after deleting it")
	yes := fs.Bool("yes", false, "rm --drop-database: do not ask for confirmation")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return c.parseError(err, usage)
	}
	want := map[string][2]int{"list": {0, 0}, "get": {1, 1}, "add": {2, -1}, "update": {2, -1}, "rm": {1, 1}, "load": {1, 1}, "resync": {0, 0}, "rekey": {0, 0}}
	n, ok := want[sub]
	if !ok {
		return c.usageError("tenants: unknown subcommand %q", sub)
	}
	if len(pos) < n[0] || n[1] >= 0 && len(pos) > n[1] {
		return c.usageError("tenants %s: wrong number of arguments", sub)
	}
	switch {
	case *createDB && sub != "add":
		return c.usageError("tenants %s: --create-database applies to add only", sub)
	case *dropDB && sub != "rm":
		return c.usageError("tenants %s: --drop-database applies to rm only", sub)
	case *yes && !*dropDB:
		return c.usageError("tenants %s: --yes applies to rm --drop-database only", sub)
	case sub == "rekey" && c.keys == "":
		// Not a usage error: the command is right, its environment lacks
		// the keys.
		return c.fail(errors.New("tenants rekey: set TENANTSQL_KEYS to the keys, the new primary first and the old ones after it"))
	}
	var opts []store.OpenOption
	if sub == "rekey" {
		// Rekey seals secrets written in clear among sealed ones, which
		// every other command refuses to read.
		opts = append(opts, store.WithPlaintextAllowed(true))
	}
	s, err := c.open(ctx, opts...)
	if err != nil {
		return c.fail(err)
	}
	defer s.Close()
	switch sub {
	case "list":
		return c.list(ctx, s, *asJSON)
	case "get":
		return c.get(ctx, s, pos[0], *asJSON)
	case "add", "update":
		return c.put(ctx, s, sub, pos, *version, *createDB)
	case "rm":
		return c.rm(ctx, s, pos[0], *dropDB, *yes)
	case "load":
		return c.load(ctx, s, pos[0], *dryRun)
	case "resync":
		return c.resync(ctx, s)
	case "rekey":
		return c.rekey(ctx, s)
	}
	return exitUsage
}

func (c *cli) list(ctx context.Context, s store.Store, asJSON bool) int {
	ts, err := s.List(ctx)
	if err != nil {
		return c.fail(err)
	}
	if asJSON {
		return c.printJSON(redactAll(ts))
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	// STORE_VERSION: the tenant record's version, which --version
	// names, not the schema version of its database (migrate status).
	fmt.Fprintln(tw, "ID\tSTORE_VERSION\tUPDATED\tPOSTGRES_URL\tOTHER")
	for _, t := range ts {
		r := t.Redacted()
		var other []string
		for _, k := range slices.Sorted(maps.Keys(r.DeployInfo)) {
			if k != store.KeyPostgresURL {
				other = append(other, k+"="+r.DeployInfo[k])
			}
		}
		updated := "-"
		if !t.UpdatedAt.IsZero() {
			updated = t.UpdatedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", t.ID, t.Version, updated, r.PostgresURL(), strings.Join(other, " "))
	}
	tw.Flush()
	fmt.Fprintf(c.stderr, "%d tenants\n", len(ts))
	return exitOK
}

func redactAll(ts []store.Tenant) []store.Tenant {
	out := make([]store.Tenant, len(ts))
	for i, t := range ts {
		out[i] = t.Redacted()
	}
	return out
}

func (c *cli) printJSON(v any) int {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return c.fail(err)
	}
	return exitOK
}

func (c *cli) get(ctx context.Context, s store.Store, id string, asJSON bool) int {
	t, err := s.Get(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	if asJSON {
		return c.printJSON(t.Redacted())
	}
	r := t.Redacted()
	fmt.Fprintf(c.stdout, "tenant_id: %s\nstore_version: %d\n", t.ID, t.Version)
	if !t.CreatedAt.IsZero() {
		fmt.Fprintf(c.stdout, "created_at: %s\nupdated_at: %s\n", t.CreatedAt.Format(time.RFC3339), t.UpdatedAt.Format(time.RFC3339))
	}
	fmt.Fprintln(c.stdout, "deploy_info:")
	for _, k := range slices.Sorted(maps.Keys(r.DeployInfo)) {
		fmt.Fprintf(c.stdout, "  %s: %s\n", k, r.DeployInfo[k])
	}
	return exitOK
}

// deployInfo builds deploy info from a POSTGRES_URL argument ("-" reads it
// from stdin) and KEY=VALUE arguments.
func (c *cli) deployInfo(pgURL string, kvs []string) (map[string]string, error) {
	if pgURL == "-" {
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return nil, fmt.Errorf("reading POSTGRES_URL from standard input: %w", err)
		}
		pgURL = strings.TrimSpace(line)
	}
	info := map[string]string{store.KeyPostgresURL: pgURL}
	for i, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			// Not echoed: a mistyped API_TOKEN:secret would print the secret.
			return nil, fmt.Errorf("deploy info argument %d after POSTGRES_URL: want KEY=VALUE (not shown, as it may hold a secret)", i+1)
		}
		if k == store.KeyPostgresURL {
			return nil, fmt.Errorf("give %s as the second argument, not as KEY=VALUE", store.KeyPostgresURL)
		}
		info[k] = v
	}
	return info, nil
}

func (c *cli) put(ctx context.Context, s store.Store, sub string, pos []string, version int64, createDB bool) int {
	info, err := c.deployInfo(pos[1], pos[2:])
	if err != nil {
		return c.fail(err)
	}
	t := store.Tenant{ID: pos[0], DeployInfo: info, Version: version}
	// As the admin API does, so that a tenant the API would refuse, and
	// that would never be served, is not written here either.
	if err := store.ValidateUsable(t); err != nil {
		return c.fail(err)
	}
	var got store.Tenant
	if sub == "add" {
		if version != 0 {
			return c.usageError("tenants add: --version applies to update only")
		}
		if createDB {
			if err := c.createDatabase(ctx, s, t); err != nil {
				return c.fail(err)
			}
		}
		got, err = s.Create(ctx, t)
	} else {
		got, err = s.Update(ctx, t)
	}
	if err != nil {
		return c.fail(explainStore(err, t.ID))
	}
	verb := map[string]string{"add": "created", "update": "updated"}[sub]
	fmt.Fprintf(c.stdout, "%s %s (store version %d, POSTGRES_URL %s)\n", verb, got.ID, got.Version, store.RedactURL(got.PostgresURL()))
	return exitOK
}

// createDatabase creates a tenant's database, and a schema tenant's
// schema, if missing, with the library's create hooks, before the tenant
// is added: the processes that follow the store then find them when they
// migrate the new tenant. A tenant that exists already is left alone.
func (c *cli) createDatabase(ctx context.Context, s store.Store, t store.Tenant) error {
	if _, err := s.Get(ctx, t.ID); err == nil {
		return fmt.Errorf("tenant %q already exists; nothing created", t.ID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	createDB, _ := hooks.Databases()
	createSchema, _ := hooks.Schemas()
	ev := hooks.Event{Kind: hooks.OnCreate, Tenant: t}
	if err := createDB(ctx, ev); err != nil {
		return fmt.Errorf("%w; the tenant was not added", err)
	}
	if err := createSchema(ctx, ev); err != nil {
		return fmt.Errorf("%w; the tenant was not added", err)
	}
	fmt.Fprintf(c.stdout, "database ready (created if it was missing): %s\n", store.RedactURL(t.PostgresURL()))
	return nil
}

func (c *cli) rm(ctx context.Context, s store.Store, id string, dropDB, yes bool) int {
	var t store.Tenant
	if dropDB {
		var err error
		t, err = s.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(c.stdout, "%s: no such tenant, nothing deleted or dropped\n", id)
			return exitOK
		}
		if err != nil {
			return c.fail(err)
		}
		if !yes && !c.confirm(fmt.Sprintf("Delete tenant %s and drop its database (%s), with all its tables and rows? This cannot be undone. [y/N] ", id, store.RedactURL(t.PostgresURL()))) {
			return c.fail(errors.New("not confirmed: nothing deleted (give --yes to skip the question)"))
		}
	}
	deleted, err := s.Delete(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	if !deleted {
		fmt.Fprintf(c.stdout, "%s: no such tenant, nothing deleted\n", id)
		return exitOK
	}
	fmt.Fprintf(c.stdout, "deleted %s\n", id)
	if !dropDB {
		return exitOK
	}
	// After the delete: the processes that follow the store let go of the
	// database (FORCE ends the sessions left), and the store no longer
	// lists the tenant among those that keep the database.
	_, drop := hooks.Databases(hooks.DropDatabaseOnDelete(s))
	if err := drop(ctx, hooks.Event{Kind: hooks.PostDelete, Tenant: t}); err != nil {
		return c.fail(fmt.Errorf("deleted %s, but its database was not dropped: %w", id, err))
	}
	fmt.Fprintf(c.stdout, "dropped its database (%s)\n", store.RedactURL(t.PostgresURL()))
	return exitOK
}

// confirm asks a yes/no question on stderr and reads the answer from
// stdin; anything but y or yes, end of input included, is no.
func (c *cli) confirm(question string) bool {
	fmt.Fprint(c.stderr, question)
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(c.stderr)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

// load imports a tenant_config.json: tenants it lists are created, or
// updated where their deploy info differs. Tenants it does not list are
// left alone.
func (c *cli) load(ctx context.Context, s store.Store, path string, dryRun bool) int {
	// The file may be a copy of a sealed store: open it with the keys.
	kr, err := c.keyring()
	if err != nil {
		return c.fail(err)
	}
	src, err := store.OpenFile(ctx, path, store.WithFilePollInterval(0), store.WithFileKeys(kr))
	if err != nil {
		return c.fail(err)
	}
	defer src.Close()
	want, err := src.List(ctx)
	if err != nil {
		return c.fail(err)
	}
	var created, updated, same, failed int
	for _, t := range want {
		cur, err := s.Get(ctx, t.ID)
		action := "create"
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			fmt.Fprintf(c.stderr, "tenantsql: %s: %v\n", t.ID, err)
			failed++
			continue
		case maps.Equal(cur.DeployInfo, t.DeployInfo):
			same++
			continue
		default:
			action = "update"
		}
		if err := store.ValidateUsable(t); err != nil {
			fmt.Fprintf(c.stderr, "tenantsql: %s: %v\n", t.ID, err)
			failed++
			continue
		}
		if !dryRun {
			in := store.Tenant{ID: t.ID, DeployInfo: t.DeployInfo}
			if action == "create" {
				_, err = s.Create(ctx, in)
			} else {
				_, err = s.Update(ctx, in)
			}
			if err != nil {
				fmt.Fprintf(c.stderr, "tenantsql: %s: %v\n", t.ID, explainStore(err, t.ID))
				failed++
				continue
			}
		}
		fmt.Fprintf(c.stdout, "%s %s (POSTGRES_URL %s)\n", map[bool]string{true: "would " + action, false: action + "d"}[dryRun], t.ID, store.RedactURL(t.PostgresURL()))
		if action == "create" {
			created++
		} else {
			updated++
		}
	}
	prefix := ""
	if dryRun {
		prefix = "dry run: "
	}
	fmt.Fprintf(c.stderr, "%s%d created, %d updated, %d unchanged, %d failed\n", prefix, created, updated, same, failed)
	if failed > 0 {
		return exitError
	}
	return exitOK
}

func (c *cli) resync(ctx context.Context, s store.Store) int {
	r, ok := s.(interface{ AcceptLoss(context.Context) error })
	if !ok {
		return c.fail(errors.New("resync applies to a Redis store only"))
	}
	if err := r.AcceptLoss(ctx); err != nil {
		return c.fail(err)
	}
	fmt.Fprintln(c.stdout, "every process will now resync with the store, dropping tenants it no longer lists")
	return exitOK
}

func (c *cli) rekey(ctx context.Context, s store.Store) int {
	r, ok := s.(store.Rekeyer)
	if !ok {
		return c.fail(errors.New("rekey applies to a file or Redis store only: a memory store holds nothing at rest"))
	}
	res, err := r.Rekey(ctx)
	if err != nil {
		return c.fail(err)
	}
	for _, err := range res.Failed {
		fmt.Fprintf(c.stderr, "tenantsql: left as it is: %v\n", err)
	}
	fmt.Fprintln(c.stdout, res)
	if len(res.Failed) > 0 {
		return exitError
	}
	return exitOK
}
