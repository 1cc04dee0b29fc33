//go:build unix

package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A failure before the write (here: the lock cannot be taken) changes
// nothing either. Unlike a read-only directory this stops root too.
func TestFileFailedWriteLock(t *testing.T) {
	t.Parallel()
	failedWrite(t, func(dir string) func() {
		lock := filepath.Join(dir, ".tenants.json.lock")
		if err := os.Remove(lock); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(lock, 0o700); err != nil {
			t.Fatal(err)
		}
		return func() { os.Remove(lock) }
	})
}

// The helper process pattern: TestFileMultiProcess runs the test binary
// again with these variables set, and then only TestHelperProcess does
// anything.
const (
	helperFileEnv   = "TENANTSQL_STORE_HELPER_FILE"
	helperPrefixEnv = "TENANTSQL_STORE_HELPER_PREFIX"
	helperCount     = 25
)

func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperFileEnv)
	if path == "" {
		t.Skip("helper for TestFileMultiProcess; does nothing on its own")
	}
	prefix := os.Getenv(helperPrefixEnv)
	ctx := context.Background()
	f, err := OpenFile(ctx, path, WithFilePollInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Start together with the other process, so that the writes overlap.
	eventually(t, "start signal", func() bool {
		_, err := os.Stat(path + ".go")
		return err == nil
	})
	var wg sync.WaitGroup
	for i := range helperCount {
		wg.Go(func() {
			if _, err := f.Create(ctx, newTenant(fmt.Sprintf("%s-%d", prefix, i), "x")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// Two processes creating tenants in one file at the same time lose none.
func TestFileMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "tenants.json", `{"tenants": {}}`)
	type child struct {
		cmd *exec.Cmd
		out bytes.Buffer
	}
	var children []*child
	for i := range 2 {
		c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.timeout=60s")}
		c.cmd.Env = append(os.Environ(), helperFileEnv+"="+path, fmt.Sprintf("%s=p%d", helperPrefixEnv, i))
		c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, c)
	}
	if err := os.WriteFile(path+".go", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("helper process %d: %v\n%s", i, err, c.out.String())
		}
	}
	got := diskTenants(t, path)
	if len(got) != 2*helperCount {
		t.Fatalf("file holds %d tenants, want %d: %v", len(got), 2*helperCount, ids(got))
	}
	for _, name := range dirNames(t, dir) {
		if strings.Contains(name, ".tmp-") {
			t.Errorf("left behind: %s", name)
		}
	}
}

// A lock held elsewhere makes a write wait, bounded by its context.
func TestFileLockWaitsForContext(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "tenants.json", `{"tenants": {}}`)
	f := openFile(t, path)
	unlock, err := lockFile(context.Background(), filepath.Join(dir, ".tenants.json.lock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = f.Create(ctx, newTenant("t1", "one"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), path) {
		t.Errorf("Create while another holds the lock = %v, want context.DeadlineExceeded naming %s", err, path)
	}
	unlock()
	if _, err := f.Create(context.Background(), newTenant("t1", "one")); err != nil {
		t.Errorf("Create after the lock was released: %v", err)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// A store opened through a symbolic link updates the file it points to,
// keeps the link, and shares the lock with a store opened on the file.
func TestFileSymlink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	real := writeFile(t, filepath.Join(dir, "data"), "tenants.json", handWritten)
	link := filepath.Join(dir, "current.json")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	viaLink := openFile(t, link)
	if _, err := viaLink.Create(ctx, newTenant("t3", "three")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link was replaced by a file (%v, %v)", fi, err)
	}
	data, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"t3"`)) {
		t.Errorf("the linked file lacks the new tenant:\n%s", data)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", ".tenants.json.lock")); err != nil {
		t.Errorf("no lock next to the linked file: %v", err)
	}
}

// A link to a file not created yet, opened with WithFileCreate: the first
// write creates the file it points to and keeps the link.
func TestFileDanglingLinkCreate(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "data", "tenants.json")
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "tenants.json")
	if err := os.Symlink("data/tenants.json", link); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFile(context.Background(), link, WithFileCreate(true), WithFilePollInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(context.Background(), newTenant("t1", "db")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link %s was replaced by a plain file", link)
	}
	if _, err := os.Stat(real); err != nil {
		t.Errorf("link target not written: %v", err)
	}
}

// A relative link in another directory, opened by a relative path.
func TestFileRelativeLink(t *testing.T) {
	dir := t.TempDir()
	for _, err := range []error{
		os.MkdirAll(filepath.Join(dir, "a"), 0o700),
		os.MkdirAll(filepath.Join(dir, "b"), 0o700),
		os.WriteFile(filepath.Join(dir, "b", "real.json"), []byte(`{"tenants":{}}`), 0o600),
		os.Symlink("../b/real.json", filepath.Join(dir, "a", "t.json")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	s, err := OpenFile(context.Background(), "a/t.json", WithFilePollInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(context.Background(), newTenant("t1", "db")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat("a/t.json")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		t.Error("link replaced")
	}
	if _, err := os.Stat("b/.real.json.lock"); err != nil {
		t.Errorf("lock not next to target: %v", err)
	}
	if b := mustRead(t, "b/real.json"); !strings.Contains(b, `"t1"`) {
		t.Errorf("the link's target lacks t1:\n%s", b)
	}
}
