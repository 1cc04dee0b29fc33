package readme

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantsql/tenantsql/store"
)

// How README.md's code blocks are tested. Every fenced block must match
// one rule, or TestReadmeBlocks fails and says what to add:
//
//   - ```go: preceded by <!-- snippet: PATH:NAME[,NAME...] -->, and equal
//     to those regions of PATH (see the package documentation). PATH is a
//     test that runs the code against the server (snippets_test.go,
//     hooks_test.go, intro_test.go here). `make readme` (go test
//     ./internal/readme -run TestReadmeBlocks -update) copies the regions
//     into the README.
//   - ```json: a tenant file, read by the file store's own parser.
//   - ```sh in "## Tutorial": run, command by command, against the
//     example by examples/hospital's TestReadmeTutorial, which compares
//     each command's output with the "# ..." lines under it.
//   - ```sh elsewhere: every make target must exist in the Makefile, every
//     "go run ./PATH" must be a main package, and every tenantsql command
//     line must be accepted by the CLI's own parser (TestReadmeCommandLines;
//     it runs them on an empty memory store). A line that cannot be checked
//     that way goes into notRun, with the reason.
//   - a bare ``` block in "## Layout": every directory it names exists and
//     every top-level directory is named.

var update = flag.Bool("update", false, "rewrite README.md's snippet blocks from their sources")

const readmePath = "../../README.md"

// root is the repository root, where a marker's PATH starts.
const root = "../.."

// module is the module path, for "go install MODULE/cmd/X@version".
const module = "github.com/tenantsql/tenantsql"

func readme(t *testing.T) ([]byte, []Block) {
	t.Helper()
	md, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	return md, Blocks(md)
}

// TestReadmeBlocks checks that each block of the README falls under a
// rule above, and that the Go blocks are their sources' regions.
func TestReadmeBlocks(t *testing.T) {
	md, blocks := readme(t)
	if len(blocks) < 10 {
		t.Fatalf("README.md has %d code blocks: the parser or the file is broken", len(blocks))
	}
	texts := map[int]string{}
	for i, b := range blocks {
		where := b.Where("README.md")
		if b.Snippet != "" && b.Lang != "go" {
			t.Errorf("%s: a snippet marker before a ```%s block: only Go blocks are tied to a source", where, b.Lang)
		}
		switch {
		case b.Lang == "go":
			want, err := snippetText(b)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if want == b.Text {
				continue
			}
			if *update {
				texts[i] = want
				continue
			}
			t.Errorf("%s: the block differs from its source %s (- README, + source):\n%s\n"+
				"Change the source and run `make readme` to copy it into the README (or edit both alike).",
				where, b.Snippet, diff(b.Text, want))
		case b.Lang == "json":
			checkTenantFile(t, where, b.Text)
		case b.Lang == "sh":
			// TestReadmeTutorial (examples/hospital) and
			// TestReadmeCommandLines.
		case b.Lang == "diff" && b.Subsection == "Porting an application":
			// TestREADMEPortingDiff (examples/porting/after) regenerates
			// it with diff -u.
		case b.Lang == "" && b.Section == "Layout":
			checkLayout(t, where, b.Text)
		default:
			t.Errorf("%s: no rule tests a ```%s block here: give it a rule in internal/readme/checks_test.go", where, b.Lang)
		}
	}
	if *update && len(texts) > 0 {
		if err := os.WriteFile(readmePath, Replace(md, blocks, texts), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %d blocks of README.md from their sources", len(texts))
	}
}

// snippetText is what a Go block must hold: the regions its marker names.
func snippetText(b Block) (string, error) {
	if b.Snippet == "" {
		return "", errors.New("a Go block without a snippet marker. Put the code in a test that runs it " +
			"(e.g. internal/readme/snippets_test.go) between the lines `// snippet:NAME` and `// end snippet`, " +
			"and write `<!-- snippet: internal/readme/snippets_test.go:NAME -->` on the line before the ```go fence " +
			"(several regions: NAME1,NAME2, shown separated by a blank line); `make readme` then fills the block")
	}
	path, names, err := ParseSnippet(b.Snippet)
	if err != nil {
		return "", err
	}
	src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path)))
	if err != nil {
		return "", fmt.Errorf("snippet marker %q: %v (the path is relative to the repository root)", b.Snippet, err)
	}
	if !strings.HasSuffix(path, "_test.go") {
		return "", fmt.Errorf("snippet marker %q: the source must be a _test.go file whose test runs the snippet", b.Snippet)
	}
	text, err := Regions(src, names)
	if err != nil {
		return "", fmt.Errorf("%s: %v", path, err)
	}
	return text, nil
}

