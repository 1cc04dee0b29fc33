package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantsql/tenantsql/keyring"
)

// File is a Store kept in one JSON file:
//
//	{
//	  "version": 3,
//	  "tenants": {
//	    "tenant-1.test.com": {"deploy_info": {"POSTGRES_URL": "postgres://..."}}
//	  }
//	}
//
// Only "tenants" and each tenant's "deploy_info" are required; the store
// adds versions and timestamps when it writes. Every write replaces the
// file atomically (a temporary file in the same directory, fsync, rename),
// so a crash leaves either the old or the new file, never a torn one.
// Writers in several processes are serialized by an advisory lock on a
// sidecar file (".NAME.lock"), and each write starts from what is on disk,
// so no process overwrites another's change. Changes made by other
// processes are picked up by polling the file (WithFilePollInterval) and
// delivered to watchers as an EventSync; Get and List answer from memory,
// so they see such a change after the next poll.
//
// The file holds database passwords: new files are created with mode 0600.
type File struct {
	path string
	log  *slog.Logger
	poll time.Duration
	kr   *keyring.Keyring // seals secret values at rest; nil: none
	// plain: read secrets in clear among sealed ones (WithFilePlaintextAllowed)
	plain bool

	writeMu sync.Mutex // serializes writers in this process before the file lock

	localStore
	// Guarded by mu, in localStore.
	known   os.FileInfo       // the file st was read from or written to
	sum     [sha256.Size]byte // and a hash of its content
	lastErr string            // last reload error logged, to log each once
	// strict is set once this process, with keys, has read the file
	// holding sealed values and no secret in clear, or written it: from
	// then it refuses a file with a secret in clear even if no value is
	// sealed any more (all of them replaced). It is never cleared.
	strict bool
	// cache holds the sealed form of the secrets last read or written, so
	// that a write seals again only those that changed.
	cache sealCache
	// refused holds the tenants of the file that this process refuses, a
	// secret in clear among sealed ones (see parse), by id: each is left
	// out of st, or kept there as last read, and a write carries its
	// record over as the file holds it.
	refused map[string]plainRecord

	done chan struct{}  // closed by Close, to stop pollLoop
	wg   sync.WaitGroup // pollLoop
	// polls counts the polls pollLoop completed (logging included), so
	// that tests wait for the next ones instead of sleeping.
	polls atomic.Int64
}

var (
	_ Store     = (*File)(nil)
	_ Sequencer = (*File)(nil)
)

// OpenFile opens the store in the JSON file at path and reads it. A file
// that does not parse or holds an invalid tenant is an error that names the
// file and the problem.
func OpenFile(ctx context.Context, path string, opts ...FileOption) (*File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := fileOptions{poll: time.Second, log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := filepath.Abs(path); err != nil {
		return nil, fmt.Errorf("store: file %s: %w", path, err)
	}
	f := &File{
		path:  path,
		log:   o.log,
		poll:  o.poll,
		kr:    o.keys,
		plain: o.plain,
		done:  make(chan struct{}),
	}
	data, fi, err := f.load()
	switch {
	case errors.Is(err, fs.ErrNotExist) && o.create:
		f.st = newState()
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w (to start with no tenants, and the file written on the first change, open file:%s?create=true, or OpenFile with WithFileCreate(true))", err, path)
	case err != nil:
		return nil, err
	default:
		if f.st, err = f.parse(data, false); err != nil {
			return nil, err
		}
		f.known, f.sum = fi, sha256.Sum256(data)
	}
	if f.poll > 0 {
		f.wg.Add(1)
		go f.pollLoop()
	}
	return f, nil
}

// Path returns the file's path as given to OpenFile.
func (f *File) Path() string { return f.path }

func (f *File) errorf(format string, args ...any) error {
	return fmt.Errorf("store: file %s: "+format, append([]any{f.path}, args...)...)
}

// load reads the file. The FileInfo, used for the file's mode, is taken
// before reading.
func (f *File) load() ([]byte, os.FileInfo, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil, nil, f.errorf("%w", unwrapPathError(err))
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, nil, f.errorf("%w", unwrapPathError(err))
	}
	return data, fi, nil
}

