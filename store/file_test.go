package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeFile writes data to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// replaceFile swaps in new content the way a careful editor or another
// program would: write a temporary file, then rename it over the old one.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".edit"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func openFile(t *testing.T, path string, opts ...FileOption) *File {
	t.Helper()
	f, err := OpenFile(context.Background(), path, append([]FileOption{WithFilePollInterval(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// onDisk is the file format as a reader that is not this package sees it.
type onDisk struct {
	Version int64 `json:"version"`
	Tenants map[string]struct {
		DeployInfo map[string]string `json:"deploy_info"`
		Version    int64             `json:"version"`
		CreatedAt  time.Time         `json:"created_at"`
		UpdatedAt  time.Time         `json:"updated_at"`
	} `json:"tenants"`
}

func readDisk(t *testing.T, path string) onDisk {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d onDisk
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("file does not parse: %v\n%s", err, data)
	}
	if d.Tenants == nil {
		t.Fatalf("file has no tenants object:\n%s", data)
	}
	return d
}

// diskTenants returns the tenants in the file, sorted by id.
func diskTenants(t *testing.T, path string) []Tenant {
	t.Helper()
	d := readDisk(t, path)
	var out []Tenant
	for id, ft := range d.Tenants {
		out = append(out, Tenant{ID: id, DeployInfo: ft.DeployInfo, Version: ft.Version, CreatedAt: ft.CreatedAt, UpdatedAt: ft.UpdatedAt})
	}
	slices.SortFunc(out, func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// dirNames lists the files in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// assertNoTempFiles checks that dir holds only the store file and its lock.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	for _, name := range dirNames(t, dir) {
		if name != "tenants.json" && name != ".tenants.json.lock" {
			t.Errorf("left behind in the directory: %s", name)
		}
	}
}

const handWritten = `{
  "tenants": {
    "tenant-1.test.com": {"deploy_info": {"POSTGRES_URL": "postgres://app:hunter2@db/one", "REGION": "eu"}},
    "tenant-2.test.com": {"deploy_info": {"POSTGRES_URL": "postgresql://db/two?password=hunter2"}}
  }
}
`

func TestFileOpenHandWritten(t *testing.T) {
	t.Parallel()
	f := openFile(t, writeFile(t, t.TempDir(), "tenants.json", handWritten))
	list, err := f.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Tenant{
		{ID: "tenant-1.test.com", Version: 1, DeployInfo: map[string]string{KeyPostgresURL: "postgres://app:hunter2@db/one", "REGION": "eu"}},
		{ID: "tenant-2.test.com", Version: 1, DeployInfo: map[string]string{KeyPostgresURL: "postgresql://db/two?password=hunter2"}},
	}
	if !sameTenants(list, want) {
		t.Errorf("List = %v, want %v", list, want)
	}
}

func TestFileMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "tenants.json")
	_, err := OpenFile(ctx, path)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenFile of a missing file = %v, want fs.ErrNotExist naming %s", err, path)
	}

	f := openFile(t, path, WithFileCreate(true))
	if err := f.Ping(ctx); err != nil {
		t.Errorf("Ping before the first write: %v", err)
	}
	if list, err := f.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want empty", list, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the file exists before the first write: %v", err)
	}
	if _, err := f.Create(ctx, newTenant("t1", "one")); err != nil {
		t.Fatal(err)
	}
	if got := diskTenants(t, path); len(got) != 1 || got[0].ID != "t1" {
		t.Errorf("file holds %v, want t1", got)
	}
}

func TestFileWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "tenants.json")
	f := openFile(t, path, WithFileCreate(true))

	check := func(step string) {
		t.Helper()
		list := mustList(t, f)
		if got := diskTenants(t, path); !sameTenants(got, list) {
			t.Errorf("after %s the file holds %v, the store %v", step, got, list)
		}
		// A fresh store reads back exactly what this one holds.
		g := openFile(t, path)
		if got := mustList(t, g); !sameTenants(got, list) {
			t.Errorf("after %s a reopened store holds %v, want %v", step, got, list)
		}
		g.Close()
		assertNoTempFiles(t, dir)
	}
	if _, err := f.Create(ctx, newTenant("t1", "one")); err != nil {
		t.Fatal(err)
	}
	check("create")
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(path); err != nil {
			t.Fatal(err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("new file has mode %v, want 0600", fi.Mode())
		}
	}
	if _, err := f.Create(ctx, newTenant("t2", "two")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Update(ctx, newTenant("t1", "uno")); err != nil {
		t.Fatal(err)
	}
	check("update")
	if _, err := f.Delete(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	check("delete")
	if d := readDisk(t, path); d.Version != 4 {
		t.Errorf("file version = %d after 4 writes", d.Version)
	}
}

func TestFileModeKept(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	t.Parallel()
	path := writeFile(t, t.TempDir(), "tenants.json", handWritten)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	f := openFile(t, path)
	if _, err := f.Create(context.Background(), newTenant("t3", "three")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o640 {
		t.Errorf("after a write the mode is %v, want 0640 kept", fi.Mode())
	}
}

// failedWrite makes every write to the store fail through breakWrites and
// checks that nothing changed: not the file, not the store, not the
// directory, and that no event was sent.
func failedWrite(t *testing.T, breakWrites func(dir string) (restore func())) {
	ctx := context.Background()
	dir := t.TempDir()
	path := writeFile(t, dir, "tenants.json", handWritten)
	f := openFile(t, path)
	if _, err := f.Create(ctx, newTenant("t3", "three")); err != nil {
		t.Fatal(err)
	}
	ch, err := f.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m mirror
	m.apply(t, next(t, ch))
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	listBefore := mustList(t, f)

	restore := breakWrites(dir)
	created, errCreate := f.Create(ctx, newTenant("t4", "four"))
	updated, errUpdate := f.Update(ctx, newTenant("t3", "drei"))
	deleted, errDelete := f.Delete(ctx, "t3")
	restore()

	if created.ID != "" || updated.ID != "" || deleted {
		t.Errorf("failed writes returned %v, %v, %v; want zero values", created, updated, deleted)
	}
	for _, err := range []error{errCreate, errUpdate, errDelete} {
		if err == nil {
			t.Fatal("a write succeeded, want it to fail")
		}
		if !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error %q: want it to name %s and hold no password", err, path)
		}
	}
	after := []byte(mustRead(t, path))
	if !bytes.Equal(before, after) {
		t.Errorf("a failed write changed the file:\n%s", after)
	}
	if list := mustList(t, f); !sameTenants(list, listBefore) {
		t.Errorf("store holds %v after failed writes, want %v", ids(list), ids(listBefore))
	}
	assertNoTempFiles(t, dir)

	// The store works again once writes can succeed, and the next event
	// follows the last one: the failed writes sent none.
	if _, err := f.Create(ctx, newTenant("t5", "five")); err != nil {
		t.Fatalf("Create after restoring: %v", err)
	}
	ev := next(t, ch)
	m.apply(t, ev)
	if ev.Type != EventCreate || ev.Tenant.ID != "t5" {
		t.Errorf("after failed writes the next event is %v of %v, want create of t5", ev.Type, ev.Tenant)
	}
}

func TestFileAtomicWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := writeFile(t, t.TempDir(), "tenants.json", `{"tenants": {}}`)
	f := openFile(t, path)

	done := make(chan struct{})
	var reads int
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		var last int64
		for {
			select {
			case <-done:
				return
			default:
			}
			data, err := os.ReadFile(path)
			if err == nil {
				var d onDisk
				err = json.Unmarshal(data, &d)
				switch {
				case err != nil:
				case d.Tenants == nil:
					err = errors.New("no tenants object")
				case d.Version < last:
					err = fmt.Errorf("version went from %d back to %d", last, d.Version)
				}
				last = d.Version
			}
			if err != nil {
				readErr = fmt.Errorf("read %d: %w", reads, err)
				return
			}
			reads++
		}
	})
	var writers sync.WaitGroup
	for w := range 3 {
		writers.Go(func() {
			for i := range 30 {
				id := fmt.Sprintf("w%d-%d", w, i)
				// Long values make each write take several write calls.
				info := dbInfo(id)
				info["NOTE"] = strings.Repeat("x", 4000)
				if _, err := f.Create(ctx, Tenant{ID: id, DeployInfo: info}); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					if _, err := f.Update(ctx, newTenant(id, "u")); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	writers.Wait()
	close(done)
	wg.Wait()
	if readErr != nil {
		t.Fatalf("a reader saw a broken file: %v", readErr)
	}
	if reads == 0 {
		t.Fatal("the reader never read the file")
	}
	if got := diskTenants(t, path); len(got) != 90 {
		t.Errorf("file holds %d tenants, want 90", len(got))
	}
}

// syncBuffer is a bytes.Buffer that the poller and the test can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond until it holds or the wait is over.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitFor(t, wait, what, cond)
}

// watchFile opens the file at path, polling every poll and logging to the
// buffer it returns, and watches it; the mirror has applied the first
// sync.
func watchFile(t *testing.T, path string, poll time.Duration, opts ...FileOption) (*File, <-chan Event, *mirror, *syncBuffer) {
	t.Helper()
	logs := new(syncBuffer)
	opts = append([]FileOption{WithFilePollInterval(poll), WithFileLogger(slog.New(slog.NewTextHandler(logs, nil)))}, opts...)
	f, err := OpenFile(context.Background(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	ch, err := f.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := new(mirror)
	m.apply(t, next(t, ch))
	return f, ch, m, logs
}

// nextSync waits for a sync event whose tenants satisfy ok.
func nextSync(t *testing.T, ch <-chan Event, m *mirror, what string, ok func(map[string]Tenant) bool) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev, open := <-ch:
			if !open {
				t.Fatalf("%s: watch channel closed", what)
			}
			m.apply(t, ev)
			if ev.Type == EventSync && ok(m.tenants) {
				return
			}
		case <-deadline:
			t.Fatalf("%s: no such sync within %v; watcher holds %v", what, wait, ids(m.list()))
		}
	}
}

func TestFilePolling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := writeFile(t, dir, "tenants.json", handWritten)
	f, ch, m, logs := watchFile(t, path, 20*time.Millisecond)

	// Another store on the same file (another process, in effect).
	other := openFile(t, path)
	if _, err := other.Create(ctx, newTenant("from-other", "x")); err != nil {
		t.Fatal(err)
	}
	nextSync(t, ch, m, "create by another store", func(ts map[string]Tenant) bool {
		_, ok := ts["from-other"]
		return ok
	})
	if g, err := f.Get(ctx, "from-other"); err != nil || g.Version != 1 {
		t.Errorf("Get after the poll = %v, %v", g, err)
	}

	// An edit by hand.
	edited := strings.Replace(handWritten, `"tenants": {`, `"tenants": {
    "by-hand": {"deploy_info": {"POSTGRES_URL": "postgres://db/hand"}},`, 1)
	replaceFile(t, path, edited)
	nextSync(t, ch, m, "edit by hand", func(ts map[string]Tenant) bool {
		_, hand := ts["by-hand"]
		_, gone := ts["from-other"]
		return hand && !gone
	})
	good := mustList(t, f)

	// A broken edit is logged once and the last good state stays.
	replaceFile(t, path, edited[:len(edited)/2])
	eventually(t, "the broken file is logged", func() bool { return strings.Contains(logs.String(), path) })
	// Give the poller many chances to log it again.
	waitPolls(t, f, 10)
	if n := strings.Count(logs.String(), path); n != 1 {
		t.Errorf("the broken file was logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "incomplete") || strings.Contains(logs.String(), "hunter2") {
		t.Errorf("log should say what is wrong and hold no password:\n%s", logs)
	}
	if list := mustList(t, f); !sameTenants(list, good) {
		t.Errorf("store holds %v after a broken edit, want the last good %v", ids(list), ids(good))
	}
	// Writes refuse to overwrite a file they cannot read.
	if _, err := f.Create(ctx, newTenant("refused", "x")); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Create over a broken file = %v, want an error naming it", err)
	}
	if data := mustRead(t, path); data != edited[:len(edited)/2] {
		t.Errorf("a write replaced the broken file")
	}

	// Fixing the file is picked up.
	fixed := strings.Replace(edited, "postgres://db/hand", "postgres://db/fixed", 1)
	replaceFile(t, path, fixed)
	nextSync(t, ch, m, "fixed file", func(ts map[string]Tenant) bool {
		return ts["by-hand"].PostgresURL() == "postgres://db/fixed"
	})
	if n := strings.Count(logs.String(), path); n != 1 {
		t.Errorf("log has %d entries naming the file, want 1:\n%s", n, logs)
	}
	if _, err := f.Create(ctx, newTenant("after-fix", "x")); err != nil {
		t.Errorf("Create after the fix: %v", err)
	}
}

