// Package readme ties README.md's code blocks to code that runs, so that a
// snippet which drifts from the library fails the tests instead of the
// first reader who copies it.
//
// A Go block in the README is preceded by a marker naming where it comes
// from:
//
//	<!-- snippet: internal/readme/hooks_test.go:migrate-embed,migrate -->
//	```go
//	...
//	```
//
// The path is relative to the repository root; each name is a region of
// that file, written between two comment lines:
//
//	// snippet:migrate
//	h, err := hooks.Migrate(db, migrations)
//	// end snippet
//
// The block's text is the regions' lines, each region without the
// indentation its lines have in common, regions separated by one blank
// line. The file is a test that compiles and runs the region against real
// servers, so a block that no longer compiles, or no longer does what it
// says, fails there too. The tests of this package check that the two
// agree, and rewrite the README from the sources with -update.
package readme

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// A Block is a fenced code block of a Markdown document.
type Block struct {
	// Lang is the first word of the fence's info string: "go", "sh",
	// "json", or "" for a bare fence.
	Lang string
	// Text is the block's content, each line ending in a newline.
	Text string
	// Line is the 1-based line of the opening fence.
	Line int
	// Section and Subsection are the titles of the nearest "## " and
	// "### " headings above the block ("" when there is none; Subsection
	// is "" when the block comes before the first "### " of its section).
	Section, Subsection string
	// Snippet is the value of a "<!-- snippet: ... -->" comment on the last
	// non-blank line before the fence, "" when there is none.
	Snippet string

	start, end int // 0-based indexes of the first and last content line + 1
}

// Where names the block for messages: "README.md:44 (## Tutorial)".
func (b Block) Where(file string) string {
	h := "## " + b.Section
	switch {
	case b.Section == "":
		h = "before the first ## heading"
	case b.Subsection != "":
		h = "### " + b.Subsection
	}
	return fmt.Sprintf("%s:%d (%s)", file, b.Line, h)
}

var snippetRE = regexp.MustCompile(`^<!--\s*snippet:\s*(\S+)\s*-->$`)

// Blocks returns the fenced code blocks of a Markdown document, in order.
// Fences are lines starting with three backquotes, not indented.
func Blocks(md []byte) []Block {
	lines := splitLines(md)
	var (
		out                 []Block
		section, subsection string
		cur                 *Block
	)
	for i, l := range lines {
		trimmed := strings.TrimRight(l, "\n")
		if cur != nil {
			if trimmed == "```" {
				cur.end = i
				cur.Text = strings.Join(lines[cur.start:i], "")
				out = append(out, *cur)
				cur = nil
			}
			continue
		}
		switch {
		case strings.HasPrefix(trimmed, "```"):
			b := &Block{Line: i + 1, Section: section, Subsection: subsection, start: i + 1}
			if f := strings.Fields(strings.TrimPrefix(trimmed, "```")); len(f) > 0 {
				b.Lang = f[0]
			}
			for j := i - 1; j >= 0; j-- {
				prev := strings.TrimSpace(lines[j])
				if prev == "" {
					continue
				}
				if m := snippetRE.FindStringSubmatch(prev); m != nil {
					b.Snippet = m[1]
				}
				break
			}
			cur = b
		case strings.HasPrefix(trimmed, "## "):
			section, subsection = strings.TrimPrefix(trimmed, "## "), ""
		case strings.HasPrefix(trimmed, "### "):
			subsection = strings.TrimPrefix(trimmed, "### ")
		}
	}
	return out
}

// ParseSnippet splits a marker's value, "PATH:NAME[,NAME...]", into the
// path and the region names.
func ParseSnippet(s string) (path string, names []string, err error) {
	path, list, ok := strings.Cut(s, ":")
	if !ok || path == "" || list == "" {
		return "", nil, fmt.Errorf("snippet marker %q: want PATH:NAME[,NAME...], e.g. internal/readme/snippets_test.go:migrate", s)
	}
	for n := range strings.SplitSeq(list, ",") {
		if n == "" {
			return "", nil, fmt.Errorf("snippet marker %q: empty region name", s)
		}
		names = append(names, n)
	}
	return path, names, nil
}