// parse decodes the file's content; errors name the file. Tenants whose
// secrets cannot be opened are logged: they are kept, unusable.
//
// A process with keys refuses a secret in clear in a file that holds
// sealed values, or that it has seen or written sealed (strict), unless
// allowPlain (Rekey, which seals it) or f.plain: every write of a process
// with keys seals every secret, and one of this version without keys
// does not write into a file that holds sealed values, so such a secret
// was written by hand, by an older tenantsql, or by someone without the
// key, who could thus point a tenant at a server of theirs. It refuses
// that tenant alone, as the Redis store does a record: the tenant is
// left out, or kept as this process last read it, and logged with its
// *PlaintextError (f.refused); the others are served, and written. f.mu
// is held, or f is being opened.
func (f *File) parse(data []byte, allowPlain bool) (state, error) {
	st, unopened, at, err := decodeFile(data, f.kr)
	if err != nil {
		return state{}, f.errorf("%w", err)
	}
	f.refused = nil
	if f.kr != nil && len(at.plain) > 0 && (at.sealed || f.strict) && !allowPlain && !f.plain {
		f.refused = at.plain
		errs := make([]error, 0, len(at.plain))
		for id, pr := range at.plain {
			delete(st.tenants, id)
			if old, ok := f.st.tenants[id]; ok {
				st.tenants[id] = old
			}
			errs = append(errs, pr.err)
		}
		logRefused(f.log, f.path, errs)
	}
	if f.kr != nil && at.sealed {
		f.strict = true
	}
	f.cache = at.cache
	logUnopened(f.log, f.path, unopened)
	return st, nil
}

// refusedErr returns the error for tenant id if this process refuses it,
// or nil. It does so whether or not the process holds the tenant as it
// last read it: a write checked against that copy would overwrite the
// record in clear on disk without a version conflict (so lose it), and a
// process started since, which never read it sealed, refuses it anyway.
// Get, Create, Update and Delete then behave alike in every process, as
// on Redis. f.mu is held.
func (f *File) refusedErr(_ *state, id string) error {
	if pr, ok := f.refused[id]; ok {
		return f.errorf("%w", pr.err)
	}
	return nil
}

// carried returns the records of the refused tenants that next leaves as
// f.st has them: a write carries them over as the file holds them, so
// that it neither fails nor drops nor changes a tenant it did not touch.
// A refused tenant the write changed (only Rekey, which seals it, may:
// refusedErr refuses the other writes of it) is written as next has it.
// f.mu is held.
func (f *File) carried(next state) map[string]fileTenant {
	var carry map[string]fileTenant
	for id, pr := range f.refused {
		prev, had := f.st.tenants[id]
		cur, has := next.tenants[id]
		if had != has || had && !sameFileTenant(prev, cur) {
			continue
		}
		if carry == nil {
			carry = make(map[string]fileTenant, len(f.refused))
		}
		carry[id] = pr.raw
	}
	return carry
}

// logRefused logs the tenants refused for a secret in clear, in one line,
// as logUnopened does: the tenant and the key, never the value.
func logRefused(log *slog.Logger, store string, errs []error) {
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	shown := make([]string, 0, min(len(errs), maxLoggedUnopened))
	for _, err := range errs[:min(len(errs), maxLoggedUnopened)] {
		shown = append(shown, err.Error())
	}
	log.Error("tenantsql: store: skipping tenants with a secret in clear in a sealed store; the others are served",
		"store", store, "tenants", len(errs), "errors", shown)
}

// unwrapPathError drops the *fs.PathError wrapper, whose message repeats
// the path our own prefix already names.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// and the hash of what it wrote.
func (f *File) write(st state, carry map[string]fileTenant) (os.FileInfo, [sha256.Size]byte, error) {
	var none [sha256.Size]byte
	data, cache, err := encodeFile(st, f.kr, f.cache, carry)
	if err != nil {
		return nil, none, f.errorf("encode: %w", err)
	}
	mode := fs.FileMode(0o600)
	if f.known != nil {
		mode = f.known.Mode().Perm()
	}
	target := f.target()
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, none, f.errorf("write: %w", unwrapPathError(err))
	}
	tmpName := tmp.Name()
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return nil, none, f.errorf("write: %w", unwrapPathError(err))
	}
	if err := tmp.Chmod(mode); err != nil {
		return nil, none, f.errorf("write: %w", unwrapPathError(err))
	}
	if err := tmp.Sync(); err != nil {
		return nil, none, f.errorf("write: %w", unwrapPathError(err))
	}
	if err := tmp.Close(); err != nil {
		return nil, none, f.errorf("write: %w", unwrapPathError(err))
	}
	if err := os.Rename(tmpName, target); err != nil {
		return nil, none, f.errorf("write: %w", unwrapPathError(err))
	}
	committed = true
	f.cache = cache
	syncDir(dir)
	fi, err := os.Stat(target)
	if err != nil {
		return nil, none, f.errorf("%w", unwrapPathError(err))
	}
	return fi, sha256.Sum256(data), nil
}