// editKeepingStat changes db/one to db/ONE in the file at path, which
// holds handWritten, in place, and puts its modification time back: its
// size, inode and times stay as they were, as they can across a real
// change. It skips the test where the file system cannot keep them.
func editKeepingStat(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(handWritten, "db/one", "db/ONE", 1)
	if len(edited) != len(handWritten) {
		t.Fatal("the edit must keep the size")
	}
	fh, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte(edited), 0); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if fi2, err := os.Stat(path); err != nil || !os.SameFile(fi, fi2) || fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Skip("this file system cannot keep the file's size and times")
	}
}

// The file may change without its size, inode or modification time
// changing: an in-place edit on a file system with coarse timestamps, or a
// rename that reuses a freed inode number. The store must still notice.
func TestFileChangeWithSameStat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := writeFile(t, t.TempDir(), "tenants.json", handWritten)
	f, ch, m, _ := watchFile(t, path, 10*time.Millisecond)
	editKeepingStat(t, path)
	nextSync(t, ch, m, "in-place edit", func(ts map[string]Tenant) bool {
		return ts["tenant-1.test.com"].PostgresURL() == "postgres://app:hunter2@db/ONE"
	})
	if _, err := f.Create(ctx, newTenant("t3", "three")); err != nil {
		t.Fatal(err)
	}
	for _, tn := range diskTenants(t, path) {
		if tn.ID == "tenant-1.test.com" && tn.PostgresURL() != "postgres://app:hunter2@db/ONE" {
			t.Errorf("a write undid another's change: %v", tn)
		}
	}
}

