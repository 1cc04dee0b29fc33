// Package store keeps the tenants of a tenantsql application and tells every
// part of the program when they change.
//
// A Tenant is an id plus deploy info: a map that holds at least
// POSTGRES_URL, the tenant's database, and any other keys the application
// wants kept with it. A Store holds the tenants, answers Get and List,
// applies Create, Update and Delete, and reports every change to its
// watchers. The tenantsql driver uses one to find each tenant's database;
// the admin API and the command-line tool use one to change them.
//
// # Backends
//
// Open picks the backend from a URL, so that configuration is one string:
//
//	file:tenant_config.json               a JSON file, relative to the working directory
//	file:///etc/app/tenants.json          the same with an absolute path
//	file:tenants.json?create=true&poll=5s options
//	redis://:secret@redis:6379/0          Redis, shared by every process (rediss:// for TLS)
//	redis://h1:6379?addr=h2:6379          Redis Cluster (several addresses, or cluster=true)
//	redis://s1:26379?master_name=mymaster Redis behind Sentinel
//	memory:                               an empty store in this process, for tests
//
// Redis URLs take the store's own options prefix= (key prefix, default
// "tenantsql"), check= (how often a follower compares versions, default
// 5s), resync= (how often it rereads every tenant, default 5m) and
// stream_length= (events kept, default 10000), and any of
// go-redis's (dial_timeout=3s, ...). See Redis for how changes reach every
// process and what happens when Redis restarts or loses its data.
//
// The file store is the default: nothing else to run. Every write replaces
// the file atomically (a temporary file in the same directory, fsync,
// rename), so a crash or a concurrent reader sees the old file or the new
// one, never a torn one. Writers in several processes are serialized by an
// advisory lock on a sidecar file, ".NAME.lock" (flock, on Unix systems;
// elsewhere only writers within one process are serialized), and each
// write starts from what is on disk, so no process undoes another's
// change. A path that is a symbolic link updates the file it points to. A process learns
// of changes made by others by reading the file every poll interval
// (default 1s, poll=0 turns it off). A file that breaks while the program
// runs, say by a bad hand edit, is logged once and the tenants read before
// stay in use until it is fixed; writes refuse to replace it. New files are
// created with mode 0600, since they hold database passwords; an existing
// file keeps its mode. A missing file is an error, so that a mistyped path
// fails at start-up rather than serving no tenants; create=true makes it an
// empty store instead, written at the first change.
//
// # File format
//
//	{
//	  "version": 3,
//	  "tenants": {
//	    "tenant-1.test.com": {"deploy_info": {"POSTGRES_URL": "postgres://app:secret@db/one"}},
//	    "tenant-2.test.com": {"deploy_info": {"POSTGRES_URL": "postgres://app:secret@db/two", "REGION": "eu"}}
//	  }
//	}
//
// Only "tenants" and each tenant's "deploy_info" are required, so the file
// is easy to write by hand; the store adds versions and timestamps when it
// writes. Unknown fields, a tenant named twice and anything after the top
// object are errors, not silently ignored: a misspelt "deploy-info" would
// otherwise be a tenant without a database. Errors name the file, the line
// and column where the JSON breaks, and the tenant and field that is wrong.
//
// # Ids
//
// A tenant id is 1 to 128 bytes of [a-z0-9._-], starting with a letter or
// digit. Ids are compared byte for byte, with no folding of case or
// punctuation, so "a-b" and "a.b" are two tenants. Validate and ValidateID
// check ids and deploy info; their errors are *ValidationError values that
// name the field and wrap ErrInvalid. Every store checks with Validate.
// ValidateUsable checks more, what a writer of tenants should check before
// it writes: every postgres:// value of deploy_info names no file and
// parses with pgx (a tenant that fails it would be stored but never
// served). The admin API and the tenantsql command check with it.
//
// # Secrets
//
// Deploy info holds passwords, and they must not leak into logs, API
// answers or error messages. Tenant.String, GoString and LogValue (so fmt
// and log/slog) and Tenant.Redacted show a URL's password, and the values
// of keys that name a secret, as "xxxxx"; RedactURL does the same for one
// URL, and does not echo a string it cannot parse. Errors from this package
// never contain a password. Tenant values themselves, and their JSON
// encoding, do hold the password: that is what the driver connects with.
//
// # Secrets at rest
//
// Without keys, the file and Redis hold every tenant's password in clear:
// whoever can read the file, the Redis keyspace or a backup of either can
// connect to every tenant's database. Given keys (package keyring:
// WithFileKeys, WithRedisKeys, Open's WithKeys, or the URL option keys=env,
// which reads TENANTSQL_KEYS, or keys_file=PATH), a store seals every value
// of deploy_info that is a URL (it holds "://", whatever the scheme, and
// whether or not it holds a password), a DSN with a password, the
// tenant's POSTGRES_URL, or the value of a key that names a secret (as
// Tenant.Redacted hides it) with AES-256-GCM when it writes a tenant, and
// opens it when it reads one. URLs are sealed whole, host and database
// included, so that nobody without the key can point a tenant at another
// server, not even one whose URL holds no password (PGPASSWORD or .pgpass
// supplies it). Other values stay in clear. What the store holds in memory, and what watchers, the driver and
// hooks see, is plaintext: the cost is paid when tenants are read or
// followed, never per query.
//
// Values are written as enc:v1:KEYID:..., bound to their tenant, their
// key name and their key id. Several keys may be configured, the first
// the primary: writes seal with it, reads open with any. A value this
// process cannot open (its key is not configured, or it was altered or
// copied from another tenant) is logged with the tenant and the key id and
// left sealed: that tenant is unusable, its queries fail with the
// driver's ErrTenantConfig naming the key, Tenant.IsSealed reports it, and
// the other tenants and the Redis follower carry on. Writing the tenant
// again, or configuring its key, makes it usable. A process without keys
// refuses to create or update a tenant in a store that holds sealed
// values (ErrNoKeys), so no password is written in clear among sealed
// ones (a tenantsql older than sealing does not check); it may delete
// one, which writes no secret; records written in
// clear before keys were configured are read as before, and sealed at
// their next write (tenantsql tenants rekey seals every one). Once a
// store is sealed all through (Redis: a rekey left no secret in clear; a
// file: it holds sealed values), a process with keys refuses a secret in
// clear (ErrPlaintext, a *PlaintextError naming the tenant and the key):
// someone who can write the store but has no key could otherwise point a
// tenant at a server of theirs. The refusal is the tenant's alone: it is
// left out (or kept for watchers as this process last read it), Get and
// writes of that tenant return the error,
// the line is logged, and the other tenants are served and written (a
// file store carries the refused record over as it is). Rekey reads such
// a secret, and seals it. Sealing cannot tell a
// tenant's current sealed value from an older one put back in its place;
// see SECURITY.md.
//
// Encryption is turned on across a fleet by giving every process the keys
// first, then running tenantsql tenants rekey: from the first sealed write
// until the rollout ends, processes without keys can neither open the
// sealed tenants nor write. Rekey checks its primary key before it marks a
// Redis store. No command decrypts a store (the README says how to go
// back).
//
// A key is rotated in four steps across a fleet: add it as a secondary
// key everywhere, then make it the primary everywhere, then run
// tenantsql tenants rekey, then drop the old key (the README says why in
// that order).
//
// # Watching
//
// Watch returns a channel whose first event is an EventSync carrying every
// tenant. Then come the changes, EventCreate, EventUpdate and EventDelete,
// in the order they were made; Event.Version grows by one with each (a
// Redis store may skip a change superseded before it read it). A
// watcher that falls behind by more than a few thousand events does not
// hold up writers and does not lose changes: its queue is dropped and it
// gets a fresh EventSync instead. The file store also sends an EventSync
// when it sees a change made by another process, and the Redis store after
// every reconnect or gap. So a consumer that treats an EventSync as "this
// is the whole set now" and applies the other events one by one always
// converges on the store's state; after a loss of data in Redis the state
// includes the tenants it lost (Event.DataLoss). A Tracker does all of this and
// reports each tenant's change; a tenant deleted and created again while
// the consumer looked away (its CreatedAt differs) is reported as a delete
// then a create, so hooks run for both. The channel is closed when the context
// given to Watch ends or the store is closed.
//
// # Sharing a budget
//
// A Leaser lets the processes that share a store share a budget, such as
// the connections a PostgreSQL server takes: each process leases a part
// of it for a time-to-live and renews it, and no grant takes the live
// leases past the budget (one lowered by a holder that joins with a
// smaller budget holds once the others have given back down to it; see
// Leaser). *Redis is one: its leases on a
// server are one hash, {PREFIX:fleet:SERVER}, granted by a Lua script on
// Redis's clock, so that it works on Redis Cluster and behind Sentinel as
// on one server. A process that crashes loses its lease when it expires.
// A failover to a replica that missed the last grants (Redis replicates
// asynchronously) loses them, and a Redis clock (TIME) stepped forward
// expires leases early: keep the servers' clocks synchronised and slewed.
//
// All Store implementations are safe for concurrent use. Returned Tenant
// values are copies: changing one changes nothing in the store.
package store