// target is the file that writes replace: the store's path with symbolic
// links resolved, so that a linked file is updated rather than replaced by
// a copy (the link kept), and two links to one file share its lock. It is
// resolved at each write, as a link may be pointed elsewhere.
func (f *File) target() string {
	// Link by link rather than filepath.EvalSymlinks, which fails on a
	// link to a file not created yet (WithFileCreate).
	p := f.path
	for range 40 {
		dest, err := os.Readlink(p)
		if err != nil {
			break // not a link, or not there
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(p), dest)
		}
		p = dest
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return abs
}

// syncDir makes the rename durable. It is best effort: some file systems
// refuse to fsync a directory, and the data itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// refreshLocked re-reads the file and, if it differs from what we last read
// or wrote, makes it current and tells watchers. f.mu is held.
//
// It compares content, not size, inode and modification time: those can all
// stay the same across a change (an edit in place within one tick of a
// coarse file system clock, or a rename that reuses a freed inode number,
// which ext4 does at once), and a write that trusted them would silently
// undo another process's change.
func (f *File) refreshLocked(allowPlain bool) error {
	data, fi, err := f.load()
	if errors.Is(err, fs.ErrNotExist) && f.known == nil {
		return nil // created with WithFileCreate and not written yet
	}
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	// Rekey reads again a file whose tenants this process refused, so
	// as to seal them.
	if f.known != nil && sum == f.sum && !(allowPlain && len(f.refused) > 0) {
		f.known = fi
		return nil
	}
	st, err := f.parse(data, allowPlain)
	if err != nil {
		return err
	}
	f.known, f.sum = fi, sum
	if equalTenants(st.tenants, f.st.tenants) && st.version <= f.st.version {
		return nil
	}
	// Keep versions increasing for watchers even if whoever edited the
	// file by hand did not bump "version".
	st.version = max(st.version, f.st.version+1)
	f.st = st
	f.hub.publish(f.st.sync())
	return nil
}

// holdsSealed reports whether a tenant of the state holds a sealed value.
// f.mu is held.
func (f *File) holdsSealed() bool {
	for _, t := range f.st.tenants {
		if hasSealed(t.DeployInfo) {
			return true
		}
	}
	return false
}

// holdsSecret reports whether a tenant of st holds a secret value, sealed
// or not.
func holdsSecret(st state) bool {
	for _, t := range st.tenants {
		for k, v := range t.DeployInfo {
			if keyring.IsSealed(v) || isSecretValue(k, v) {
				return true
			}
		}
	}
	return false
}

func equalTenants(a, b map[string]Tenant) bool {
	return maps.EqualFunc(a, b, sameFileTenant)
}

func sameFileTenant(x, y Tenant) bool {
	// CreatedAt too: another process that deletes a tenant and creates
	// it again leaves its version and often its deploy info as they
	// were, and only the creation time tells.
	return x.Version == y.Version && x.CreatedAt.Equal(y.CreatedAt) && maps.Equal(x.DeployInfo, y.DeployInfo)
}

func (f *File) pollLoop() {
	defer f.wg.Done()
	t := time.NewTicker(f.poll)
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return
		}
		err := f.refreshLocked(false)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		logIt := msg != f.lastErr
		f.lastErr = msg
		f.mu.Unlock()
		if err != nil && logIt {
			// The last good state stays in use until the file is fixed.
			f.log.Warn("tenantsql: store: the tenant file is unreadable; keeping the tenants read before", "err", err)
		}
		f.polls.Add(1)
	}
}

