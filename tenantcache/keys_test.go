package tenantcache

import (
	"strings"
	"testing"
)

func TestEscapeGlob(t *testing.T) {
	cases := []struct{ in, want string }{
		{"tenantcache", "tenantcache"},
		{"{app}", "{app}"},
		{"a*b", `a\*b`},
		{"a?b", `a\?b`},
		{"[x]", `\[x\]`},
		{`back\slash`, `back\\slash`},
		{`*?[]\`, `\*\?\[\]\\`},
		{"", ""},
	}
	for _, c := range cases {
		if got := escapeGlob(c.in); got != c.want {
			t.Errorf("escapeGlob(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// No tenant's namespace is a prefix of another's, so no key, SCAN MATCH
// or flush of one tenant can reach another's keys.
func TestNamespacesDoNotNest(t *testing.T) {
	ids := []string{"a", "ab", "a.b", "a-b", "a_b", "a.b.c", "b", "0", "00", "t", "a.t"}
	for _, prefix := range []string{"tenantcache", "p.t", "{app}", "x*"} {
		for _, x := range ids {
			for _, y := range ids {
				nx, ny := newNamespace(prefix, x), newNamespace(prefix, y)
				if x != y && strings.HasPrefix(string(ny), string(nx)) {
					t.Errorf("prefix %q: namespace of %q (%q) is a prefix of that of %q (%q)", prefix, x, nx, y, ny)
				}
				k, ok := nx.trim(ny.key("k"))
				if ok != (x == y) || ok && k != "k" {
					t.Errorf("prefix %q: tenant %q reads %q's key as %q, %v", prefix, x, y, k, ok)
				}
			}
		}
	}
}
