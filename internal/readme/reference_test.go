package readme

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestReadmeReference checks that the README lists what the godoc has
// (issue 14.6): every exported error sentinel of package driver, every
// driver option, and every store URL option that Open reads. A sentinel,
// option or URL option added to the code without a line in the README
// fails here.
func TestReadmeReference(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	driverFiles := parseDir(t, "../../driver")
	var want []string
	for _, name := range exportedVars(driverFiles, "Err") {
		want = append(want, "`driver."+name+"`")
	}
	for _, name := range optionFuncs(driverFiles) {
		want = append(want, "`"+name+"(")
	}
	storeFiles := parseDir(t, "../../store")
	for _, key := range urlOptionKeys(storeFiles, "parseRedisURL", "parseFileURL") {
		want = append(want, "`"+key+"=")
	}
	if len(want) < 20 {
		t.Fatalf("found only %d names to look for: %q; has the code moved?", len(want), want)
	}
	for _, w := range want {
		if !strings.Contains(readme, w) {
			t.Errorf("README.md does not mention %s", w)
		}
	}
}

// parseDir parses the non-test Go files of dir.
func parseDir(t *testing.T, dir string) []*ast.File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// exportedVars returns the exported package-level variables whose names
// start with prefix.
func exportedVars(files []*ast.File, prefix string) []string {
	var out []string
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if n.IsExported() && strings.HasPrefix(n.Name, prefix) {
						out = append(out, n.Name)
					}
				}
			}
		}
	}
	return out
}

// optionFuncs returns the exported functions that return an Option.
func optionFuncs(files []*ast.File) []string {
	var out []string
	for _, f := range files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || fn.Type.Results == nil || len(fn.Type.Results.List) != 1 {
				continue
			}
			if id, ok := fn.Type.Results.List[0].Type.(*ast.Ident); ok && id.Name == "Option" {
				out = append(out, fn.Name.Name)
			}
		}
	}
	return out
}

// urlOptionKeys returns the option names the functions read from a URL
// query: the string arguments of its Has and Get calls, and the string
// cases of its switches.
func urlOptionKeys(files []*ast.File, funcs ...string) []string {
	var out []string
	add := func(e ast.Expr) {
		if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if k, err := strconv.Unquote(lit.Value); err == nil && k != "" && !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	for _, f := range files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || !slices.Contains(funcs, fn.Name.Name) {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Has" || sel.Sel.Name == "Get") && len(n.Args) == 1 {
						add(n.Args[0])
					}
				case *ast.SwitchStmt:
					// The option switch: on the key, k.
					if id, ok := n.Tag.(*ast.Ident); ok && id.Name == "k" {
						for _, c := range n.Body.List {
							for _, e := range c.(*ast.CaseClause).List {
								add(e)
							}
						}
					}
				}
				return true
			})
		}
	}
	return out
}