// mutate applies fn to a copy of the current state, starting from what is
// on disk, writes it, and only then makes it current and tells watchers.
// If the write fails nothing changes.
func (f *File) mutate(ctx context.Context, fn func(*state) (Event, bool, error)) error {
	return f.mutateFile(ctx, false, true, fn)
}

// mutateFile is mutate; allowPlain reads a file with secrets in clear
// although the process is strict, for Rekey. puts says that fn may put a
// secret into the state: a process without keys is refused such a write
// into a file that holds sealed values (ErrNoKeys). A delete puts none,
// and the values it cannot open are written back as they were read,
// sealed, so a process without keys may delete, as on Redis.
func (f *File) mutateFile(ctx context.Context, allowPlain, puts bool, fn func(*state) (Event, bool, error)) error {
	f.writeMu.Lock()
	defer f.writeMu.Unlock()
	target := f.target()
	lockPath := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".lock")
	unlock, err := lockFile(ctx, lockPath)
	if err != nil {
		return f.errorf("lock: %w", err)
	}
	defer unlock()

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if err := f.refreshLocked(allowPlain); err != nil {
		return err
	}
	if puts && f.kr == nil && f.holdsSealed() {
		return f.errorf("%w", ErrNoKeys)
	}
	next := f.st.clone()
	ev, changed, err := fn(&next)
	if err != nil || !changed {
		return err
	}
	carry := f.carried(next)
	fi, sum, err := f.write(next, carry)
	if err != nil {
		return err
	}
	for id := range f.refused {
		if _, ok := carry[id]; !ok {
			delete(f.refused, id) // written again, sealed
		}
	}
	f.st, f.known, f.sum = next, fi, sum
	if f.kr != nil && holdsSecret(next) {
		f.strict = true // every secret is sealed at rest now
	}
	if ev.Type != 0 { // Rekey changes only how the file holds the tenants
		f.hub.publish(ev)
	}
	return nil
}

// Create implements Store.
func (f *File) Create(ctx context.Context, t Tenant) (Tenant, error) {
	var out Tenant
	err := f.mutate(ctx, func(st *state) (Event, bool, error) {
		if err := f.refusedErr(st, t.ID); err != nil {
			return Event{}, false, err
		}
		var ev Event
		var err error
		out, ev, err = st.create(t, now())
		return ev, err == nil, err
	})
	if err != nil {
		return Tenant{}, err // out may be set though the write failed
	}
	return out, nil
}

// Update implements Store.
func (f *File) Update(ctx context.Context, t Tenant) (Tenant, error) {
	var out Tenant
	err := f.mutate(ctx, func(st *state) (Event, bool, error) {
		if err := f.refusedErr(st, t.ID); err != nil {
			return Event{}, false, err
		}
		var ev Event
		var err error
		out, ev, err = st.update(t, now())
		return ev, err == nil, err
	})
	if err != nil {
		return Tenant{}, err
	}
	return out, nil
}

// Delete implements Store.
func (f *File) Delete(ctx context.Context, id string) (bool, error) {
	if err := ValidateID(id); err != nil {
		return false, err
	}
	var deleted bool
	err := f.mutateFile(ctx, false, false, func(st *state) (Event, bool, error) {
		if err := f.refusedErr(st, id); err != nil {
			return Event{}, false, err
		}
		var ev Event
		var err error
		ev, deleted, err = st.delete(id)
		return ev, deleted, err
	})
	return deleted && err == nil, err
}

// Get implements Store. A tenant this process refuses, and did not know
// before, is the *PlaintextError that says why, as on Redis.
func (f *File) Get(ctx context.Context, id string) (Tenant, error) {
	if err := f.lock(); err != nil {
		return Tenant{}, err
	}
	defer f.mu.Unlock()
	if err := f.refusedErr(&f.st, id); err != nil {
		return Tenant{}, err
	}
	return f.st.get(id)
}

// Ping implements Store: the file must still be there and readable.
func (f *File) Ping(ctx context.Context) error {
	if err := f.lock(); err != nil {
		return err
	}
	known := f.known
	f.mu.Unlock()
	if known == nil {
		return nil // WithFileCreate and nothing written yet
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return f.errorf("%w", unwrapPathError(err))
	}
	return fh.Close()
}

// Close stops polling and closes watch channels.
func (f *File) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.done)
	f.mu.Unlock()
	f.wg.Wait()
	f.hub.close()
	return nil
}
