//go:build unix

package store

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// childEnv marks a test binary run by runInChild: the test named in it
// runs its real check instead of starting another child.
const childEnv = "TENANTSQL_STORE_CHILD_TEST"

// inChild reports whether this process is the child runInChild started
// for test name.
func inChild(name string) bool { return os.Getenv(childEnv) == name }

// runInChild runs test name alone in a copy of this test binary, as cred's
// user when cred is not nil, and fails unless it ran and passed there: a
// skip in the child is no pass. The copy and the child's TMPDIR are in a
// directory that user may use.
func runInChild(t *testing.T, name string, cred *syscall.Credential) {
	t.Helper()
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "store.test")
	if err := copyExecutable(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		// t.TempDir's parent directories are root's, mode 0700 or 0755;
		// the child's user needs to reach bin and own tmp.
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(tmp, int(cred.Uid), int(cred.Gid)); err != nil {
			testenv.CannotRun(t, "cannot give a directory to uid %d: %v", cred.Uid, err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), childEnv+"="+name, "TMPDIR="+tmp, "GOCOVERDIR=")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		testenv.CannotRun(t, "cannot start the test binary as a child (credential %+v): %v", cred, err)
	}
	switch {
	case err != nil:
		t.Fatalf("%s failed in the child process: %v\n%s", name, err, out)
	case strings.Contains(string(out), "--- SKIP: "+name):
		t.Fatalf("%s skipped in the child process, so its real check did not run:\n%s", name, out)
	case !strings.Contains(string(out), "--- PASS: "+name):
		t.Fatalf("%s did not run in the child process:\n%s", name, out)
	}
}

func copyExecutable(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// A read-only directory makes every write fail, and nothing changes. Root
// ignores permission bits: as root, the test runs itself again as user
// nobody.
func TestFileFailedWriteReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		if inChild(t.Name()) {
			t.Fatal("the child process still runs as root")
		}
		runInChild(t, t.Name(), &syscall.Credential{Uid: 65534, Gid: 65534})
		return
	}
	t.Parallel()
	failedWrite(t, func(dir string) func() {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.Chmod(dir, 0o700); err != nil {
				t.Error(err)
			}
		}
	})
}