// Without polling the same holds for writes: each starts from what is on
// disk.
func TestFileWriteSeesSameStatChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := writeFile(t, t.TempDir(), "tenants.json", handWritten)
	f := openFile(t, path)
	editKeepingStat(t, path)
	if _, err := f.Create(ctx, newTenant("t3", "three")); err != nil {
		t.Fatal(err)
	}
	got := diskTenants(t, path)
	if !slices.Equal(ids(got), []string{"t3", "tenant-1.test.com", "tenant-2.test.com"}) || got[1].PostgresURL() != "postgres://app:hunter2@db/ONE" {
		t.Errorf("a write undid another's change: file holds %v", got)
	}
}

func TestFilePollCreatedLater(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tenants.json")
	_, ch, m, _ := watchFile(t, path, 20*time.Millisecond, WithFileCreate(true))
	replaceFile(t, path, handWritten)
	nextSync(t, ch, m, "file created by another", func(ts map[string]Tenant) bool { return len(ts) == 2 })
}

func TestFilePing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := writeFile(t, t.TempDir(), "tenants.json", handWritten)
	f := openFile(t, path)
	if err := f.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	err := f.Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Ping of a deleted file = %v, want fs.ErrNotExist naming %s", err, path)
	}
	// Reads answer from memory until the next successful read.
	if list, err := f.List(ctx); err != nil || len(list) != 2 {
		t.Errorf("List after the file went away = %v, %v", ids(list), err)
	}
}

func TestFileCloseStopsPolling(t *testing.T) {
	t.Parallel()
	path := writeFile(t, t.TempDir(), "tenants.json", handWritten)
	f, err := OpenFile(context.Background(), path, WithFilePollInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := f.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ch)
	if list, err := f.List(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("List after Close = %v, %v", list, err)
	}
}

// Two stores on one file, each writing concurrently, lose nothing: every
// write starts from the file under the lock. This is what two processes
// do; each store takes the lock through its own file descriptor.
func TestFileTwoStoresOneFile(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no file locking on " + runtime.GOOS)
	}
	t.Parallel()
	ctx := context.Background()
	path := writeFile(t, t.TempDir(), "tenants.json", `{"tenants": {}}`)
	stores := []*File{openFile(t, path), openFile(t, path)}
	var wg sync.WaitGroup
	for s, f := range stores {
		for i := range 50 {
			wg.Go(func() {
				if _, err := f.Create(ctx, newTenant(fmt.Sprintf("s%d-%d", s, i), "x")); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	got := diskTenants(t, path)
	if len(got) != 100 {
		t.Fatalf("file holds %d tenants, want 100", len(got))
	}
	if d := readDisk(t, path); d.Version < 100 {
		t.Errorf("file version %d after 100 creates", d.Version)
	}
	// Each store's next write starts from the file, so each then holds
	// all of them.
	for s, f := range stores {
		if _, err := f.Delete(ctx, fmt.Sprintf("s%d-0", s)); err != nil {
			t.Fatal(err)
		}
	}
	for s, want := range []int{99, 98} {
		if list := mustList(t, stores[s]); len(list) != want {
			t.Errorf("store %d holds %d tenants, want %d", s, len(list), want)
		}
	}
	if got := diskTenants(t, path); len(got) != 98 {
		t.Errorf("file holds %d tenants, want 98", len(got))
	}
}
