package tenantcache

import (
	"strconv"
	"strings"
	"testing"
	"time"
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

// No namespace is a prefix of another's, whether the tenants or their
// incarnations differ, so no key, SCAN MATCH or flush of one tenant can
// reach another's keys, nor a re-created tenant those of its former self.
func TestNamespacesDoNotNest(t *testing.T) {
	ids := []string{"a", "ab", "a.b", "a-b", "a_b", "a.b.c", "b", "0", "00", "t", "a.t"}
	at := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	created := []time.Time{{}, at, at.Add(time.Microsecond), at.Add(36 * time.Microsecond), time.Unix(-1, 0)}
	type tenant struct {
		id      string
		created time.Time
	}
	var tenants []tenant
	for _, id := range ids {
		for _, c := range created {
			tenants = append(tenants, tenant{id, c})
		}
	}
	for _, prefix := range []string{"tenantcache", "p.t", "{app}", "x*"} {
		for _, x := range tenants {
			for _, y := range tenants {
				nx, ny := newNamespace(prefix, x.id, x.created), newNamespace(prefix, y.id, y.created)
				same := x.id == y.id && x.created.Equal(y.created)
				if !same && strings.HasPrefix(string(ny), string(nx)) {
					t.Errorf("prefix %q: namespace of %v (%q) is a prefix of that of %v (%q)", prefix, x, nx, y, ny)
				}
				k, ok := nx.trim(ny.key("k"))
				if ok != same || ok && k != "k" {
					t.Errorf("prefix %q: tenant %v reads %v's key as %q, %v", prefix, x, y, k, ok)
				}
			}
		}
	}
}

func TestIncarnation(t *testing.T) {
	at := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	cases := []struct {
		created time.Time
		want    string
	}{
		{time.Time{}, "0"},
		{time.Unix(0, 0), "0"}, // the epoch itself reads as no time: harmless, no store writes it
		{time.Unix(0, 1000), "1"},
		{time.Unix(0, 36000), "10"},
		{at, strconv.FormatInt(at.UnixMicro(), 36)},
		{at.In(time.FixedZone("X", 3600)), strconv.FormatInt(at.UnixMicro(), 36)}, // an instant, whatever its zone
		{at.Add(999 * time.Nanosecond), strconv.FormatInt(at.UnixMicro(), 36)},    // the stores keep microseconds
		{time.Unix(-1, 0), "-lfls"},
	}
	for _, c := range cases {
		got := incarnation(c.created)
		if got != c.want {
			t.Errorf("incarnation(%v) = %q, want %q", c.created, got, c.want)
		}
		if strings.ContainsAny(got, `:*?[]\`) {
			t.Errorf("incarnation(%v) = %q holds ':' or a glob character", c.created, got)
		}
	}
	if a, b := incarnation(at), incarnation(at.Add(time.Microsecond)); a == b {
		t.Errorf("tenants created a microsecond apart share the incarnation %q", a)
	}
}