// checkTenantFile reads the README's tenant file with the file store, as
// sql.Open("tenantsql", "file:...") would, and checks that the store sees
// exactly the tenants and deploy info the JSON spells out.
func checkTenantFile(t *testing.T, where, text string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tenant_config.json")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := store.OpenFile(ctx, path)
	if err != nil {
		t.Errorf("%s: the file store refuses the README's tenant file: %v", where, err)
		return
	}
	defer f.Close()
	got, err := f.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tenants map[string]struct {
			DeployInfo map[string]string `json:"deploy_info"`
		} `json:"tenants"`
	}
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if len(doc.Tenants) == 0 {
		t.Errorf("%s: the tenant file names no tenant", where)
	}
	if len(got) != len(doc.Tenants) {
		t.Errorf("%s: the file store reads %d tenants, the JSON has %d", where, len(got), len(doc.Tenants))
	}
	for _, tn := range got {
		if want := doc.Tenants[tn.ID].DeployInfo; !maps.Equal(tn.DeployInfo, want) {
			t.Errorf("%s: tenant %s: the file store reads deploy_info %v, the JSON has %v", where, tn.ID, tn.DeployInfo, want)
		}
	}
}

// checkLayout checks the "## Layout" block: "dir/  what it holds" lines.
// Every directory named exists, every file a description names (a word
// ending in .sh, .json or .go) is in its directory, and every top-level
// directory of the repository (but hidden ones) is named.
func checkLayout(t *testing.T, where, text string) {
	t.Helper()
	named := map[string]bool{}
	fileRE := regexp.MustCompile(`[\w.-]+\.(?:sh|json|go)\b`)
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasSuffix(f[0], "/") {
			t.Errorf("%s: layout line %q does not start with a directory (NAME/)", where, l)
			continue
		}
		dir := strings.TrimSuffix(f[0], "/")
		named[dir] = true
		if fi, err := os.Stat(filepath.Join(root, dir)); err != nil || !fi.IsDir() {
			t.Errorf("%s: the layout names %s/, which is not a directory of the repository", where, dir)
			continue
		}
		for _, file := range fileRE.FindAllString(strings.Join(f[1:], " "), -1) {
			if _, err := os.Stat(filepath.Join(root, dir, file)); err != nil {
				t.Errorf("%s: the layout says %s/ holds %s, which it does not", where, dir, file)
			}
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !named[e.Name()] {
			t.Errorf("%s: the top-level directory %s/ is missing from the layout: add a line `%s/  what it holds`", where, e.Name(), e.Name())
		}
	}
}

// notRun lists the command lines of sh blocks outside the Tutorial that
// TestReadmeCommandLines does not run, each with why. The key is the
// command as the README writes it, trimmed.
var notRun = map[string]string{}

