package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/internal/testenv"
)

// The README's "Porting an application" shows diff -u of before/main.go and
// after/main.go. Regenerate it and compare, so that the guide cannot drift
// from the code it quotes.
func TestREADMEPortingDiff(t *testing.T) {
	if _, err := exec.LookPath("diff"); err != nil {
		testenv.CannotRun(t, "no diff program to regenerate the README's porting diff: %v", err)
	}
	cmd := exec.Command("diff", "-u", "--label", "before/main.go", "--label", "after/main.go", "before/main.go", "after/main.go")
	cmd.Dir = ".."
	want, err := cmd.Output()
	// Status 1 means the files differ, as they must; 2 is trouble.
	if exit := (*exec.ExitError)(nil); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("diff -u before/main.go after/main.go: %v (status 1 expected: the files differ)", err)
	}

	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := diffBlock(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("README.md's porting diff is not diff -u of examples/porting/{before,after}/main.go; "+
			"replace the block with the output of\n  cd examples/porting && diff -u --label before/main.go --label after/main.go before/main.go after/main.go\n"+
			"which is:\n%s", want)
	}
}

// diffBlock returns the first ```diff block after the heading
// "### Porting an application".
func diffBlock(readme string) (string, error) {
	_, section, ok := strings.Cut(readme, "\n### Porting an application\n")
	if !ok {
		return "", errors.New(`README.md has no "### Porting an application" section`)
	}
	section, _, _ = strings.Cut(section, "\n### ")
	_, block, ok := strings.Cut(section, "\n```diff\n")
	if !ok {
		return "", errors.New("README.md's \"Porting an application\" has no ```diff block")
	}
	block, _, ok = strings.Cut(block, "\n```\n")
	if !ok {
		return "", errors.New("README.md's porting diff block is not closed")
	}
	return block + "\n", nil
}
