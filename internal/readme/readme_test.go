package readme

import (
	"slices"
	"strings"
	"testing"
)

func TestRegion(t *testing.T) {
	src := "package x\n" +
		"func f() {\n" +
		"\t// snippet:a\n" +
		"\tif x {\n" +
		"\t\ty()\n" +
		"\t}\n" +
		"\n" +
		"\tz()\n" +
		"\t// end snippet\n" +
		"}\n" +
		"// snippet:open\n" +
		"x()\n" +
		"// snippet:b\n" +
		"// end snippet\n" +
		"// snippet:unterminated\n" +
		"x()\n"
	for _, tc := range []struct {
		name, want, err string
	}{
		{name: "a", want: "if x {\n\ty()\n}\n\nz()\n"},
		{name: "missing", err: `no region "missing"`},
		{name: "open", err: `no "// end snippet" before the next region`},
		{name: "unterminated", err: `has no "// end snippet"`},
	} {
		got, err := Region([]byte(src), tc.name)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Region(%q): error %v, want one containing %q", tc.name, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("Region(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	got, err := Regions([]byte("// snippet:x\nvar a int\n// end snippet\n\t// snippet:y\n\tb()\n\t// end snippet\n"), []string{"x", "y"})
	if want := "var a int\n\nb()\n"; err != nil || got != want {
		t.Errorf("Regions = %q, %v; want %q", got, err, want)
	}
}

func TestParseSnippet(t *testing.T) {
	for _, tc := range []struct {
		in    string
		path  string
		names []string
		ok    bool
	}{
		{"a/b_test.go:x", "a/b_test.go", []string{"x"}, true},
		{"a/b_test.go:x,y", "a/b_test.go", []string{"x", "y"}, true},
		{"a/b_test.go", "", nil, false},
		{"a/b_test.go:", "", nil, false},
		{"a/b_test.go:x,", "", nil, false},
	} {
		path, names, err := ParseSnippet(tc.in)
		if (err == nil) != tc.ok || path != tc.path || !slices.Equal(names, tc.names) {
			t.Errorf("ParseSnippet(%q) = %q, %q, %v", tc.in, path, names, err)
		}
	}
}

const doc = "# Title\n" +
	"```go\n" +
	"a()\n" +
	"```\n" +
	"## Tutorial\n" +
	"<!-- snippet: x_test.go:one -->\n" +
	"\n" +
	"```go\n" +
	"b()\n" +
	"```\n" +
	"### Sub\n" +
	"```sh\n" +
	"curl -s x \\\n" +
	"     -d '{\"a\": 1}'   # a comment\n" +
	"# {\"ok\":true}\n" +
	"\n" +
	"H='x y'\n" +
	"for n in 1 2; do\n" +
	"  echo $n\n" +
	"done\n" +
	"# 1\n" +
	"# 2\n" +
	"\n" +
	"# not an output\n" +
	"```\n" +
	"## Layout\n" +
	"```\n" +
	"a/  b\n" +
	"```\n"

func TestBlocks(t *testing.T) {
	got := Blocks([]byte(doc))
	want := []Block{
		{Lang: "go", Text: "a()\n", Line: 2},
		{Lang: "go", Text: "b()\n", Line: 8, Section: "Tutorial", Snippet: "x_test.go:one"},
		{Lang: "sh", Line: 12, Section: "Tutorial", Subsection: "Sub"},
		{Lang: "", Text: "a/  b\n", Line: 27, Section: "Layout"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d blocks, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Lang != w.Lang || g.Line != w.Line || g.Section != w.Section || g.Subsection != w.Subsection || g.Snippet != w.Snippet || w.Text != "" && g.Text != w.Text {
			t.Errorf("block %d = %+v, want %+v", i, g, w)
		}
	}

	cmds := Commands(got[2].Text)
	if len(cmds) != 3 || cmds[0].Text != "curl -s x \\\n     -d '{\"a\": 1}'   # a comment" ||
		!slices.Equal(cmds[0].Output, []string{`{"ok":true}`}) || cmds[1].Text != "H='x y'" || cmds[1].Output != nil ||
		cmds[2].Text != "for n in 1 2; do\n  echo $n\ndone" || !slices.Equal(cmds[2].Output, []string{"1", "2"}) {
		t.Fatalf("Commands = %q", cmds)
	}
	if w := cmds[0].Words(); !slices.Equal(w, []string{"curl", "-s", "x", "-d", `{"a": 1}`}) {
		t.Errorf("Words = %q", w)
	}
	if w := (Command{Text: "tenantsql migrate up --dir m [--dry-run]  # x"}).Words(); !slices.Equal(w, []string{"tenantsql", "migrate", "up", "--dir", "m", "--dry-run"}) {
		t.Errorf("Words with an optional flag = %q", w)
	}

	out := string(Replace([]byte(doc), got, map[int]string{1: "c()\nd()\n", 3: "e/  f\n"}))
	if want := strings.Replace(strings.Replace(doc, "b()\n", "c()\nd()\n", 1), "a/  b\n", "e/  f\n", 1); out != want {
		t.Errorf("Replace:\n%s\nwant\n%s", out, want)
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		ok        bool
	}{
		{`{"a":1}`, `{"a":1}`, true},
		{`{"a":1}`, `{"a":2}`, false},
		{`{"t":"..."}`, `{"t":"2026-01-01T00:00:00Z"}`, true},
		{`{"t":"..."}`, `{"t":"x"},{"u":1}`, false},
		{`{"a":1}`, `{"a":1} `, false},
		{`a.b`, `axb`, false},
	} {
		if Match(tc.want, tc.got) != tc.ok {
			t.Errorf("Match(%q, %q) = %v", tc.want, tc.got, !tc.ok)
		}
	}
}

func TestDiff(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"x\ny\n", "x\ny\n", "  x\n  y\n"},
		{"x\ny\nz\n", "x\nY\nz\n", "  x\n- y\n+ Y\n  z\n"},
		{"x\n", "x\ny\n", "  x\n+ y\n"},
		{"x\ny\n", "y\n", "- x\n  y\n"},
	} {
		if got := diff(tc.a, tc.b); got != tc.want {
			t.Errorf("diff(%q, %q) =\n%s\nwant\n%s", tc.a, tc.b, got, tc.want)
		}
	}
}