// TestReadmeCommandLines checks the commands of the sh blocks outside
// "## Tutorial" (which TestReadmeTutorial runs) and the inline `make ...`
// and `go run ./...` of the prose:
//
//   - make TARGET: the Makefile has the target;
//   - go run ./PATH, go install MODULE/PATH@VERSION: PATH is a main
//     package; go run ./cmd/tenantsql ARGS runs from the repository root,
//     as a reader would run it, and must succeed; go test, vet and build:
//     each ./PATH exists;
//   - tenantsql ARGS: the CLI, built from ./cmd/tenantsql, accepts the
//     arguments. Each line runs in an empty directory holding the README's
//     tenant file and a migrations directory, with TENANTSQL_STORE=memory:
//     (an empty store of its own: nothing is written anywhere) and nothing
//     on stdin. It may fail (no such tenant, no such host), but not with
//     the CLI's usage error (exit status 2), which is what a wrong
//     command, subcommand, flag or argument count gets.
//
// "export", and "echo ... |" before a command, are shell, not checked.
func TestReadmeCommandLines(t *testing.T) {
	md, blocks := readme(t)
	targets := makeTargets(t)
	var cli string // built on first use
	dir := t.TempDir()
	for _, b := range blocks {
		switch b.Lang {
		case "json":
			if err := os.WriteFile(filepath.Join(dir, "tenant_config.json"), []byte(b.Text), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.CopyFS(filepath.Join(dir, "migrations"), os.DirFS("migrations")); err != nil {
		t.Fatal(err)
	}

	for _, b := range blocks {
		if b.Lang != "sh" || b.Section == "Tutorial" {
			continue
		}
		for _, c := range Commands(b.Text) {
			where := fmt.Sprintf("%s: `%s`", b.Where("README.md"), strings.TrimSpace(c.Text))
			if _, ok := notRun[strings.TrimSpace(c.Text)]; ok {
				continue
			}
			words := c.Words()
			// echo ... | cmd: check cmd.
			if i := slices.Index(words, "|"); i >= 0 && words[0] == "echo" {
				words = words[i+1:]
			}
			if len(words) == 0 {
				continue
			}
			switch {
			case words[0] == "export":
			case words[0] == "make":
				for _, w := range words[1:] {
					if !strings.Contains(w, "=") && !targets[w] {
						t.Errorf("%s: the Makefile has no target %q", where, w)
					}
				}
			case words[0] == "go" && len(words) > 2 && words[1] == "run":
				// go run ./cmd/X or go run github.com/tenantsql/tenantsql/cmd/X[@version]
				pkg, _, _ := strings.Cut(words[2], "@")
				if rel, ok := strings.CutPrefix(pkg, module+"/"); ok {
					pkg = "./" + rel
				}
				checkMainPackage(t, where, pkg)
				if words[2] == "./cmd/tenantsql" {
					// go run works from the repository root only: there,
					// as a reader runs it, and it must succeed (its files,
					// such as --store file:..., must exist there).
					checkCLI(t, where, &cli, root, words[3:], true)
				}
			case words[0] == "go" && len(words) > 2 && words[1] == "install":
				// go install github.com/tenantsql/tenantsql/cmd/X@version
				pkg, _, _ := strings.Cut(words[len(words)-1], "@")
				rel, ok := strings.CutPrefix(pkg, module+"/")
				if !ok {
					t.Errorf("%s: installs %s, which is not a package of %s", where, pkg, module)
					continue
				}
				checkMainPackage(t, where, "./"+rel)
			case words[0] == "go" && len(words) > 1 && slices.Contains([]string{"test", "vet", "build"}, words[1]):
				// What CI runs itself; the package paths must exist.
				for _, w := range words[2:] {
					if p, ok := strings.CutPrefix(w, "./"); ok {
						p = strings.TrimSuffix(strings.TrimSuffix(p, "..."), "/")
						if fi, err := os.Stat(filepath.Join(root, p)); err != nil || !fi.IsDir() {
							t.Errorf("%s: %s is not a directory of the repository", where, w)
						}
					}
				}
			case words[0] == "tenantsql":
				checkCLI(t, where, &cli, dir, words[1:], false)
			default:
				t.Errorf("%s: no rule checks a %q command here: give it one in TestReadmeCommandLines, or add the line to notRun with the reason it is not run", where, words[0])
			}
		}
	}

	// The prose's `make TARGET` and `go run ./PATH` code spans.
	for _, m := range regexp.MustCompile("`make ([a-z][a-z0-9-]*)").FindAllSubmatch(md, -1) {
		if !targets[string(m[1])] {
			t.Errorf("README.md: `make %s`: the Makefile has no target %q", m[1], m[1])
		}
	}
	for _, m := range regexp.MustCompile("`go run (\\./[^ `]+)").FindAllSubmatch(md, -1) {
		checkMainPackage(t, "README.md: `go run "+string(m[1])+"`", string(m[1]))
	}
}

// makeTargets returns the targets the Makefile defines.
func makeTargets(t *testing.T) map[string]bool {
	t.Helper()
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-zA-Z0-9_.-]+):`).FindAllSubmatch(mk, -1) {
		out[string(m[1])] = true
	}
	return out
}

// checkMainPackage checks that path, relative to the repository root, is
// a directory holding a main package.
func checkMainPackage(t *testing.T, where, path string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, filepath.FromSlash(path), "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`(?m)^package main$`).Match(src) {
			return
		}
	}
	t.Errorf("%s: %s is not a main package of the repository", where, path)
}

// checkCLI runs the tenantsql CLI with args in dir and fails if it
// answers with a usage error or, if mustSucceed, with any failure.
func checkCLI(t *testing.T, where string, cli *string, dir string, args []string, mustSucceed bool) {
	t.Helper()
	if *cli == "" {
		*cli = filepath.Join(t.TempDir(), "tenantsql")
		build := exec.Command("go", "build", "-o", *cli, "./cmd/tenantsql")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/tenantsql: %v\n%s", err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, *cli, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TENANTSQL_STORE=memory:")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Errorf("%s: the CLI did not finish within a minute (on an empty memory store, with nothing on stdin)", where)
	case errors.As(err, &exit) && exit.ExitCode() == 2:
		t.Errorf("%s: the CLI refuses the arguments %q (usage error, exit status 2):\n%s\n"+
			"Fix the README line or the CLI; a line that cannot run this way goes into notRun in internal/readme/checks_test.go, with the reason.",
			where, args, stderr.String())
	case err != nil && exit == nil:
		t.Errorf("%s: %v", where, err)
	case err != nil && mustSucceed:
		t.Errorf("%s: run in %s, the CLI fails (exit status %d):\n%s", where, dir, exit.ExitCode(), stderr.String())
	}
}

// diff is a line diff of a and b: lines only in a start with "-", only
// in b with "+", common ones with " ".
func diff(a, b string) string {
	x := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	y := strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	// lcs[i][j] is the length of the longest common subsequence of
	// x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			out.WriteString("  " + x[i] + "\n")
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] > lcs[i+1][j]):
			out.WriteString("+ " + y[j] + "\n")
			j++
		default:
			out.WriteString("- " + x[i] + "\n")
			i++
		}
	}
	return out.String()
}