// Region returns the lines of src between "// snippet:NAME" and the next
// "// end snippet" (each alone on its line, after any indentation),
// without the indentation the lines have in common and without blank
// lines at either end.
func Region(src []byte, name string) (string, error) {
	lines := splitLines(src)
	begin := -1
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if begin < 0 {
			if t == "// snippet:"+name {
				begin = i + 1
			}
			continue
		}
		if strings.HasPrefix(t, "// snippet:") {
			return "", fmt.Errorf("region %q (line %d) has no \"// end snippet\" before the next region starts on line %d", name, begin, i+1)
		}
		if t == "// end snippet" {
			body := lines[begin:i]
			for len(body) > 0 && strings.TrimSpace(body[0]) == "" {
				body = body[1:]
			}
			for len(body) > 0 && strings.TrimSpace(body[len(body)-1]) == "" {
				body = body[:len(body)-1]
			}
			return dedent(body), nil
		}
	}
	if begin < 0 {
		return "", fmt.Errorf("no region %q: add the lines between \"// snippet:%s\" and \"// end snippet\"", name, name)
	}
	return "", fmt.Errorf("region %q (line %d) has no \"// end snippet\"", name, begin)
}

// Regions joins the named regions of src, separated by a blank line, as
// a README block shows them.
func Regions(src []byte, names []string) (string, error) {
	var parts []string
	for _, n := range names {
		r, err := Region(src, n)
		if err != nil {
			return "", err
		}
		parts = append(parts, r)
	}
	return strings.Join(parts, "\n"), nil
}

// Replace returns md with the content of each block whose index is a key
// of texts replaced by its value. The blocks must be those of md.
func Replace(md []byte, blocks []Block, texts map[int]string) []byte {
	lines := splitLines(md)
	var out bytes.Buffer
	next := 0
	for i, b := range blocks {
		t, ok := texts[i]
		if !ok {
			continue
		}
		out.WriteString(strings.Join(lines[next:b.start], ""))
		out.WriteString(t)
		next = b.end
	}
	out.WriteString(strings.Join(lines[next:], ""))
	return out.Bytes()
}

// dedent joins lines after removing the longest run of leading
// whitespace that every non-blank line starts with.
func dedent(lines []string) string {
	prefix := ""
	first := true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		ind := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			prefix, first = ind, false
			continue
		}
		for !strings.HasPrefix(ind, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString(strings.TrimPrefix(l, prefix))
	}
	return b.String()
}

// splitLines splits b into lines that keep their "\n"; a last line
// without one gets one.
func splitLines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text()+"\n")
	}
	return out
}

// Commands splits a shell block into its commands: continuation lines
// (ending in a backslash) are joined to the next, and so are the lines of
// a compound command (from a line ending in "do" or "then" to the line
// with its "done" or "fi"); blank lines and lines that are only a comment
// are left out. Each command keeps its line's trailing comment, which the
// shell ignores. The comment lines right after a command, with no blank
// line between, are what it prints: its Output.
func Commands(text string) []Command {
	var (
		out   []Command
		cur   []string
		depth int  // open do/then
		after bool // the previous line ended a command
	)
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		t := strings.TrimSpace(l)
		if len(cur) == 0 {
			switch {
			case t == "":
				after = false
				continue
			case strings.HasPrefix(t, "#"):
				if after {
					c := &out[len(out)-1]
					c.Output = append(c.Output, strings.TrimSpace(strings.TrimPrefix(t, "#")))
				}
				continue
			}
		}
		cur = append(cur, l)
		code := strings.Fields(strings.SplitN(t, " #", 2)[0])
		if n := len(code); n > 0 && (code[n-1] == "do" || code[n-1] == "then") {
			depth++
		}
		if len(code) > 0 && (code[0] == "done" || code[0] == "fi") {
			depth--
		}
		if depth > 0 || strings.HasSuffix(l, `\`) {
			after = false
			continue
		}
		out = append(out, Command{Text: strings.Join(cur, "\n")})
		cur, after = nil, true
	}
	if len(cur) > 0 {
		out = append(out, Command{Text: strings.Join(cur, "\n")})
	}
	return out
}

// A Command is one command of a shell block.
type Command struct {
	// Text is the command as written, continuation lines included.
	Text string
	// Output holds the comment lines that follow the command, without
	// their "# ": what the README says the command prints.
	Output []string
}

// Words returns the command's words as the shell would split them, for
// the simple commands README blocks hold: quotes are removed, a trailing
// comment, backslash-newlines and "[" "]" around optional arguments are
// dropped. It does no expansion.
func (c Command) Words() []string {
	var (
		words []string
		cur   strings.Builder
		in    bool
		quote rune
	)
	flush := func() {
		if in {
			words = append(words, cur.String())
			cur.Reset()
			in = false
		}
	}
	s := strings.ReplaceAll(c.Text, "\\\n", " ")
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == '#' && !in:
			flush()
			return words
		case r == ' ' || r == '\t' || r == '\n':
			flush()
		case r == '[' || r == ']':
			flush()
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	flush()
	return words
}

// Match reports whether got matches want, a line of a README's expected
// output in which "..." stands for any text.
func Match(want, got string) bool {
	parts := strings.Split(want, "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `.*`) + `$`).MatchString(got)
}
